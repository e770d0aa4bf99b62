"""Prompt form: send a prompt through the scheduler and show each reply as it lands."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Input, Label, Select, Static

from medops.console import figures
from medops.console.error_text import describe_error
from medops.console.forms.capture import CapturingInput
from medops.console.forms.core_handle import STARTING, CoreHandle, needs_core, read_only_refusal
from medops.console.forms.prompt_box import PromptBox
from medops.core.groq.requests import AGENTS

if TYPE_CHECKING:
    from medops.core.contract import CoreCommands
    from medops.core.groq.requests import PromptRequest, PromptResult

PRIORITIES = ("critical", "high", "normal")
NO_CORE = needs_core("prompts", "Run medops without --attach, or send it with `medops ask`; what you type stays "
                                "in the box.")
STREAM_STEP = 64  # redraw a streaming card when its text has grown this many characters (not per piece)


class PromptAnswered(Message):
    """A reply came back for the form's request number `number`."""

    def __init__(self, number: int, result: Any) -> None:
        super().__init__()
        self.number = number
        self.result = result


class PromptStreaming(Message):
    """Request `number`'s answer so far ("" when an attempt starts again)."""

    def __init__(self, number: int, text: str) -> None:
        super().__init__()
        self.number = number
        self.text = text


class PromptFailed(Message):
    """The core refused or failed request `number`; `reason` is safe to show, `text` is what was sent."""

    def __init__(self, number: int, reason: str, text: str) -> None:
        super().__init__()
        self.number = number
        self.reason = reason
        self.text = text


class ReplyCard(Static):
    """One request: pending, then its reply with tokens, latency and queue wait."""

    DEFAULT_CLASSES = "reply"


