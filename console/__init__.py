"""medops console: the Textual app, its panes and forms, and the CLI."""
