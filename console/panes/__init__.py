"""Read-only panes: each shows one section of the latest `CoreSnapshot`."""