class PromptForm(Vertical):
    """Agent, priority, model and text; several requests may be in flight; ↑/↓ recall earlier prompts."""

    def __init__(self, core: CoreHandle, models: Mapping[str, Any], default_model: str, *,
                 id: str | None = "prompt-form") -> None:
        super().__init__(id=id)
        self.core = core
        self.models = tuple(models)
        self.default_model = default_model if default_model in models else (self.models[0] if self.models else "")
        self._numbers = itertools.count(1)
        self.in_flight = 0
        self.intake_paused = False  # from the latest snapshot: a new card says why it waits
        self.store_unreached = False  # the same: this member's fleet store never answered, nothing is admitted
        self._finished: set[int] = set()  # cards showing their final reply or failure
        self._headers: dict[int, str] = {}  # "#n agent · priority · model" of each card

    def compose(self) -> ComposeResult:
        with Horizontal(classes="form-row"):
            yield Select([(a, a) for a in AGENTS], value=AGENTS[0], allow_blank=False, id="prompt-agent")
            yield Select([(p, p) for p in PRIORITIES], value="normal", allow_blank=False, id="prompt-priority")
            yield Select([(m, m) for m in self.models], value=self.default_model, allow_blank=False, id="prompt-model")
        yield CapturingInput(placeholder="system prompt (optional): sent before each prompt", id="prompt-system")
        with Horizontal(classes="form-row", id="prompt-row"):
            yield PromptBox(id="prompt-text", placeholder="prompt text: enter or ctrl+s sends, ctrl+j new line")
            yield Button("Send", id="prompt-send", variant="primary")
        yield Label("", id="prompt-error", classes="form-error")
        yield VerticalScroll(id="prompt-replies")

    def on_mount(self) -> None:
        if self.core.attached():  # said before anything is typed, and again at each send
            self.query_one("#prompt-error", Label).update(NO_CORE)

    def box_text(self) -> str:
        """What the prompt box holds now."""
        return self.query_one(PromptBox).text

    @on(Button.Pressed, "#prompt-send")
    def send_pressed(self) -> None:
        self.query_one(PromptBox).send()

    @on(PromptBox.Submitted)
    def submit(self, message: PromptBox.Submitted) -> None:
        """Validate the text the box held at the keypress, then hand it to a worker; the form stays usable."""
        error = self.query_one("#prompt-error", Label)
        text = message.text.strip()
        if not text:
            error.update("Type a prompt first: the text is empty.")
            return
        if self.core.read_only:
            message.box.put_back(message.text)
            error.update(read_only_refusal("sending a prompt"))
            return
        if self.core.attached():
            message.box.put_back(message.text)
            error.update(NO_CORE)
            return
        core = self.core.ready()
        if core is None:
            message.box.put_back(text)
            error.update(STARTING)
            return
        error.update("")
        number = next(self._numbers)
        agent = str(self.query_one("#prompt-agent", Select).value)
        priority = str(self.query_one("#prompt-priority", Select).value)
        model = str(self.query_one("#prompt-model", Select).value)
        system = self.query_one("#prompt-system", Input).value.strip()
        self._headers[number] = f"#{number} {agent} · {priority} · {figures.text(model)}"
        waiting = ("waiting: intake is paused (i resumes it)…" if self.intake_paused
                   else "waiting: quota store never reached, nothing is admitted until it answers (fails after "
                        f"{core.settings.store_wait:g} s, store_wait)…" if self.store_unreached else "waiting…")
        card = ReplyCard(f"{self._headers[number]} · [i]{waiting}[/]", id=f"reply-{number}")
        self.query_one("#prompt-replies", VerticalScroll).mount(card, before=0)
        self.in_flight += 1
        self._send(number, core, text, agent, priority, model, system)

    @work(exit_on_error=False, group="prompts")
    async def _send(self, number: int, core: CoreCommands, text: str, agent: str, priority: str, model: str,
                    system: str = "") -> None:
        shown = [0]  # length of the text last drawn

        def on_text(so_far: str) -> None:
            # Each redraw renders the whole text: the step grows with it, so a long answer costs
            # a few dozen redraws, not one per STREAM_STEP characters.
            if not so_far or len(so_far) - shown[0] >= max(STREAM_STEP, shown[0] // 8):
                shown[0] = len(so_far)
                self.post_message(PromptStreaming(number, so_far))

        try:
            request = build_request(text, agent, priority, model, number, on_text, system)
            result = await core.ask(request)
        except Exception as exc:  # every failure is shown on its card, none crashes the console
            self.post_message(PromptFailed(number, describe_error(exc), text))
        else:
            self.post_message(PromptAnswered(number, result))

    @on(PromptStreaming)
    def show_so_far(self, message: PromptStreaming) -> None:
        if message.number in self._finished:
            return
        if message.text:
            self._card(message.number).update(f"{self._headers[message.number]} · [i]streaming…[/]\n"
                                              f"{figures.text(message.text)}")
        else:  # an attempt (re)starts: whatever came before is void
            self._card(message.number).update(f"{self._headers[message.number]} · [i]sent, waiting for the answer…[/]")

    @on(PromptAnswered)
    def show_reply(self, message: PromptAnswered) -> None:
        self.in_flight -= 1
        self._finished.add(message.number)
        self._card(message.number).update(reply_text(self._headers[message.number], message.result))

    @on(PromptFailed)
    def show_failure(self, message: PromptFailed) -> None:
        self.in_flight -= 1
        self._finished.add(message.number)
        card = self._card(message.number)
        card.add_class("failed")
        # back in the box to fix, unless something was typed since or others are on their way (a fast typist)
        if self.in_flight == 0 and self.query_one(PromptBox).put_back(message.text):
            kept = "the prompt is back in the box"
        else:
            kept = "↑ in the box brings the prompt back"
        card.update(f"{self._headers[message.number]} [reverse $error] failed [/] {figures.text(message.reason)}"
                    f" [dim]({kept})[/]")

    def _card(self, number: int) -> ReplyCard:
        return self.query_one(f"#reply-{number}", ReplyCard)


def build_request(text: str, agent: str, priority: str, model: str, number: int,
                  on_text: Callable[[str], None] | None = None, system: str = "") -> PromptRequest:
    """A `PromptRequest` as the scheduler's contract defines it (streamed when `on_text` is given), after the
    system prompt when one is given."""
    from medops.core.groq.requests import Priority, PromptRequest

    # Card numbers restart with each console; the id goes to the ledger, so it must be unique across runs.
    return PromptRequest(prompt=text, agent=agent, priority=Priority.parse(priority), model=model,
                         request_id=f"console-{number}-{uuid.uuid4().hex[:12]}", on_text=on_text,
                         system=system or None)


def reply_text(header: str, result: PromptResult) -> str:
    """The card's header (number, agent, priority, model), then the reply's cost, why it ended, and the reply:
    its text and any tool calls, each with its arguments."""
    completion = result.completion
    calls = "".join(f"\n[b]tool call[/] {figures.text(call.name)}({figures.text(call.arguments)})"
                    for call in completion.tool_calls)
    return (f"{header}"
            f" · tokens {completion.prompt_tokens}+{completion.completion_tokens}"
            f" · latency {figures.millis(result.latency)} · queue wait {figures.millis(result.queue_wait)}"
            f" · attempts {result.attempts} · finish {figures.text(completion.finish_reason)}"
            f"\n{figures.text(completion.text)}{calls}")
