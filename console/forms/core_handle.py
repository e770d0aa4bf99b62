"""The forms' and panes' way to the core: it is built after the first frame and may still be starting."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from medops.core.contract import CoreCommands

STARTING = "The core is still starting; try again in a moment. Nothing was sent."


class CoreHandle:
    """The console's reference to the core (any `CoreCommands`), set once it is built, usable once started."""

    def __init__(self, core: CoreCommands | None = None) -> None:
        self.core = core
        self.started = False

    def ready(self) -> CoreCommands | None:
        """The core once it has started; None while it is being built or started (say `STARTING`)."""
        return self.core if self.started else None
