"""Prompt form: send a prompt through the scheduler and show each reply as it lands."""

from __future__ import annotations

import collections
import itertools
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Input, Label, Select, Static

from medops.console import figures
from medops.console.error_text import describe_error
from medops.console.forms.core_handle import STARTING, CoreHandle
from medops.core.groq.requests import AGENTS

if TYPE_CHECKING:
    from medops.core.contract import CoreCommands
    from medops.core.groq.requests import PromptRequest, PromptResult

PRIORITIES = ("critical", "high", "normal")
STREAM_STEP = 64  # redraw a streaming card when its text has grown this many characters (not per piece)
RECALLED = 20  # prompts ↑/↓ bring back into the box (this console's memory only: never written anywhere)


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

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "recall(1)", "Earlier prompt", show=False),
        Binding("down", "recall(-1)", "Later prompt", show=False),
    ]

    def __init__(self, core: CoreHandle, models: Mapping[str, Any], default_model: str, *,
                 id: str | None = "prompt-form") -> None:
        super().__init__(id=id)
        self.core = core
        self.models = tuple(models)
        self.default_model = default_model if default_model in models else (self.models[0] if self.models else "")
        self._numbers = itertools.count(1)
        self.in_flight = 0
        self._finished: set[int] = set()  # cards showing their final reply or failure
        self._headers: dict[int, str] = {}  # "#n agent · priority · model" of each card
        self._sent: collections.deque[str] = collections.deque(maxlen=RECALLED)  # newest last
        self._recalling = 0  # how far back ↑ has gone (0: not recalling)
        self._draft = ""  # what was in the box when ↑ was first pressed

    def compose(self) -> ComposeResult:
        with Horizontal(classes="form-row"):
            yield Select([(a, a) for a in AGENTS], value=AGENTS[0], allow_blank=False, id="prompt-agent")
            yield Select([(p, p) for p in PRIORITIES], value="normal", allow_blank=False, id="prompt-priority")
            yield Select([(m, m) for m in self.models], value=self.default_model, allow_blank=False, id="prompt-model")
        with Horizontal(classes="form-row"):
            yield Input(placeholder="prompt text (enter sends)", id="prompt-text")
            yield Button("Send", id="prompt-send", variant="primary")
        yield Label("", id="prompt-error", classes="form-error")
        yield VerticalScroll(id="prompt-replies")

    @on(Input.Submitted, "#prompt-text")
    @on(Button.Pressed, "#prompt-send")
    def submit(self) -> None:
        """Validate, then hand the request to a worker; the form stays usable."""
        error = self.query_one("#prompt-error", Label)
        text_input = self.query_one("#prompt-text", Input)
        text = text_input.value.strip()
        if not text:
            error.update("Type a prompt first: the text is empty.")
            return
        core = self.core.ready()
        if core is None:
            error.update(STARTING)
            return
        error.update("")
        number = next(self._numbers)
        agent = str(self.query_one("#prompt-agent", Select).value)
        priority = str(self.query_one("#prompt-priority", Select).value)
        model = str(self.query_one("#prompt-model", Select).value)
        self._headers[number] = f"#{number} {agent} · {priority} · {figures.text(model)}"
        card = ReplyCard(f"{self._headers[number]} · [i]waiting…[/]", id=f"reply-{number}")
        self.query_one("#prompt-replies", VerticalScroll).mount(card, before=0)
        text_input.value = ""
        self._remember(text)
        self.in_flight += 1
        self._send(number, core, text, agent, priority, model)

    @work(exit_on_error=False, group="prompts")
    async def _send(self, number: int, core: CoreCommands, text: str, agent: str, priority: str, model: str) -> None:
        shown = [0]  # length of the text last drawn

        def on_text(so_far: str) -> None:
            # Each redraw renders the whole text: the step grows with it, so a long answer costs
            # a few dozen redraws, not one per STREAM_STEP characters.
            if not so_far or len(so_far) - shown[0] >= max(STREAM_STEP, shown[0] // 8):
                shown[0] = len(so_far)
                self.post_message(PromptStreaming(number, so_far))

        try:
            request = build_request(text, agent, priority, model, number, on_text)
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
        self._card(message.number).update(reply_text(message.number, message.result))

    @on(PromptFailed)
    def show_failure(self, message: PromptFailed) -> None:
        self.in_flight -= 1
        self._finished.add(message.number)
        card = self._card(message.number)
        card.add_class("failed")
        text_input = self.query_one("#prompt-text", Input)
        if not text_input.value:  # nothing typed since: the prompt goes back in the box, ready to fix and send
            text_input.value = message.text
            kept = "the prompt is back in the box"
        else:
            kept = "↑ in the box brings the prompt back"
        card.update(f"#{message.number} [reverse $error] failed [/] {figures.text(message.reason)} [dim]({kept})[/]")

    def action_recall(self, step: int) -> None:
        """↑ puts earlier prompts in the box, ↓ later ones, then what was being typed before ↑."""
        text_input = self.query_one("#prompt-text", Input)
        if self._recalling and text_input.value != self._sent[-self._recalling]:
            self._recalling = 0  # edited since it was recalled: that is the draft now
        if self._recalling == 0:
            self._draft = text_input.value
        position = max(0, min(len(self._sent), self._recalling + step))
        if self._recalling == 0 and position == 1 and len(self._sent) > 1 and self._sent[-1] == self._draft:
            position = 2  # the box already holds the latest (a refused prompt put back): go one further
        self._recalling = position
        text_input.value = self._sent[-position] if position else self._draft
        text_input.cursor_position = len(text_input.value)

    def _remember(self, text: str) -> None:
        if not self._sent or self._sent[-1] != text:
            self._sent.append(text)
        self._recalling = 0
        self._draft = ""

    def _card(self, number: int) -> ReplyCard:
        return self.query_one(f"#reply-{number}", ReplyCard)


def build_request(text: str, agent: str, priority: str, model: str, number: int,
                  on_text: Callable[[str], None] | None = None) -> PromptRequest:
    """A `PromptRequest` as the scheduler's contract defines it (streamed when `on_text` is given)."""
    from medops.core.groq.requests import Priority, PromptRequest

    # Card numbers restart with each console; the id goes to the ledger, so it must be unique across runs.
    return PromptRequest(prompt=text, agent=agent, priority=Priority.parse(priority), model=model,
                         request_id=f"console-{number}-{uuid.uuid4().hex[:12]}", on_text=on_text)


def reply_text(number: int, result: PromptResult) -> str:
    """The reply and its cost: tokens, latency, queue wait, attempts."""
    completion = result.completion
    return (f"#{number} [b]{figures.text(completion.model)}[/]"
            f" · tokens {completion.prompt_tokens}+{completion.completion_tokens}"
            f" · latency {figures.millis(result.latency)} · queue wait {figures.millis(result.queue_wait)}"
            f" · attempts {result.attempts}\n{figures.text(completion.text)}")
