"""Paths a document form may read: only files inside the configured intake folders."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path

from textual.suggester import Suggester

MAX_CANDIDATES = 200


class IntakePathError(ValueError):
    """The typed path is empty, outside the intake folders, or not a file."""


def resolve_intake_path(value: str, folders: Sequence[Path]) -> Path:
    """The real file `value` names, if it lies inside one of `folders`."""
    listing = ", ".join(str(f) for f in folders) or "none configured"
    value = value.strip()
    if not value:
        raise IntakePathError(f"Type the path of a document inside an intake folder ({listing}).")
    typed = Path(value).expanduser()
    if not typed.is_absolute():
        tries = [folder / typed for folder in folders]
        typed = next((t for t in tries if t.exists()), tries[0] if tries else typed)
    path = typed.resolve()
    if not any(path.is_relative_to(folder.resolve()) for folder in folders):
        raise IntakePathError(f"{value} is outside the intake folders ({listing}); copy the file into one of them.")
    if not path.exists():
        raise IntakePathError(f"{value} does not exist; check the name (→ completes it, or pick from the list).")
    if not path.is_file():
        raise IntakePathError(f"{value} is a folder; choose a file inside it.")
    return path


def list_candidates(folders: Sequence[Path], typed: str) -> list[str]:
    """Files under the intake folders whose path starts with what was typed (blocking: run off the loop)."""
    found: list[str] = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                if full.startswith(typed) or os.path.relpath(full, folder).startswith(typed):
                    found.append(full)
                    if len(found) >= MAX_CANDIDATES:
                        return found
    return found


class IntakeSuggester(Suggester):
    """Completes a typed path (absolute, or relative to an intake folder) to the first matching file."""

    def __init__(self, folders: Sequence[Path]) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.folders = tuple(folders)

    async def get_suggestion(self, value: str) -> str | None:
        return await asyncio.to_thread(first_completion, self.folders, value)


def first_completion(folders: Sequence[Path], value: str) -> str | None:
    """The first intake file that `value` starts, written the way `value` was (blocking)."""
    for match in list_candidates(folders, value):
        if match.startswith(value):
            return match
        for folder in folders:
            relative = os.path.relpath(match, folder)
            if relative.startswith(value) and not relative.startswith(".."):
                return relative
    return None
