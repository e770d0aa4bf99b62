"""Forms that act on the core through its async commands."""
