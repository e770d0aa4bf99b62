"""The prompt form never loses what was typed: a refused prompt comes back to the box, ↑/↓ recall earlier ones."""

from __future__ import annotations

import asyncio

import pytest
from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import Select

from medops.console.app import MedopsApp
from medops.console.forms.prompt import PromptForm, ReplyCard, build_request, reply_text
from medops.console.forms.prompt_box import PromptBox
from medops.core.groq.chat import ToolCall
from medops.core.groq.quota import RequestTooLarge
from medops.core.groq.requests import Completion, InvalidRequest, Priority, PromptRequest, PromptResult
from medops.core.resource_core import ResourceCore
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations
from tests.helpers.console_data import FrozenCore
from tests.helpers.redis_server import free_port
from tests.helpers.waiting import until


class RefusingCore(FrozenCore):
    """Refuses every prompt as too large, after the test lets it."""

    def __init__(self) -> None:
        super().__init__()
        self.go = asyncio.Event()

    async def ask(self, request: PromptRequest) -> PromptResult:
        await self.go.wait()
        raise RequestTooLarge("request needs about 10,271 tokens, more than the model's per-minute limit")


async def test_a_refused_prompt_comes_back_and_earlier_ones_are_recalled(locations: Locations) -> None:
    core = RefusingCore()
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=core)
    async with app.run_test(size=(120, 40)) as pilot:
        assert await until(pilot, lambda: app.core_started)
        await pilot.press("3")
        box = app.query_one("#prompt-text", PromptBox)
        form = app.query_one(PromptForm)
        box.text = "first, a very long referral letter"
        await pilot.press("enter")
        assert box.text == ""
        core.go.set()
        assert await until(pilot, lambda: form.in_flight == 0)
        assert box.text == "first, a very long referral letter"  # back in the box, ready to shorten
        assert "the prompt is back in the box" in str(app.query_one(ReplyCard).render())

        core.go.clear()
        box.text = "second prompt"
        await pilot.press("enter")
        await pilot.press(*"now typing a third")
        core.go.set()
        assert await until(pilot, lambda: form.in_flight == 0)
        assert box.text == "now typing a third"  # what is being typed is never overwritten
        assert "↑ in the box brings the prompt back" in str(app.query(ReplyCard).first().render())

        await pilot.press("up")
        assert box.text == "second prompt"
        await pilot.press("up")
        assert box.text == "first, a very long referral letter"
        await pilot.press("up")  # no earlier one: stays
        assert box.text == "first, a very long referral letter"
        await pilot.press("down", "down")
        assert box.text == "now typing a third"  # back to the draft ↑ left, not an empty box
        await pilot.press("up", *" (edited)", "down")
        assert box.text == "second prompt (edited)"  # an edited recall is the draft now: ↓ keeps it
        await pilot.press("up")
        assert box.text == "second prompt"


def test_request_ids_are_unique_across_consoles_and_only_ids() -> None:
    first, again = build_request("x", "triage", "normal", "llama-3.1-8b-instant", 1), \
        build_request("x", "triage", "normal", "llama-3.1-8b-instant", 1)
    assert first.request_id.startswith("console-1-") and first.request_id != again.request_id
    with pytest.raises(InvalidRequest, match="request_id must be"):
        PromptRequest("x", "triage", request_id="Jane Roe's referral")


