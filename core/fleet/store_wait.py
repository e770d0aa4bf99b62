"""A request on a member whose fleet store never answered waits for it at most store_wait, then fails saying so.

Such a member admits nothing (never fail open), so without a bound its requests
would wait for ever: a console's prompt sat at "waiting…" for minutes with no
reason given. Every caller of the core (the console, an agent embedding it, the
gateway) gets what `medops ask` gets: `StoreNeverReached` after store_wait,
naming the store and what to do. Once the store has answered the bound no
longer applies: a store that goes away later leaves the member its local share.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from medops.core.clock import Clock
from medops.core.errors import MedopsError
from medops.core.fleet.store import StoreNeverReached
from medops.core.snapshot import StoreSnapshot

T = TypeVar("T")


async def within_store_wait(asking: Awaitable[T], store: Callable[[], StoreSnapshot], wait: float, clock: Clock,
                            give_up: Callable[[MedopsError], bool]) -> T:
    """The answer to `asking` (a request submitted while the store had never answered); if after `wait` s of
    `clock` the store still has not, `give_up` ends the request with `StoreNeverReached` and that is raised.
    A caller that stops waiting takes the request out, as it would without the bound."""
    answer = asyncio.ensure_future(asking)
    timer = asyncio.ensure_future(clock.sleep(wait))
    try:
        await asyncio.wait((answer, timer), return_when=asyncio.FIRST_COMPLETED)
        if not answer.done() and (now := store()).never_reached:
            give_up(StoreNeverReached.after(now, wait))  # nothing was admitted: it is still queued
        return await answer
    finally:
        timer.cancel()
        if not answer.done():  # our caller was cancelled: so is the request
            answer.cancel()
