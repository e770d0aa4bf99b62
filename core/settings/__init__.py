"""Settings: the typed config, live changes while running, and where files live."""