class RecordingCore(FrozenCore):
    """Answers every prompt at once and keeps the requests it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[PromptRequest] = []

    async def ask(self, request: PromptRequest) -> PromptResult:
        self.asked.append(request)
        return PromptResult(Completion("noted", request.model or "", 3, 1), queue_wait=0.0, latency=0.01, attempts=1)


async def pick(pilot: Pilot[None], select_id: str, steps_up: int) -> None:
    """Open a select by keys and move `steps_up` options up from its current value, as a user would."""
    pilot.app.query_one(select_id, Select).focus()
    await pilot.press("enter", *["up"] * steps_up, "enter")


@pytest.mark.parametrize(("steps_up", "chosen"), [(2, Priority.CRITICAL), (1, Priority.HIGH), (0, Priority.NORMAL)])
async def test_the_priority_picked_in_the_form_is_the_one_the_core_receives(
        locations: Locations, steps_up: int, chosen: Priority) -> None:
    core = RecordingCore()
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=core)  # type: ignore[arg-type]
    async with app.run_test(size=(120, 40)) as pilot:
        assert await until(pilot, lambda: app.core_started)
        await pilot.press("3")
        await pick(pilot, "#prompt-priority", steps_up)
        assert app.query_one("#prompt-priority", Select).value == chosen.label
        app.query_one(PromptBox).focus()
        await pilot.press(*"sudden chest pain", "enter")
        assert await until(pilot, lambda: len(core.asked) == 1)
        assert core.asked[0].priority is chosen
        assert core.asked[0].prompt == "sudden chest pain"


async def test_a_card_says_why_it_waits_and_keeps_agent_and_priority_when_done(locations: Locations) -> None:
    core = RefusingCore()
    core.paused = True
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=core)  # type: ignore[arg-type]
    async with app.run_test(size=(120, 40)) as pilot:
        assert await until(pilot, lambda: app.snapshots_applied > 0)
        await pilot.press("3")
        app.query_one("#prompt-priority", Select).value = "high"
        app.query_one(PromptBox).text = "a question"
        await pilot.press("enter")
        card = app.query_one(ReplyCard)
        assert "intake is paused (i resumes it)" in str(card.render())
        core.go.set()
        assert await until(pilot, lambda: app.query_one(PromptForm).in_flight == 0)
        assert "#1 triage · high · " in str(card.render())  # the finished card keeps who asked and how urgent


def test_a_system_prompt_goes_before_the_prompt() -> None:
    request = build_request("Synthetic note.", "triage", "high", "llama-3.1-8b-instant", 3, system="Answer in JSON.")
    assert [m["role"] for m in request.chat.messages] == ["system", "user"]
    assert build_request("x", "triage", "high", "llama-3.1-8b-instant", 4).chat.messages[0]["role"] == "user"


def test_a_reply_card_shows_the_finish_reason_and_each_tool_call_as_text() -> None:
    completion = Completion(text="", model="m", prompt_tokens=10, completion_tokens=5, finish_reason="tool_calls",
                            tool_calls=(ToolCall("call_1", "lookup_icd10_code", '{"code": "[b]A00"}'),))
    card = reply_text("#1 triage", PromptResult(completion, queue_wait=0.0, latency=0.1, attempts=1))
    plain = Text.from_markup(card).plain
    assert "finish tool_calls" in plain and 'tool call lookup_icd10_code({"code": "[b]A00"})' in plain


async def test_a_read_only_console_sends_no_prompt_and_says_why(locations: Locations) -> None:
    # Seen in a trial: `medops --read-only` ("watch only") still sent prompts and spent the organisation's quota.
    core = RecordingCore()
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=core, read_only=True)  # type: ignore[arg-type]
    async with app.run_test(size=(120, 40)) as pilot:
        assert await until(pilot, lambda: app.core_started)
        await pilot.press("3")
        app.query_one(PromptBox).focus()
        await pilot.press(*"sudden chest pain", "enter")
        await pilot.pause()
        error = str(app.query_one("#prompt-error").render())
        assert "Read-only console (--read-only): sending a prompt refused, nothing was sent" in error
        assert app.query_one(PromptBox).text == "sudden chest pain"  # what was typed stays
        await pilot.pause(0.3)
        assert core.asked == []


async def test_ctrl_l_clears_the_prompt_box_and_the_footer_and_help_say_so(locations: Locations) -> None:
    # Seen in a trial: clearing the box needed F7 (Textual's select-all), which nothing documented.
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=RecordingCore())  # type: ignore[arg-type]
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.core_started)
        await pilot.press("3", *"first line", "ctrl+j", *"second line")
        box = app.query_one(PromptBox)
        assert box.text == "first line\nsecond line"
        assert any(b.key == "ctrl+l" and b.description == "Clear"
                   for b in (active.binding for active in app.active_bindings.values() if active.enabled))
        await pilot.press("ctrl+l")
        assert box.text == ""
        await pilot.press("up")  # what was cleared was never sent: ↑ has nothing to recall
        assert box.text == ""
        assert ("^l", "Prompt: Clear") in app.key_list()


@pytest.mark.usefixtures("knowledge_ready")
async def test_a_prompt_on_a_console_whose_store_never_answered_says_why_and_fails_after_store_wait(
        locations: Locations) -> None:
    # #28 second trial: `MEDOPS_STORE_URL=redis://127.0.0.1:6377/0 medops` with no redis there held a prompt at
    # "waiting…" for more than 4.5 minutes, with no reason and no end.
    url = f"redis://127.0.0.1:{free_port()}/0"
    settings = Settings(refresh_interval=0.25, store_url=url, store_wait=2.0)
    app = MedopsApp(settings, locations, core=ResourceCore(settings, locations, role="console"))
    async with app.run_test(size=(120, 40)) as pilot:
        assert await until(pilot, lambda: app.core_started and app.query_one(PromptForm).store_unreached)
        await pilot.press("3")
        app.query_one(PromptBox).text = "a synthetic question"
        await pilot.press("enter")
        card = app.query_one(ReplyCard)
        assert "waiting: quota store never reached, nothing is admitted until it answers (fails after 2 s, " \
               "store_wait)…" in str(card.render())
        assert await until(pilot, lambda: app.query_one(PromptForm).in_flight == 0, within=20)
        assert f"failed  StoreNeverReached: quota store {url} never answered in 2 s" in str(card.render())
