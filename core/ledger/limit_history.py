"""Limit changes across runs: the ledger's record, newest first, with this run's changes it has not got.

A running core merges its ledger's record with this run's changes as every
history read-model does (across_runs.py). `medops limits history` reads the
ledger file read-only, without a core.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from medops.core.errors import LedgerError
from medops.core.ledger.across_runs import HistoryRefused, across_runs
from medops.core.ledger.readers import LATEST_LIMIT_CHANGES, latest_limit_changes
from medops.core.ledger.writer import OFF, Ledger, LedgerUnavailable, lock_holder
from medops.core.snapshot import LimitChange

MAX_HISTORY = 10_000  # changes one request may ask for


@dataclass(frozen=True)
class LimitChangeHistory:
    """The latest limit changes, newest first, and whether earlier runs' changes are among them."""

    changes: tuple[LimitChange, ...]
    earlier_runs: bool  # False: the ledger could not be read, so only this run's changes are listed
    note: str = ""  # why earlier runs are missing, or why this run's changes are not being recorded; safe to show


def check_request(limit: int) -> None:
    """Refuse a count outside 1..MAX_HISTORY with a message saying what is allowed."""
    if not 1 <= limit <= MAX_HISTORY:
        raise HistoryRefused(f"asked for {limit} limit changes: ask for 1 to {MAX_HISTORY}")


async def latest_changes(ledger: Ledger, this_run: tuple[LimitChange, ...], limit: int,
                         key: str | None = None) -> LimitChangeHistory:
    """The `limit` latest changes (only `key`'s if given) across runs, as far as `ledger` can tell."""
    check_request(limit)
    wanted = tuple(change for change in this_run if key is None or change.key == key)
    # Enough rows that every change of this run the ledger holds is among them if it belongs in the answer.
    read = None if ledger.mode == OFF else lambda: latest_limit_changes(ledger, limit + len(wanted), key)
    rows, earlier_runs, note = await across_runs(ledger, read, wanted, lambda change: change.at, "changes")
    return LimitChangeHistory(tuple(rows[:limit]), earlier_runs, note)


def read_ledger_file(path: Path, limit: int, key: str | None = None) -> LimitChangeHistory:
    """The latest changes recorded in the ledger at `path`, opened read-only; blocking.

    Raises LedgerUnavailable, naming the process, when a running medops holds the file.
    """
    check_request(limit)
    if not path.exists():
        return LimitChangeHistory((), earlier_runs=True,
                                  note=f"no ledger at {path} yet: no medops has run with this data folder")
    try:
        connection = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise LedgerUnavailable(unreadable(path, str(exc))) from None
    try:
        rows = connection.execute(LATEST_LIMIT_CHANGES, [limit, key]).fetchall()
    except duckdb.CatalogException:
        return LimitChangeHistory((), earlier_runs=True,
                                  note=f"{path.name} was written by a medops that did not record limit changes yet")
    except duckdb.Error as exc:
        raise LedgerError(f"reading limit changes from {path} failed ({exc}); `medops doctor` checks the "
                          f"data folder") from None
    finally:
        connection.close()
    return LimitChangeHistory(tuple(LimitChange(*row) for row in rows), earlier_runs=True)


def unreadable(path: Path, error: str) -> str:
    """Why the ledger file cannot be opened, and what to do about it."""
    holder = lock_holder(error)
    if holder is None:
        return f"{path} cannot be opened ({error}); if it is damaged, move it aside (medops starts a fresh one)"
    who = f"process {holder.pid}" if holder.pid else "another process"
    if holder.program:
        who += f" ({holder.program})"
    return (f"{path.name} is in use by {who}, probably a medops running on this data folder, and DuckDB lets no "
            f"other process read it meanwhile: see the history in that medops's console (l opens the Limits form), "
            f"or run this again once it has stopped")
