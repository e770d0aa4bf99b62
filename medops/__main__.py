"""`python -m medops`: the same as the `medops` command."""

from medops.console.cli import main

raise SystemExit(main())
