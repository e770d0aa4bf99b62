"""What a member's fleet quota and the member itself share: its admissions as records, and what the quota asks
of the member (`FleetSide`).

The member (membership.Fleet) keeps each model's `FleetQuota`; a quota sends its settles and signals through
the member, and the member tells it when the store goes away and comes back. Both sides name only what is here,
so neither imports the other's private parts and the two modules import in one direction (membership -> quota).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from medops.core.fleet.store import QuotaStore
from medops.core.fleet.wire import Call, Entry, Flying, Released, Settled, Wire


@dataclass
class AdmissionRecord:
    """One admission of this instance, as the store should know it."""

    id: str
    tokens: int
    settled_at: float | None = None  # local monotonic
    used: int = 0
    released: bool = False
    synced: bool = False

    def state(self) -> tuple[float | None, int, bool]:
        """What the store must know of it; a write-back counts only if this did not change meanwhile."""
        return (self.settled_at, self.used, self.released)

    def entry(self, store: QuotaStore) -> Entry:
        if self.released:
            return Released(self.id)
        if self.settled_at is None:
            return Flying(self.id, self.tokens)
        return Settled(self.id, store.to_store_ms(self.settled_at), 1, self.used)


class FleetSide(Protocol):
    """What a fleet quota needs of its member: the store and its wire, who it is, and the queues its settles and
    signals go out through. Whether the store decides is not asked: the member tells each quota when that
    changes."""

    store: QuotaStore
    wire: Wire  # the current wire, or the older one (a subclass) while older members live
    instance: str
    epoch: str | None
    ever_seen: bool  # the store answered this member at least once (else its local share admits nothing)
    share_divisor: int
    flight_bound: float
    starvation_bound: float
    attempt_bound: float
    quotas: dict[str, Any]  # model -> its FleetQuota, registered by the quota itself

    def new_id(self) -> str: ...

    def new_seq(self) -> int: ...

    def send(self, record: AdmissionRecord, call: Call) -> None: ...

    def signal(self, call: Call) -> None: ...

    async def heartbeat(self) -> None: ...
