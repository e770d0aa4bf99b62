"""The forms' and panes' way to the core: it is built after the first frame and may still be starting."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from medops.core.contract import CoreCommands

STARTING = "The core is still starting; try again in a moment. Nothing was sent."


def read_only_refusal(what: str) -> str:
    """What a form says when `medops --read-only` refuses work that would spend the organisation's quota."""
    return (f"Read-only console (--read-only): {what} refused, nothing was sent and no quota spent. Start medops "
            "without --read-only to send, or use medops ask / medops extract.")


def needs_core(what: str, instead: str) -> str:
    """What a form says under `medops --attach`, where no core runs to do its work."""
    return (f"Attached to the fleet (medops --attach): {what} need a core of their own, and this console has "
            f"none. {instead}")


class CoreHandle:
    """The console's reference to the core (any `CoreCommands`), set once it is built, usable once started."""

    def __init__(self, core: CoreCommands | None = None, *, read_only: bool = False) -> None:
        self.core = core
        self.started = False
        self.read_only = read_only  # `medops --read-only`: the forms send nothing that spends quota

    def ready(self) -> CoreCommands | None:
        """The core once it has started; None while it is being built or started (say `STARTING`)."""
        return self.core if self.started else None

    def attached(self) -> bool:
        """True when the console watches the fleet with no core of its own (`medops --attach`)."""
        return self.core is not None and self.core.attached
