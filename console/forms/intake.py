"""The document form's view of the intake: folders, path completion and the path check, asked of the core."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from textual.suggester import Suggester

from medops.console.forms.core_handle import STARTING, CoreHandle
from medops.core.documents.intake import IntakeRefused

COMPLETIONS = 50  # candidates the list below the path shows


class IntakePaths:
    """The core's intake folders and path rules, through its commands (none until the core is built)."""

    def __init__(self, handle: CoreHandle) -> None:
        self._handle = handle

    @property
    def folders(self) -> tuple[Path, ...]:
        """The folders documents are accepted from."""
        core = self._handle.core
        return core.intake_folders() if core is not None else ()

    async def complete_async(self, typed: str, limit: int = COMPLETIONS) -> list[str]:
        """Paths inside the intake folders that complete `typed`, folders ending in '/'."""
        core = self._handle.core
        if core is None or core.attached:
            return []  # no intake here yet, or none at all (medops --attach)
        return await core.complete_intake_path(typed, limit)

    async def check_async(self, typed: str, *, relative_to_intake: bool = True) -> Path:
        """The document `typed` names; `IntakeRefused` says why not (the core's own check, made first)."""
        core = self._handle.core
        if core is None:
            raise IntakeRefused(STARTING)
        return await core.check_intake_path(typed)


class CompletesPaths(Protocol):
    """Where the suggester finds completions (`IntakePaths`, or the core's `Intake` itself)."""

    async def complete_async(self, typed: str, limit: int = COMPLETIONS) -> list[str]: ...


class IntakeSuggester(Suggester):
    """Completes a typed path (relative to an intake folder, or absolute) to the first match inside them."""

    def __init__(self, intake: CompletesPaths) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.intake = intake

    async def get_suggestion(self, value: str) -> str | None:
        if not value:
            return None  # an empty field suggests nothing: the list below shows the folders' tops
        matches = await self.intake.complete_async(value, limit=1)
        return matches[0] if matches and matches[0] != value else None
