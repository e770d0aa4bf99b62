"""Operator commands to fleet members, through the store: issued by name, acknowledged by each target.

A command (pause, resume, or set a limit) names its target (one instance, or
every member alive), the operator (user@host, as the operator's machine says),
the store's ACL user it was issued as (`ACL WHOAMI`: with the fleet's ACL users
only operators may add commands, so this is the store's word, not the
issuer's) and when it was issued. It is
appended to the fleet's command stream; each member reads the stream at its
heartbeat, carries out what is addressed to it through its own core's commands
and writes an acknowledgement: applied, or refused and why. The issuer waits a
few heartbeats and reports which applied, which refused, which did not answer,
and a named target that is gone. A limit set on every member is also kept in the
store as a fleet-wide setting (`shared_settings`), for members that join later.
Commands carry no patient data.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import logging
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

import redis.asyncio as redis

from medops.core.errors import MedopsError
from medops.core.fleet.entries import Malformed, Skips, text
from medops.core.fleet.shared_settings import SETTINGS_KEY, entry, storable
from medops.core.fleet.store_writes import writing
from medops.core.fleet.view import FleetUnavailable, read_fleet, read_sized
from medops.core.fleet.wire import namespace_prefix
from medops.core.inert_text import name as checked_name

Operation = Literal["pause", "resume", "set_limit", "cancel_request", "set_request_priority"]
# cancel_request and set_request_priority carry the request's id in `key` (and the priority in `value`).
OPERATIONS: tuple[str, ...] = ("pause", "resume", "set_limit", "cancel_request", "set_request_priority")
COMMANDS_KEPT = 1_000
ACK_TTL = 3_600.0
ACK_BYTES = 4_096  # an acknowledgement is a status and a short reason
COMMAND_BYTES = 4_096
ACK_STATUSES = ("applied", "refused")
ANSWER_WAIT = 4.0  # seconds an issuer waits for acknowledgements (a few heartbeats)

log = logging.getLogger(__name__)

Handler = Callable[["Command"], Awaitable[tuple[bool, str]]]


@dataclass(frozen=True)
class Command:
    """One operator command as the stream carries it."""

    id: str
    op: str
    target: str  # an instance id, or "*" for every member alive
    operator: str  # user@host
    issued_at: float  # wall time
    key: str = ""  # set_limit's key and value
    value: str = ""
    store_user: str = ""  # the ACL user the store authenticated the issuer as ("": sent by an older medops)

    def issued_by(self) -> str:
        """Who, as recorded: the store's ACL user first, then the user@host the operator's machine gave."""
        return f"store user {self.store_user or '(unknown)'}, {self.operator}"

    def describe(self) -> str:
        what = {"set_limit": f"set {self.key} = {self.value}", "cancel_request": f"cancel request {self.key}",
                "set_request_priority": f"set request {self.key}'s priority to {self.value}"}.get(self.op, self.op)
        return f"{what} (by {self.issued_by()})"


@dataclass(frozen=True)
class Acknowledgement:
    instance: str
    status: Literal["applied", "refused", "no answer", "gone"]
    detail: str = ""


def acknowledgement(instance: str, raw: bytes | str) -> Acknowledgement:
    """A member's answer as the ack hash holds it; one that cannot be read is said so, never raised."""
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("status") not in ACK_STATUSES:
            raise Malformed("expected an object with status applied or refused")
        return Acknowledgement(instance, data["status"], text(data.get("detail", ""), "detail"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return Acknowledgement(instance, "no answer", "its acknowledgement could not be read (malformed; skipped)")


def parsed_command(raw: Any) -> Command | None:
    """A command from the stream, checked (names by pattern, text fields short and visible); None if it cannot
    be read: one bad entry is skipped, the ones after it still carried out."""
    if not isinstance(raw, str) or len(raw) > COMMAND_BYTES:
        return None
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("op") not in OPERATIONS:
            return None
        issued_at = data.get("issued_at")
        if isinstance(issued_at, bool) or not isinstance(issued_at, int | float):
            return None
        fields = {k: data.get(k, "") for k in ("id", "target", "operator", "key", "value", "store_user")}
        if not all(isinstance(v, str) for v in fields.values()):
            return None
        return Command(checked_name(fields["id"]), data["op"], fields["target"], text(fields["operator"], "operator"),
                       float(issued_at), checked_name(fields["key"]) if fields["key"] else "",
                       text(fields["value"], "value"),
                       checked_name(fields["store_user"]) if fields["store_user"] else "")
    except (ValueError, RecursionError):
        return None


def operator_name() -> str:
    """Who is acting, for every record of it: user@host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


class CommandInbox:
    """A member's side: read commands addressed to it at each heartbeat, carry them out, acknowledge."""

    def __init__(self, client: redis.Redis, prefix: str, instance: str, handler: Handler) -> None:
        self._client = client
        self._prefix = prefix
        self._instance = instance
        self._handler = handler
        self._last_id = "$"  # only commands issued after this member joined

    async def start(self) -> None:
        """Remember where the stream ends now: older commands were for the members of their time."""
        latest = await cast(Any, self._client.xrevrange(f"{self._prefix}commands", count=1))
        self._last_id = latest[0][0] if latest else "0-0"

    async def poll(self) -> int:
        """Carry out every new command addressed to this member; how many it handled."""
        entries = await cast(Any, self._client.xrange(f"{self._prefix}commands", f"({self._last_id}", "+",
                                                      count=100))
        handled = 0
        for entry_id, fields in entries:
            self._last_id = entry_id
            command = parsed_command(fields.get("command"))
            if command is None:
                log.warning("fleet command %s could not be read (malformed); skipped", entry_id)
                continue
            if command.target not in ("*", self._instance):
                continue
            try:
                ok, detail = await self._handler(command)
            except MedopsError as exc:  # a refusal the core explains (a bad value, a restart-only key)
                ok, detail = False, str(exc)
            ack = json.dumps({"status": "applied" if ok else "refused", "detail": detail})
            key = f"{self._prefix}ack:{command.id}"
            await cast(Any, self._client.hset(key, self._instance, ack))
            await cast(Any, self._client.pexpire(key, int(ACK_TTL * 1000)))
            handled += 1
        return handled


async def issue(url: str, namespace: str, op: str, target: str = "*", key: str = "", value: str = "",
                password: str | None = None, wait: float = ANSWER_WAIT) -> tuple[Command, list[Acknowledgement]]:
    """Send one command to the fleet and collect its acknowledgements (with who did not answer)."""
    if op not in OPERATIONS:
        raise FleetUnavailable(f"unknown fleet command {op!r}; use one of {', '.join(OPERATIONS)}")
    view = await read_fleet(url, namespace, password)
    alive = {m.instance for m in view.members if m.state.present}
    known = {m.instance for m in view.members}
    expected = alive if target == "*" else {target}
    prefix = namespace_prefix(namespace)
    async with writing(url, password, "send commands to the fleet", "an operator user, or to an oncall user "
                       "for a console that runs its own core") as client:
        whoami = await cast(Any, client.acl_whoami())
        store_user = whoami.decode(errors="replace") if isinstance(whoami, bytes) else str(whoami)
        command = Command(f"cmd-{uuid.uuid4().hex[:12]}", op, target, operator_name(), time.time(), key, value,
                          store_user)
        if op == "set_limit" and target == "*" and not storable(key, value):
            # Kept before it is sent: a member that joins from now on finds it (shared_settings); one that marked
            # the stream's end before this is alive and gets the command.
            await cast(Any, client.hset(f"{prefix}{SETTINGS_KEY}", key,
                                        entry(value, command.operator, store_user, command.issued_at)))
        if target == "*" or target in alive:
            await client.xadd(f"{prefix}commands", {"command": json.dumps(command.__dict__)}, maxlen=COMMANDS_KEPT,
                              approximate=True)
            deadline = time.monotonic() + wait
            answers: Mapping[str, bytes] = {}
            names = sorted(expected)
            while time.monotonic() < deadline:
                # Only the members asked, each answer size-checked first: the ack hash is anyone's to write.
                found = await read_sized(client, "HSTRLEN", f"{prefix}ack:{command.id}",
                                         [n.encode() for n in names], ACK_BYTES, "oversized acknowledgements", Skips())
                answers = {n: raw for n, raw in zip(names, found, strict=True) if raw is not None}
                if expected <= set(answers):
                    break
                await asyncio.sleep(0.2)
        else:
            answers = {}
    acks = [acknowledgement(name, raw) for name, raw in sorted(answers.items())]
    for name in sorted(expected - set(answers)):
        gone = name not in alive
        detail = ("no member of that name" if name not in known else "it left the fleet") if gone \
            else f"no acknowledgement within {wait:g} s"
        acks.append(Acknowledgement(name, "gone" if gone else "no answer", detail))
    return command, acks
