"""The console over a real `ResourceCore`: a prompt answered by the local endpoint,
a PDF turned into text (and into case memory), a knowledge-base search."""

from __future__ import annotations

import re

import pytest
from textual.message import Message
from textual.widgets import DataTable, Input, Label, ProgressBar, TextArea

from medops.console.app import MedopsApp
from medops.console.forms.document import PageProgress
from medops.console.forms.prompt import PromptForm, ReplyCard
from medops.console.forms.prompt_box import PromptBox
from medops.core.resource_core import ResourceCore
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations
from tests.helpers.document_files import CLINICAL_TEXT, text_pdf
from tests.helpers.waiting import until

# Every test here starts a core: each gets the session's knowledge base (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("knowledge_ready")


def live_app(locations: Locations) -> tuple[MedopsApp, ResourceCore]:
    settings = Settings(refresh_interval=0.5)
    core = ResourceCore(settings, locations)
    return MedopsApp(settings, locations, core=core), core


async def test_a_prompt_is_answered_by_the_local_endpoint_with_its_figures(locations: Locations) -> None:
    app, core = live_app(locations)
    async with app.run_test(size=(120, 40)) as pilot:
        assert await until(pilot, lambda: app.core_started)
        await pilot.press("3")
        app.query_one("#prompt-text", PromptBox).text = "Summarise: acute chest pain, troponin pending."
        await pilot.press("enter")
        app.query_one("#prompt-text", PromptBox).text = "Second question while the first is in flight."
        await pilot.press("enter")
        form = app.query_one(PromptForm)
        assert await until(pilot, lambda: form.in_flight == 0)
        cards = [str(card.render()) for card in app.query(ReplyCard)]
        assert len(cards) == 2
        for card in cards:
            assert "failed" not in card
            assert "tokens" in card and "latency" in card and "queue wait" in card
        assert await until(pilot, lambda: app.latest is not None and app.latest.scheduler.completed >= 2)
        assert app.latest is not None and app.latest.endpoint.kind == "local"
    assert not core.running


async def test_a_pdf_from_the_intake_folder_shows_its_text_and_lands_in_the_case(locations: Locations) -> None:
    intake = locations.default_intake_dir
    intake.mkdir(parents=True)
    text_pdf(intake / "referral.pdf", [CLINICAL_TEXT, "Page two: follow-up in 2 weeks."])
    app, core = live_app(locations)
    pages_seen: list[tuple[int, int]] = []

    def record(message: Message) -> None:
        if isinstance(message, PageProgress):
            pages_seen.append((message.done, message.total))

    async with app.run_test(size=(120, 40), message_hook=record) as pilot:
        assert await until(pilot, lambda: app.core_started)
        await pilot.press("4")
        app.query_one("#doc-path", Input).value = "referral.pdf"
        app.query_one("#doc-case", Input).value = "case-17"
        await pilot.press("enter")
        text_area = app.query_one("#doc-text", TextArea)
        assert await until(pilot, lambda: "chest pain" in text_area.text), app.query_one("#doc-error", Label).render()
        assert "follow-up in 2 weeks" in text_area.text
        assert "2 pages" in str(app.query_one("#doc-summary", Label).render())
        assert (1, 2) in pages_seen and (2, 2) in pages_seen  # page by page, as the worker reported
        bar = app.query_one("#doc-progress", ProgressBar)
        assert (bar.progress, bar.total) == (2, 2)
        stored = core.cases.get("case-17")
        assert any("chest pain" in doc["text"] for doc in stored["documents"])


async def test_a_broken_pdf_shows_the_cores_error(locations: Locations) -> None:
    intake = locations.default_intake_dir
    intake.mkdir(parents=True)
    (intake / "broken.pdf").write_bytes(b"%PDF-1.7\nthis is not really a pdf\n")
    app, _ = live_app(locations)
    async with app.run_test(size=(120, 40)) as pilot:
        assert await until(pilot, lambda: app.core_started)
        await pilot.press("4")
        app.query_one("#doc-path", Input).value = "broken.pdf"
        await pilot.press("enter")
        error = app.query_one("#doc-error", Label)
        assert await until(pilot, lambda: "broken.pdf" in str(error.render()))
        assert app.query_one("#doc-text", TextArea).text == ""


async def test_a_knowledge_search_lists_codes(locations: Locations) -> None:
    app, _ = live_app(locations)
    async with app.run_test(size=(120, 40)) as pilot:
        assert await until(pilot, lambda: app.core_started)
        await pilot.press("5")
        app.query_one("#search-text", Input).value = "chest pain"
        await pilot.press("enter")
        table = app.query_one("#search-results", DataTable)
        assert await until(pilot, lambda: table.row_count > 0), app.query_one("#search-error", Label).render()
        codes = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
        assert codes[0] == "R07.9"
        assert re.fullmatch(r"20 of \d{3} matching codes", str(app.query_one("#search-error", Label).render()))
