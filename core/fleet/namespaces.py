"""The other fleets on the same store: namespaces other than one's own, found by a bounded SCAN.

A namespace is derived from the Groq key (an HMAC of it, never the key), or without a key from the
endpoint's URL (`store.namespace_for`): a worker pointed at another endpoint, or holding another key,
lands in a fleet of its own on the same store, and no view of this fleet lists it. Naming the others
lets `medops fleet` and the Fleet tab say so. Names only: their keys are never read.
"""

from __future__ import annotations

import re
from typing import Any, cast

import redis.asyncio as redis
from redis.exceptions import RedisError

SCAN_COUNT = 1_000  # keys the store looks at per SCAN call
SCAN_CALLS = 4  # calls at most: a reading looks at no more than 4,000 keys, however large the store
MAX_OTHERS = 20  # names kept at most
# A name safe to print and to type back (`medops fleet --namespace NAME`); others (planted by whoever can
# write the store) are left out.
SHOWN = re.compile(r"[A-Za-z0-9._-]{1,64}")
MEMBERS = re.compile(rb"medops:\{(.+)\}:members")


async def other_namespaces(client: redis.Redis, namespace: str) -> tuple[str, ...]:
    """The namespaces other than `namespace` with a member list on this store, sorted (at most MAX_OTHERS,
    from the first SCAN_CALLS * SCAN_COUNT keys); () if the store user may not SCAN or the store errs."""
    found: set[str] = set()
    cursor: Any = 0
    try:
        for _ in range(SCAN_CALLS):
            cursor, keys = await cast(Any, client.scan(cursor, match="medops:{*}:members", count=SCAN_COUNT))
            for key in keys:
                match = MEMBERS.fullmatch(key if isinstance(key, bytes) else str(key).encode())
                name = match[1].decode(errors="replace") if match else ""
                if name != namespace and SHOWN.fullmatch(name):
                    found.add(name)
            if int(cursor) == 0 or len(found) >= MAX_OTHERS:
                break
    except (RedisError, OSError):
        return ()  # a nicety: the fleet's own reading does not fail for it
    return tuple(sorted(found)[:MAX_OTHERS])
