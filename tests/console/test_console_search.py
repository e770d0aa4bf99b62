"""The Search tab: what is listed is always the answer to what the box says."""

from __future__ import annotations

from textual.widgets import DataTable, Input, Label

from medops.console.app import MedopsApp
from medops.core.knowledge.entries import SearchHit, SearchResults
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations
from tests.helpers.console_data import FrozenCore
from tests.helpers.waiting import until


class SearchingCore(FrozenCore):
    """Finds one chest-pain code for any search."""

    async def kb_search(self, text: str, limit: int = 20) -> SearchResults:  # type: ignore[override]
        return SearchResults((SearchHit("R07.9", True, "Chest pain, unspecified", 2, 2),), 1)


async def test_a_one_character_search_clears_the_rows_of_the_last_one(locations: Locations) -> None:
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=SearchingCore())  # type: ignore[arg-type]
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.core_started)
        await pilot.press("5")
        table = app.query_one("#search-results", DataTable)
        app.query_one("#search-text", Input).value = "chest pain"
        await pilot.press("enter")
        assert await until(pilot, lambda: table.row_count == 1)
        app.query_one("#search-text", Input).value = "c"
        await pilot.press("enter")
        await pilot.pause()
        assert table.row_count == 0  # R07.9 is not an answer to "c"
        assert "at least two characters" in str(app.query_one("#search-error", Label).render())
