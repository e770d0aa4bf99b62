"""medops: the resource core of an LLM-backed medical assistant, and its operations console.

`medops.core` is the core (`core/` in a checkout), importable without the console;
`medops.console` is the Textual console and the CLI (`console/`). The build maps
those folders under this one name (pyproject's package-dir); the two links in
this folder do the same for tools that read a checkout directly (mypy, pytest).
"""

from medops.core import __version__

__all__ = ["__version__"]
