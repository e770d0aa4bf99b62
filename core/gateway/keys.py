"""Agent keys: what one key allows, how a key is made and hashed, and the contract of where keys are kept.

A key is `mdk_` and 32 random bytes, shown once when made. Only its digest is
kept (HMAC-SHA256: the key is random, so a slow hash would add nothing but
latency to every request), and a request's key is found by its digest, so no
clear key is ever stored or compared. Two books keep them: a file in the data
folder (key_file.py) and the fleet's store (key_redis.py), one contract.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from medops.core.errors import MedopsError
from medops.core.groq.requests import AGENTS, Priority

KEY_PREFIX = "mdk_"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,47}")
# Revocation reaches every gateway within a second: a book may answer from what it read this long ago.
FRESH_FOR = 0.5
LAST_USED_INTERVAL = 5.0  # seconds between two writes of the keys' last use


class KeyBookError(MedopsError):
    """Keys could not be added, listed or revoked (a name taken, a bad value, the book unreadable)."""


class KeyBookUnavailable(KeyBookError):
    """The store holding the keys did not answer, and this key was never seen: it cannot be checked now."""


@dataclass(frozen=True)
class AgentKey:
    """One agent key as kept (never the key itself): who it speaks for and what it may ask."""

    name: str  # the client label on every request: in the ledger, the fleet stream, metrics
    agent: str  # one of AGENTS
    priority: Priority  # a request's priority when it names none
    max_priority: Priority  # the most a request's X-Medops-Priority may ask
    models: tuple[str, ...] = ()  # the models it may use; empty: every configured one
    created: float = 0.0  # wall time
    last_used: float | None = None  # wall time, written in batches (LAST_USED_INTERVAL)

    def allows(self, model: str) -> bool:
        return not self.models or model in self.models

    def to_record(self) -> dict[str, Any]:
        """What a book keeps for this key (last use apart: it changes on every request)."""
        return {"name": self.name, "agent": self.agent, "priority": self.priority.label,
                "max_priority": self.max_priority.label, "models": list(self.models), "created": self.created}

    @classmethod
    def from_record(cls, record: Mapping[str, Any], last_used: float | None = None) -> AgentKey:
        """A key back from a book's record; `KeyBookError` if the record is not one."""
        try:
            models = record.get("models", [])
            if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
                raise ValueError("models")
            return new_key(str(record["name"]), str(record["agent"]), str(record["priority"]),
                           str(record["max_priority"]), models, float(record["created"]), last_used)
        except (KeyError, TypeError, ValueError, MedopsError) as exc:
            raise KeyBookError(f"a stored key record is damaged ({type(exc).__name__}); revoke it and add it "
                               "again") from None


def new_key(name: str, agent: str, priority: str | Priority, max_priority: str | Priority | None,
            models: Iterable[str], created: float, last_used: float | None = None) -> AgentKey:
    """An `AgentKey` checked at the edge: a plain name, a known agent, a default within the maximum."""
    if not NAME.fullmatch(name):
        raise KeyBookError(f"a key's name is 1 to 48 letters, digits, '.', '_' or '-', starting with a letter or "
                           f"digit ({len(name)} characters given); it labels the key's requests everywhere")
    if agent not in AGENTS:
        raise KeyBookError(f"--agent must be one of {', '.join(AGENTS)}")
    default = Priority.parse(priority)
    ceiling = default if max_priority is None else Priority.parse(max_priority)
    if ceiling < default:
        raise KeyBookError(f"--max-priority {ceiling.label} is below --priority {default.label}; raise it or "
                           "leave it out (it is then the priority)")
    return AgentKey(name, agent, default, ceiling, tuple(dict.fromkeys(m.strip() for m in models if m.strip())),
                    created, last_used)


def new_secret() -> str:
    """A fresh key: `mdk_` and 32 random bytes, URL-safe."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """What a book keeps and looks a key up by (hex HMAC-SHA256 under a fixed label)."""
    return hmac.new(b"medops-gateway-key", secret.encode(), hashlib.sha256).hexdigest()


def looks_like_key(secret: str) -> bool:
    """Cheap first check: a presented key of the wrong form is refused without a lookup."""
    return secret.startswith(KEY_PREFIX) and 20 <= len(secret) <= 100


class KeyBook(Protocol):
    """Where agent keys are kept, by digest. Both books answer a revocation within `FRESH_FOR` everywhere."""

    async def add(self, key: AgentKey, key_digest: str) -> None:
        """Keep a new key; `KeyBookError` if its name is taken."""
        ...

    async def keys(self) -> tuple[AgentKey, ...]:
        """Every key, by name, with its last use."""
        ...

    async def revoke(self, name: str) -> bool:
        """Forget the key called `name`; False if there is none."""
        ...

    async def find(self, key_digest: str) -> AgentKey | None:
        """The key with this digest, as of at most `FRESH_FOR` ago; None if none. `KeyBookUnavailable`
        when the book cannot be read and the key was never seen."""
        ...

    def touch(self, name: str, wall: float) -> None:
        """Note a key's use now; written with the next `flush`."""
        ...

    async def flush(self) -> None:
        """Write the uses noted since the last flush."""
        ...

    async def close(self) -> None:
        """Flush and let go of the book."""
        ...


def index_of(key_digest: str) -> str:
    """What a book files a key under: the digest's first half. The lookup by it may take varying time; the
    whole digest is then compared in constant time (`same_digest`), so timing tells nothing of the rest."""
    return key_digest[:32]


def same_digest(kept: str, presented: str) -> bool:
    """Constant-time equality of two digests."""
    return hmac.compare_digest(kept.encode(), presented.encode())
