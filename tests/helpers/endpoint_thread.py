"""A local endpoint on its own thread and loop, for the blocking `groq.Groq` client."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from medops.core.groq.local.server import LocalEndpoint

T = TypeVar("T")


class EndpointThread:
    """Runs a LocalEndpoint in a background event loop so sync code can call it."""

    def __init__(self, endpoint: LocalEndpoint) -> None:
        self.endpoint = endpoint
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the endpoint's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    def __enter__(self) -> LocalEndpoint:
        self._thread.start()
        self.run(self.endpoint.start())
        return self.endpoint

    def __exit__(self, *exc: object) -> None:
        self.run(self.endpoint.stop())
        self.run(_end_the_rest())  # requests still held (a slow endpoint's) end here, not as "destroyed" at close
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


async def _end_the_rest() -> None:
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
