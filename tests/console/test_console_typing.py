"""Typing fast never loses or merges what was typed: each Enter sends what the box held at that keypress."""

from __future__ import annotations

import asyncio

from textual.widgets import Input, Label, ProgressBar, TextArea

from medops.console.app import MedopsApp
from medops.console.forms.document import DocumentForm
from medops.console.forms.prompt import PromptForm
from medops.console.panes.documents import DocumentsPane
from medops.core.groq.requests import Completion, PromptRequest, PromptResult
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations
from tests.helpers.console_data import ExtractingCore, FrozenCore
from tests.helpers.typing_keys import keys_for, type_fast
from tests.helpers.waiting import until

PROMPTS = [f"prompt number {n} about chest pain" for n in range(1, 9)]


class RecordingCore(FrozenCore):
    """Answers every prompt at once and keeps what reached it, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.prompts: list[str] = []

    async def ask(self, request: PromptRequest) -> PromptResult:
        self.prompts.append(request.prompt)
        return PromptResult(Completion("ok", request.model or "m", 1, 1), 0.0, 0.0, 1)


async def test_eight_prompts_typed_back_to_back_are_eight_requests_in_order(locations: Locations) -> None:
    core = RecordingCore()
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=core)  # type: ignore[arg-type]
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.core_started)
        await pilot.press("3")
        form = app.query_one(PromptForm)
        type_fast(app, [key for prompt in PROMPTS for key in [*keys_for(prompt), "enter"]])
        assert await until(pilot, lambda: len(core.prompts) == 8 and form.in_flight == 0, within=30)
        await pilot.pause(0.2)
        assert core.prompts == PROMPTS
        assert form.query_one("#prompt-error").render().plain == ""  # type: ignore[attr-defined]


async def test_a_prompt_typed_while_the_last_one_is_sent_stays_in_the_box(locations: Locations) -> None:
    core = RecordingCore()
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=core)  # type: ignore[arg-type]
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.core_started)
        await pilot.press("3")
        type_fast(app, [*keys_for("first"), "enter", *keys_for("second, not sent yet")])
        assert await until(pilot, lambda: core.prompts == ["first"], within=30)
        await asyncio.sleep(0.2)
        await pilot.pause()
        assert app.query_one(PromptForm).box_text() == "second, not sent yet"


async def test_eight_document_paths_typed_back_to_back_are_taken_up_in_order(locations: Locations) -> None:
    core = FrozenCore()  # no documents part: each path is refused, after being taken up
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=core)  # type: ignore[arg-type]
    paths = [f"ward-{n}/scan-{n}.pdf" for n in range(1, 9)]
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.core_started)
        await pilot.press("4")
        form = app.query_one(DocumentForm)
        type_fast(app, [key for path in paths for key in [*path, "enter"]])
        assert await until(pilot, lambda: len(form.started) == 8 and not form.running, within=30)
        assert form.started == paths
        assert "scan-8.pdf: no such file" in str(form.query_one("#doc-error", Label).render())
        assert form.query_one("#doc-path", Input).value == ""  # nothing put back for the next name to join
        pane = app.query_one(DocumentsPane)
        # the newest five, with why (each refusal reaches the pane as a message)
        assert await until(pilot, lambda: all(f"refused {path}: " in str(pane.render()) for path in paths[-5:])), \
            str(pane.render())


async def test_a_refused_document_leaves_nothing_of_the_last_one_on_the_form(locations: Locations) -> None:
    intake = locations.default_intake_dir
    intake.mkdir(parents=True)
    (intake / "letter.pdf").write_bytes(b"%PDF-1.4\n")
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=ExtractingCore())  # type: ignore[arg-type]
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.core_started)
        await pilot.press("4", *"letter.pdf", "enter")
        form = app.query_one(DocumentForm)
        text = form.query_one("#doc-text", TextArea)
        bar = form.query_one("#doc-progress", ProgressBar)
        assert await until(pilot, lambda: text.text == "Previous patient's letter." and not form.running)
        assert bar.percentage == 1.0
        await pilot.press(*"missing.pdf", "enter")
        error = form.query_one("#doc-error", Label)
        assert await until(pilot, lambda: "missing.pdf: no such file" in str(error.render()))
        assert text.text == "" and bar.percentage == 0.0
        assert "letter.pdf" not in str(form.query_one("#doc-summary", Label).render())


async def test_escape_and_a_tab_key_at_once_leave_the_field_and_change_the_tab(locations: Locations) -> None:
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=RecordingCore())  # type: ignore[arg-type]
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.core_started)
        await pilot.press("3")
        type_fast(app, [*keys_for("abc"), "escape", "4"])
        assert await until(pilot, lambda: str(app.query_one("#tabs").active) == "document")  # type: ignore[attr-defined]
        assert app.query_one(PromptForm).box_text() == "abc"


async def test_a_name_typed_after_a_refusal_is_its_own_job_and_the_refusal_is_listed(locations: Locations) -> None:
    """Before: the refused "broken.pdf" went back in the box, and "enc.pdf" typed next became "broken.pdfenc.pdf"."""
    intake = locations.default_intake_dir
    intake.mkdir(parents=True)
    (intake / "enc.pdf").write_bytes(b"%PDF-1.4\n")
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=ExtractingCore())  # type: ignore[arg-type]
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.core_started)
        await pilot.press("4", *"broken.pdf", "enter")
        form = app.query_one(DocumentForm)
        assert await until(pilot, lambda: form.started == ["broken.pdf"] and not form.running)
        await pilot.press(*"enc.pdf", "enter")
        text = form.query_one("#doc-text", TextArea)
        assert await until(pilot, lambda: text.text == "Previous patient's letter." and not form.running)
        assert form.started == ["broken.pdf", "enc.pdf"]
        listed = str(app.query_one(DocumentsPane).render())
        assert "refused broken.pdf: no such file" in listed, listed


async def test_backspace_and_the_keys_right_after_it_act_in_order_in_every_field(locations: Locations) -> None:
    """Backspace ran as a binding once it reached the app, after the keys behind it: "abcde" + ⌫ X gave "abcde"."""
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=RecordingCore())  # type: ignore[arg-type]
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.core_started)
        await pilot.press("3")
        form = app.query_one(PromptForm)
        type_fast(app, [*"abcde", "backspace", "X", "backspace", "backspace", "Y", "left", "Z"])
        assert await until(pilot, lambda: form.box_text() == "abcZY"), form.box_text()
        await pilot.press("escape", "4")
        path = app.query_one("#doc-path", Input)
        assert await until(pilot, lambda: path.has_focus)
        type_fast(app, [*"abcde", "backspace", "X", "backspace", "backspace", "Y", "home", "Z"])
        assert await until(pilot, lambda: path.value == "ZabcY"), path.value
