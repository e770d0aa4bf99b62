"""Waiting, bounded, for something another thread, process or the app's own loop does; nothing signals it
but polling. Each returns whether `check()` held in time, so a test says `assert ...` with its own context.

`until`: a Textual app under a `Pilot` (the pilot's pause lets the app handle its messages between looks).
`eventually`: an asyncio test without an app. `wait_for`: a blocking test (threads, subprocesses, tmux).
The bounds are generous: a busy 2-core machine may take seconds; a passing test never waits them out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot

APP_WAIT = 60.0  # seconds a core under the console may take on a busy machine
WAIT = 20.0  # seconds a thread or process may take to get somewhere
SCREEN_WAIT = 15.0  # seconds a screen may take to show up on a busy 2-core machine


async def until(pilot: Pilot[Any], check: Callable[[], bool], within: float = APP_WAIT) -> bool:
    """Let the app run until `check()` holds, or give up after `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        await pilot.pause(0.05)
    return check()


async def eventually(check: Callable[[], bool], within: float = WAIT) -> bool:
    """Let the event loop (and the threads and processes it waits on) run until `check()` holds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.01)
    return check()


def wait_for(check: Callable[[], bool], within: float = SCREEN_WAIT, every: float = 0.1) -> bool:
    """Block until `check()` holds, looking every `every` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(every)
    return check()
