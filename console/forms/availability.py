"""The forms' way to the core: it may still be starting, and a part may not be in this build."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

STARTING = "The core is still starting; try again in a moment. Nothing was sent."


class CoreHandle:
    """The console's reference to the core, set once the core is built and started."""

    def __init__(self, core: Any = None) -> None:
        self.core = core
        self.started = False

    def command(self, name: str, what: str, part: str) -> tuple[Callable[..., Any] | None, str]:
        """The core's command `name`, or None and a message saying why it cannot run."""
        if self.core is None or not self.started:
            return None, STARTING
        command = getattr(self.core, name, None)
        if not callable(command):
            return None, not_available(what, part)
        return command, ""


def not_available(what: str, part: str) -> str:
    """The message a form shows instead of a fake result."""
    return (f"{what} is not available yet: the {part} part has not landed in this build of the core. "
            "Nothing was sent.")
