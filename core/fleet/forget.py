"""Forgetting members that have stopped: their rows leave `medops fleet`, the Fleet tab and the Overview.

A member's row is its entry in the namespace's `members` hash and its published
snapshot (`snap:INSTANCE`); both go. Its heartbeat scores stay until the
quota's own pruning (a day), as they count for nothing once it is not alive.
A short CLI run (`medops status`, `extract`, `kb`) forgets itself as it leaves;
an operator or oncall user forgets members that left or died
(`medops fleet forget`). Plain Redis commands on keys those users may write
(`acl.MEMBER_WRITES`, `acl.FORGET_WRITES`): no function of the quota's library.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import redis.asyncio as redis

from medops.core.fleet.store_writes import writing
from medops.core.fleet.view import FleetUnavailable, MemberState, read_fleet
from medops.core.fleet.wire import namespace_prefix

Which = Literal["left", "gone", "stopped"]  # "stopped": left or gone


async def drop_rows(client: redis.Redis, prefix: str, instances: Sequence[str]) -> None:
    """Remove these members' entries and snapshots in one round trip (RedisError as the store answers)."""
    if not instances:
        return
    async with client.pipeline(transaction=False) as pipe:
        pipe.hdel(f"{prefix}members", *instances)
        pipe.delete(*(f"{prefix}snap:{name}" for name in instances))
        await pipe.execute()


@dataclass(frozen=True)
class Forgotten:
    """What one `forget` removed, by state, and how many rows it kept because their members still run."""

    left: tuple[str, ...]
    gone: tuple[str, ...]
    kept: int  # alive or stale rows among those asked for

    def describe(self) -> str:
        """'forgot 3 members (2 left, 1 gone); 4 alive or stale kept'."""
        total = len(self.left) + len(self.gone)
        return (f"forgot {total} member{'s' if total != 1 else ''} ({len(self.left)} left, {len(self.gone)} gone)"
                f"; {self.kept} alive or stale kept")


async def forget(url: str, namespace: str, password: str | None = None, instance: str | None = None,
                 which: Which = "stopped") -> Forgotten:
    """Forget `instance` if it has stopped, else every member in `which` state; never a running one.
    `FleetUnavailable` when the store cannot be read or this user may not write the rows."""
    view = await read_fleet(url, namespace, password, left_for=float("inf"))
    wanted = {MemberState.LEFT, MemberState.GONE} if which == "stopped" else {MemberState(which)}
    asked = [m for m in view.members if (m.instance == instance if instance is not None else True)]
    if instance is not None and not asked:
        raise FleetUnavailable(f"no member named {instance!r} is listed by the store (see `medops fleet`)")
    chosen = [m for m in asked if m.state in wanted]
    async with writing(url, password, "forget members", "an operator or oncall user") as client:
        await drop_rows(client, namespace_prefix(namespace), [m.instance for m in chosen])
    return Forgotten(tuple(m.instance for m in chosen if m.state == MemberState.LEFT),
                     tuple(m.instance for m in chosen if m.state == MemberState.GONE),
                     sum(1 for m in asked if m.state.present))
