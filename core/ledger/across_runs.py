"""History across runs, one way for every read-model: the ledger's rows merged with this run's own.

A running core asks its ledger (on the ledger's thread, which writes what is
buffered before it reads) and adds this run's rows missing from the answer:
those still waiting after a failed write, and all of them when the ledger is
only read-only here. With the ledger off, or unreadable, only this run's rows
are known, and the answer says so (`earlier_runs` False, with a note) instead of
passing for "nothing happened before". Every history refuses an impossible
request with the one `HistoryRefused`.
"""

from __future__ import annotations

import collections
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TypeVar

from medops.core.errors import LedgerError
from medops.core.ledger.writer import Ledger

T = TypeVar("T")


class HistoryRefused(LedgerError):
    """A history read asked for no rows, too many, or an empty or reversed range; the message says what is allowed."""


def merged(recorded: Iterable[T], this_run: Iterable[T], at: Callable[[T], float]) -> list[T]:
    """`recorded` (newest first) plus this run's rows not among them, newest first.

    Counted, not deduplicated as a set: two identical rows in one instant are listed twice. The sort
    is stable, so within one instant the recorded order stands and a missing row comes after it.
    """
    recorded = list(recorded)
    in_ledger = collections.Counter(recorded)
    missing = []
    for row in this_run:
        if in_ledger[row]:
            in_ledger[row] -= 1
        else:
            missing.append(row)
    return sorted((*recorded, *missing), key=lambda row: -at(row))


async def across_runs(ledger: Ledger, read: Callable[[], Awaitable[Sequence[T]]] | None, this_run: Iterable[T],
                      at: Callable[[T], float], what: str, kept: str = "") -> tuple[list[T], bool, str]:
    """The ledger's rows (`read`, None when it is off) merged with `this_run`'s, newest first; whether earlier
    runs are among them (`earlier_runs`); and a note saying why not, or why this run is not recorded.

    `what` names the rows in the note ("requests"); `kept` says what this run keeps in memory, if it is bounded.
    """
    kept = f"; {kept}" if kept else ""
    if read is None:
        return merged((), this_run, at), False, \
            f"earlier runs' {what} cannot be shown: the ledger is off ({ledger.snapshot().detail}){kept}"
    try:
        recorded = await read()
    except LedgerError as exc:
        return merged((), this_run, at), False, f"earlier runs' {what} cannot be shown ({exc}){kept}"
    note = "" if ledger.recording else f"{what} of this run are not recorded ({ledger.snapshot().detail}){kept}"
    return merged(recorded, this_run, at), True, note
