"""The prompt form streams: its card shows the answer as it arrives, restarts with a retry, then the final reply."""

from __future__ import annotations

import asyncio

from textual.message import Message

from medops.console.app import MedopsApp
from medops.console.forms.prompt import STREAM_STEP, PromptForm, PromptStreaming, ReplyCard
from medops.console.forms.prompt_box import PromptBox
from medops.core.groq.requests import Completion, PromptRequest, PromptResult
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations
from tests.helpers.console_data import FrozenCore
from tests.helpers.waiting import until


class StreamingCore(FrozenCore):
    """A frozen core whose `ask` streams two attempts, pausing where the test looks."""

    def __init__(self) -> None:
        super().__init__()
        self.step = asyncio.Event()

    async def ask(self, request: PromptRequest) -> PromptResult:
        assert request.on_text is not None  # the form asks for a streamed answer
        request.on_text("")
        request.on_text("lost attempt " * 10)
        await self.wait_for_the_test()
        request.on_text("")  # the scheduler retries: the text starts again
        answer = "".join(f"word{n} " for n in range(60))
        for end in range(1, len(answer) + 1, 7):
            request.on_text(answer[:end])
        await self.wait_for_the_test()
        return PromptResult(Completion(answer, "llama-3.1-8b-instant", 12, 60), queue_wait=0.01, latency=0.2,
                            attempts=2, quota_left={})

    async def wait_for_the_test(self) -> None:
        await self.step.wait()
        self.step.clear()


async def test_a_card_shows_the_answer_so_far_then_the_reply(locations: Locations) -> None:
    core = StreamingCore()
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=core)
    # Kept by identity: the hook sees a message again at each node it bubbles through.
    posted: dict[int, PromptStreaming] = {}

    def record(message: Message) -> None:
        if isinstance(message, PromptStreaming):
            posted[id(message)] = message

    async with app.run_test(size=(120, 40), message_hook=record) as pilot:
        assert await until(pilot, lambda: app.core_started)
        await pilot.press("3")
        app.query_one("#prompt-text", PromptBox).text = "Streaming please."
        await pilot.press("enter")
        card = app.query_one(ReplyCard)
        assert await until(pilot, lambda: "streaming…" in str(card.render()) and "lost attempt" in str(card.render()))
        core.step.set()
        assert await until(pilot, lambda: "word" in str(card.render()))
        shown = str(card.render())
        assert "lost attempt" not in shown and "streaming…" in shown and "triage · normal" in shown
        core.step.set()
        form = app.query_one(PromptForm)
        assert await until(pilot, lambda: form.in_flight == 0)
        final = str(card.render())
        assert "streaming" not in final and "attempts 2" in final and "word59" in final
    # 60 pieces of the answer, but a redraw only per STREAM_STEP characters (and one per fresh start)
    redraws = [message.text for message in posted.values()]
    answer_redraws = [text for text in redraws if text.startswith("word")]
    assert 3 <= len(answer_redraws) <= 420 // STREAM_STEP + 1
    assert redraws.count("") == 2
