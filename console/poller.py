"""`Poller`: the console's one refresh loop, as memray's live reporter has it.

A timer (or a caller) only asks; one worker fetches; a `Polled` message carries
the answer, or why there is none, back to the owner's loop, where the poller hands
it on. An ask that finds a fetch under way is folded into one follow-up fetch,
made once the answer has landed, so polls coalesce and never overlap.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from textual.dom import DOMNode
from textual.message import Message
from textual.timer import Timer

from medops.console.error_text import describe_error

T = TypeVar("T")


def _always() -> bool:
    return True


class Polled(Message, bubble=False):
    """One fetch's answer (`value`), or why there is none (`reason`), on its way to the poller's owner."""

    def __init__(self, poller: Poller[Any], value: object, reason: str | None) -> None:
        super().__init__()
        self.poller = poller
        self.value = value
        self.reason = reason


class Polling:
    """Mixed into a poller's owner (an app, screen or widget): hands each `Polled` message to its poller."""

    async def _on_polled(self, message: Polled) -> None:
        await message.poller.land(message)


class Poller(Generic[T]):
    """Fetches with `fetch` in one worker at a time when asked (by `every`'s timer or `ask`) and `wanted` allows;
    the owner's loop gets the answer in `arrived`, or the reason (safe to show) in `failed`."""

    def __init__(self, owner: DOMNode, fetch: Callable[[], Awaitable[T]], *, group: str,
                 arrived: Callable[[T], Awaitable[None] | None], failed: Callable[[str], None],
                 wanted: Callable[[], bool] = _always) -> None:
        self.owner = owner
        self.fetch = fetch
        self.group = group
        self.arrived = arrived
        self.failed = failed
        self.wanted = wanted
        self.busy = False  # a fetch is out, or its answer has not landed yet
        self._again = False  # asked while busy: one more fetch once the answer lands
        self._timer: Timer | None = None
        self.interval: float | None = None  # seconds between the timer's asks (None: no timer)

    def every(self, seconds: float, only_while: Callable[[], bool] = _always) -> None:
        """Ask every `seconds` from now on, at the ticks `only_while` allows (a timer already running is replaced)."""
        self.stop()

        def tick() -> None:
            if only_while():
                self.ask()

        self._timer = self.owner.set_interval(seconds, tick)
        self.interval = seconds

    def stop(self) -> None:
        """No more asking by the timer; `ask` still works."""
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self.interval = None

    def ask(self) -> None:
        """Fetch now if wanted; during a fetch, once more after it."""
        if not self.wanted():
            return
        if self.busy:
            self._again = True
            return
        self.busy = True
        self.owner.run_worker(self._fetch(), group=self.group, exclusive=True, exit_on_error=False)

    async def _fetch(self) -> None:
        try:
            value = await self.fetch()
        except Exception as exc:  # a broken source must not take the console down: the owner says why
            self.owner.post_message(Polled(self, None, describe_error(exc)))
        else:
            self.owner.post_message(Polled(self, value, None))

    async def land(self, message: Polled) -> None:
        """On the owner's loop: hand the answer on (awaiting `arrived` if it is async), then make the follow-up
        fetch an ask during the fetch called for."""
        message.stop()
        self.busy = False
        if message.reason is not None:
            self.failed(message.reason)
        else:
            applied = self.arrived(message.value)  # type: ignore[arg-type]  # what `fetch` returned, a T
            if inspect.isawaitable(applied):
                await applied
        if self._again:
            self._again = False
            self.ask()
