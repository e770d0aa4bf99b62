"""Agent keys in a file of the data folder (no store): digests only, mode 0600, every change under a lock.

Gateways and `medops gateway key ...` on one data folder share it: a gateway
re-reads it at most every `FRESH_FOR` (a small file; written whole and renamed
into place, so read without the lock), so a revocation holds within a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from medops.core.clock import Clock
from medops.core.gateway.keys import FRESH_FOR, AgentKey, KeyBookError, index_of, same_digest

FILE_NAME = "gateway_keys.json"


class FileKeyBook:
    """The keys of one data folder (see keys.KeyBook)."""

    def __init__(self, data_dir: Path, clock: Clock) -> None:
        self.path = data_dir / FILE_NAME
        self._lock_path = data_dir / (FILE_NAME + ".lock")
        self._clock = clock
        self._checked_at: float | None = None
        self._keys: dict[str, tuple[str, AgentKey]] = {}  # index_of(digest) -> (digest, key)
        self._uses: dict[str, float] = {}

    async def add(self, key: AgentKey, key_digest: str) -> None:
        def change(data: dict[str, Any]) -> None:
            if any(record.get("name") == key.name for record in data["keys"].values()):
                raise KeyBookError(f"a key called {key.name!r} exists; revoke it first or pick another name")
            data["keys"][key_digest] = key.to_record()
        await asyncio.to_thread(self._change, change)

    async def keys(self) -> tuple[AgentKey, ...]:
        data = await asyncio.to_thread(self._read_locked)
        return tuple(sorted((key for _, key in _parse(data).values()), key=lambda k: k.name))

    async def revoke(self, name: str) -> bool:
        found: list[str] = []

        def change(data: dict[str, Any]) -> None:
            found.extend(d for d, record in data["keys"].items() if record.get("name") == name)
            for d in found:
                del data["keys"][d]
            data["used"].pop(name, None)
        await asyncio.to_thread(self._change, change)
        return bool(found)

    async def find(self, key_digest: str) -> AgentKey | None:
        now = self._clock.monotonic()
        if self._checked_at is None or now - self._checked_at >= FRESH_FOR:
            self._checked_at = now
            self._keys = _parse(self._read())
        kept, key = self._keys.get(index_of(key_digest), ("", None))
        return key if key is not None and same_digest(kept, key_digest) else None

    def touch(self, name: str, wall: float) -> None:
        self._uses[name] = wall

    async def flush(self) -> None:
        uses, self._uses = self._uses, {}
        if not uses:
            return
        names = {key.name for _, key in self._keys.values()}

        def change(data: dict[str, Any]) -> None:
            for name, wall in uses.items():
                if name in names:  # a key revoked meanwhile stays gone
                    data["used"][name] = max(wall, float(data["used"].get(name, 0.0)))
        await asyncio.to_thread(self._change, change)

    async def close(self) -> None:
        await self.flush()

    # -- the file ------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read_locked(self) -> dict[str, Any]:
        with self._locked():
            return self._read()

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {"keys": {}, "used": {}}
        except (OSError, ValueError) as exc:
            raise KeyBookError(f"the gateway's key file {self.path} cannot be read ({type(exc).__name__}); "
                               "move it aside and add the keys again") from None
        if not isinstance(data, dict) or not isinstance(data.get("keys"), dict):
            raise KeyBookError(f"the gateway's key file {self.path} is not one medops wrote; move it aside and "
                               "add the keys again")
        data.setdefault("used", {})
        return data

    def _change(self, change: Callable[[dict[str, Any]], None]) -> None:
        with self._locked():
            data = self._read()
            change(data)
            temporary = self.path.with_suffix(".tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump(data, out, sort_keys=True)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, 0o600)  # an older file with looser bits is not kept as it was
            os.replace(temporary, self.path)


def _parse(data: dict[str, Any]) -> dict[str, tuple[str, AgentKey]]:
    used = data.get("used", {})
    return {index_of(d): (d, AgentKey.from_record(record, _wall(used.get(record.get("name")))))
            for d, record in data["keys"].items() if isinstance(record, dict)}


def _wall(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None
