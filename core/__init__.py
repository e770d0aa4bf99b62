"""medops resource core: Groq quota, case memory, pools and monitors; no UI.

One folder per part; `ResourceCore` composes them and is reached through `CoreCommands` (contract.py).
An agent embeds it with `from medops.core import ResourceCore, PromptRequest, Priority, load_settings,
locate` (README: "Use the core in your agents"); those names are imported on first use, so `import
medops.core` stays light for the CLI.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "ResourceCore": "medops.core.resource_core",
    "PromptRequest": "medops.core.groq.requests",
    "Priority": "medops.core.groq.requests",
    "load_settings": "medops.core.settings.config",
    "locate": "medops.core.settings.paths",
}


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'medops.core' has no attribute {name!r}")
