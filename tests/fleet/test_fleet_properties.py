"""Property: any interleaving of three members' admissions, settles, releases and 429s keeps every window in limit."""

from __future__ import annotations

import asyncio
import itertools

import redis.asyncio as aredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medops.core.groq.quota import Reservation
from medops.core.settings.config import ModelLimits
from tests.helpers.fleet_helpers import MODEL, admit, fleet_of, member
from tests.helpers.redis_server import RedisServer

# Small enough that any few admissions fill a window, by requests or by tokens.
LIMITS = ModelLimits(rpm=5, rpd=7, tpm=240, tpd=300)

# Mostly small requests, so the request windows fill too, not only the token ones.
admission = st.tuples(st.just("admit"), st.integers(0, 2), st.sampled_from([1, 2, 3, 30, 90]), st.integers(0, 2))
operation = st.one_of(
    admission, admission, admission,
    st.tuples(st.just("settle"), st.integers(0, 2), st.integers(0, 200), st.integers(0, 9)),
    st.tuples(st.just("release"), st.integers(0, 2), st.integers(0, 0), st.integers(0, 9)),
    st.tuples(st.just("429"), st.integers(0, 2), st.integers(0, 2), st.integers(0, 0)),
)


RUNS = itertools.count()  # each example its own namespace on the one server


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(operation, min_size=15, max_size=50))
def test_no_interleaving_puts_a_window_over_its_limit(redis_server: RedisServer,
                                                      steps: list[tuple[str, int, int, int]]) -> None:
    asyncio.run(_play(redis_server.url, f"prop-{next(RUNS)}", steps))


async def _play(url: str, namespace: str, steps: list[tuple[str, int, int, int]]) -> None:
    async with aredis.Redis.from_url(url, decode_responses=True) as store, \
            member(url, LIMITS, "m0", namespace=namespace) as m0, \
            member(url, LIMITS, "m1", namespace=namespace) as m1, \
            member(url, LIMITS, "m2", namespace=namespace) as m2:
        members = (m0, m1, m2)
        held: list[list[Reservation]] = [[], [], []]
        for kind, who, amount, pick in steps:
            quota = members[who]
            if kind == "admit":
                answer = await admit(quota, amount, priority=pick)
                if isinstance(answer, Reservation):
                    held[who].append(answer)
            elif kind in ("settle", "release") and held[who]:
                reservation = held[who].pop(pick % len(held[who]))
                if kind == "settle":
                    quota.settle(reservation, min(amount, reservation.tokens))
                else:
                    quota.release(reservation)
            elif kind == "429":
                quota.observe_429(0.05 * (amount + 1))
            for m in members:  # settles and signals reach the store in the background
                await fleet_of(m).flush()
            await fleet_of(m0).heartbeat()
            view = {w.name: w for w in m0.snapshot().windows}
            for window in view.values():
                assert window.used <= window.limit, (window, steps)
            # Every member's own part adds up to the fleet's count: nothing lost, nothing counted twice.
            own = [{w.name: w.own for w in m.snapshot().windows} for m in members]
            for name in ("rpm", "tpm"):
                assert sum(o[name] or 0 for o in own) == view[name].used
            # The store's part of each member (what the others would carry for it over an emptied store) is its
            # own count, window by window.
            parts = await store.hgetall(f"medops:{{{namespace}}}:q:{MODEL}:part")
            for name, m in zip(("m0", "m1", "m2"), members, strict=True):
                for d, window in enumerate(("rpm", "rpd", "tpm", "tpd"), start=1):
                    assert int(parts.get(f"{name}|{d}", 0)) == (own[members.index(m)][window] or 0), (name, window)
