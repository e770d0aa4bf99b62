"""Which core commands exist in this build, so a form can say a part has not landed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def core_command(core: object, name: str) -> Callable[..., Any] | None:
    """The core's async command `name`, or None if that part is not in this build."""
    command = getattr(core, name, None)
    return command if callable(command) else None


def not_available(what: str, part: str) -> str:
    """The message a form shows instead of a fake result."""
    return (f"{what} is not available yet: the {part} part has not landed in this build of the core. "
            "Nothing was sent.")
