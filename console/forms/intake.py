"""Path completion for the document form, from the core's intake (`core.intake.Intake.complete`)."""

from __future__ import annotations

from textual.suggester import Suggester

from medops.core.documents.intake import Intake


class IntakeSuggester(Suggester):
    """Completes a typed path (relative to an intake folder, or absolute) to the first match inside them."""

    def __init__(self, intake: Intake) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.intake = intake

    async def get_suggestion(self, value: str) -> str | None:
        if not value:
            return None  # an empty field suggests nothing: the list below shows the folders' tops
        matches = await self.intake.complete_async(value, limit=1)
        return matches[0] if matches and matches[0] != value else None
