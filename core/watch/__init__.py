"""Watching the core: the tick, the monitor, cgroups, loop lag, alerts and the tuner."""
