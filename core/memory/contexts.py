"""`AgentContextPool`: the reference design's pool of agent contexts, with figures.

Contexts are made ahead (`agent_context_pool_size`), handed to agents by id,
cleared and kept on release. Figures: idle, active, contexts created because
the pool was empty, how many acquisitions the pool served (reuse ratio), and
contexts held longer than `context_leak_seconds` on the core's clock (leaks).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from medops.core.clock import Clock
from medops.core.snapshot import ContextPoolSnapshot

log = logging.getLogger(__name__)


@dataclass
class AgentContext:
    """One agent's working state: messages, state and metadata (cleared between agents).

    `messages` is the agent's conversation in Groq's shape: sent as `PromptRequest(messages=context.messages)`
    and extended with each answer's `completion.message` and its tool results."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def clear(self) -> None:
        """Forget everything the last agent left."""
        self.messages.clear()
        self.state.clear()
        self.metadata.clear()


@dataclass(frozen=True)
class HeldContext:
    """A context an agent has held past the leak threshold (the id only: contents are patient data)."""

    agent_id: str
    held_for: float  # seconds


@dataclass
class _Lease:
    context: AgentContext
    since: float  # clock.monotonic() at acquire
    reported: bool = False  # logged as a leak already


class AgentContextPool:
    """Hands out pooled contexts by agent id; counts reuse, overflow and leaks."""

    def __init__(self, pool_size: int, clock: Clock, leak_seconds: float) -> None:
        self._pool_size = pool_size
        self._clock = clock
        self._leak_seconds = leak_seconds
        self._idle = [AgentContext() for _ in range(pool_size)]
        self._active: dict[str, _Lease] = {}
        self._acquisitions = 0
        self._reuses = 0
        self._created_beyond_pool = 0
        self._lock = threading.Lock()  # agents may run in worker threads

    def acquire(self, agent_id: str) -> AgentContext:
        """The agent's context: the one it holds already, else one from the pool, else a new one."""
        with self._lock:
            lease = self._active.get(agent_id)
            if lease is not None:
                return lease.context
            self._acquisitions += 1
            if self._idle:
                context = self._idle.pop()
                self._reuses += 1
            else:
                context = AgentContext()
                self._created_beyond_pool += 1
            self._active[agent_id] = _Lease(context, self._clock.monotonic())
            return context

    def release(self, agent_id: str) -> bool:
        """Clear the agent's context and keep it if the pool has room; False if it held none."""
        with self._lock:
            lease = self._active.pop(agent_id, None)
            if lease is None:
                return False
            lease.context.clear()
            if len(self._idle) < self._pool_size:
                self._idle.append(lease.context)
            return True

    @contextmanager
    def lease(self, agent_id: str) -> Iterator[AgentContext]:
        """`with pool.lease(agent_id) as context:` acquires, and releases on the way out."""
        context = self.acquire(agent_id)
        try:
            yield context
        finally:
            self.release(agent_id)

    def held_too_long(self) -> tuple[HeldContext, ...]:
        """Contexts held longer than the leak threshold, longest first."""
        with self._lock:
            return self._held_too_long(self._clock.monotonic())

    def snapshot(self) -> ContextPoolSnapshot:
        """The pool's figures now; logs each leak once, when first seen."""
        now = self._clock.monotonic()
        with self._lock:
            leaks = self._held_too_long(now)
            for leak in leaks:
                lease = self._active[leak.agent_id]
                if not lease.reported:
                    lease.reported = True
                    log.warning("agent %s has held its context for %.0f s (over %.0f s): is it released?",
                                leak.agent_id, leak.held_for, self._leak_seconds)
            return ContextPoolSnapshot(
                pool_size=self._pool_size, idle=len(self._idle), active=len(self._active),
                created_beyond_pool=self._created_beyond_pool, acquisitions=self._acquisitions,
                reuses=self._reuses, leaked=len(leaks))

    def _held_too_long(self, now: float) -> tuple[HeldContext, ...]:
        held = [HeldContext(agent_id, now - lease.since) for agent_id, lease in self._active.items()
                if now - lease.since > self._leak_seconds]
        return tuple(sorted(held, key=lambda h: h.held_for, reverse=True))
