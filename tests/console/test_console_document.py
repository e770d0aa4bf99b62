"""The Document tab at 80x24: the result, the refusal and the text stay on screen however long the list."""

from __future__ import annotations

import dataclasses

from textual.widget import Widget
from textual.widgets import Label, TextArea

from medops.console.app import MedopsApp
from medops.console.forms.document import DocumentForm
from medops.console.panes.documents import DocumentsPane
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations
from tests.helpers.console_data import ExtractingCore
from tests.helpers.waiting import until


def on_screen(app: MedopsApp, widget: Widget) -> bool:
    return widget.region.height > 0 and app.screen.region.contains_region(widget.region)


async def test_with_eight_files_listed_the_refusal_and_the_text_are_on_the_first_screen(locations: Locations) -> None:
    intake = locations.default_intake_dir
    intake.mkdir(parents=True)
    for n in range(8):
        (intake / f"scan-{n}.pdf").write_bytes(b"%PDF-1.4\n")
    (intake / "empty.pdf").write_bytes(b"")
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=ExtractingCore())  # type: ignore[arg-type]
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.core_started)
        await pilot.press("4", *"scan-1.pdf", "enter")
        form = app.query_one(DocumentForm)
        text = form.query_one("#doc-text", TextArea)
        assert await until(pilot, lambda: bool(text.text) and not form.running)
        form.query_one("#doc-path").value = ""  # type: ignore[attr-defined]
        await pilot.pause(0.3)  # the whole folder listed again
        summary = form.query_one("#doc-summary", Label)
        assert on_screen(app, summary) and "scan-1.pdf" in str(summary.render())
        assert on_screen(app, text) and text.region.height >= 3
        await pilot.press(*"empty.pdf", "enter")
        error = form.query_one("#doc-error", Label)
        assert await until(pilot, lambda: "empty" in str(error.render()) and not form.running)
        form.query_one("#doc-path").value = ""  # type: ignore[attr-defined]
        await pilot.pause(0.3)
        assert on_screen(app, error), error.region


async def test_a_read_only_console_extracts_no_document_and_says_why(locations: Locations) -> None:
    intake = locations.default_intake_dir
    intake.mkdir(parents=True)
    (intake / "letter.pdf").write_bytes(b"%PDF-1.4\n")
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=ExtractingCore(),  # type: ignore[arg-type]
                    read_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.core_started)
        await pilot.press("4", *"letter.pdf", "enter")
        form = app.query_one(DocumentForm)
        error = str(form.query_one("#doc-error", Label).render())
        assert "Read-only console (--read-only): extracting a document refused, nothing was sent" in error
        await pilot.pause(0.3)
        assert not form.running and form.query_one("#doc-text", TextArea).text == ""
        # listed as refused in the documents pane, never put back in the box (the next name would join it)
        assert form.query_one("#doc-path").value == ""  # type: ignore[attr-defined]
        pane = app.query_one(DocumentsPane)
        assert await until(pilot, lambda: "refused letter.pdf: Read-only console" in str(pane.render()))


async def test_at_80x24_a_name_just_refused_is_the_first_line_of_the_documents_pane(locations: Locations) -> None:
    """The pane has room for one line under its counts at 80x24; refusals came after every job, never seen."""
    from tests.helpers.console_data import FrozenCore

    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=FrozenCore())  # type: ignore[arg-type]
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.core_started)
        await pilot.press("4")
        pane = app.query_one(DocumentsPane)
        assert await until(pilot, lambda: "scan-0042.pdf" in str(pane.render()))  # the snapshot's two jobs
        await pilot.press(*"nope.pdf", "enter")
        assert await until(pilot, lambda: "refused nope.pdf" in str(pane.render()))
        await pilot.pause()
        lines = str(pane.render()).splitlines()
        assert "refused nope.pdf" in lines[1], lines
        screen = app.export_screenshot().replace("&#160;", " ")
        assert "refused nope.pdf" in screen


def test_a_job_this_console_started_is_placed_when_it_started_not_when_the_pane_first_saw_it() -> None:
    import time

    from medops.console.panes.documents import Refusal
    from medops.core.snapshot import DocumentJob, DocumentsSnapshot
    from tests.helpers.console_data import busy_snapshot

    pane = DocumentsPane()
    pane.started("good.pdf")  # failed at once, before the next name was refused and the snapshot listed it
    started_at = pane._starts[-1][1]
    pane.refusals.appendleft(Refusal(started_at + 1, "nope.pdf", "nope.pdf: no such file"))
    snapshot = busy_snapshot()
    later = dataclasses.replace(snapshot, documents=DocumentsSnapshot(
        failed=1, recent=(DocumentJob("d-1", "good.pdf", "failed", 0, 0, "not a PDF"),)))
    time.sleep(0.01)
    lines = pane.draw(later).splitlines()
    assert "refused nope.pdf" in lines[1] and "d-1 good.pdf" in lines[2], lines
