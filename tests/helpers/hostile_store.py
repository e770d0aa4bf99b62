"""A fleet's store as an attacker with its password leaves it: console markup and terminal escapes in every
field the console shows, and entries of the wrong shape or size around good ones."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any, cast

import redis

P = "medops:{test}:"


MARKUP = "[@click=app.toggle_intake]ACK-ME[/]"


OSC52 = "\x1b]52;c;SGVsbG8=\x07"


OSC8 = "\x1b]8;;https://evil.example/\x1b\\link\x1b]8;;\x1b\\"


def plant(url: str) -> None:
    """A fleet as an attacker with the store's password leaves it: one good member, hostile ones around it."""
    r = redis.Redis.from_url(url)
    future = time.time() * 1000 + 60_000
    good = {"host": "ward7", "pid": 4121, "role": "console", "version": "0.9.0", "started": time.time()}
    r.hset(f"{P}members", mapping={
        "good-1": json.dumps(good),
        MARKUP: json.dumps({**good, "role": MARKUP, "host": OSC52}),
        "osc-" + OSC8: json.dumps({**good, "version": OSC52}),
        "bad-json": "not json", "bad-pid": json.dumps({"pid": "12x"}), "bad-list": "[1,2]",
    })
    for name in ("good-1", MARKUP, "bad-json"):
        r.zadd(f"{P}alive", {name: future})
    snap = {"taken_at": time.time(), "uptime": 1.0,
            "quota": {"default_model": "x[/", "models": [{"model": "x[/", "windows": [
                {"name": "rpm", "used": 1, "limit": 30, "reset_in": 1.0}]}]},
            "alerts": [{"name": MARKUP, "level": "critical", "message": f"{MARKUP} {OSC52}", "opened_at": 1.0,
                        "updated_at": 1.0}]}
    r.set(f"{P}snap:good-1", json.dumps(snap))
    r.set(f"{P}snap:{MARKUP}", json.dumps({**snap, "taken_at": time.time() + 365 * 86400}))
    r.set(f"{P}snap:osc-{OSC8}", b"{" + b" " * (2 << 20) + b"}")  # over the cap: never fetched


def plant_streams(url: str) -> None:
    """One good request and alert in the fleet's streams, and hostile or malformed entries around them."""
    from medops.core.fleet.publish import alert_fields, stream_fields
    from medops.core.ledger.records import RequestRecord
    from medops.core.snapshot import Alert

    r = redis.Redis.from_url(url)
    good = RequestRecord(at_wall=time.time(), agent="triage", priority="high", model="m-small", prompt_tokens=5,
                         completion_tokens=2, latency=0.5, queue_wait=0.01, outcome="ok", status=200, attempts=1)
    hostile = {**stream_fields("good-1", good), "agent": OSC52 + MARKUP, "model": OSC8, "outcome": MARKUP}
    r.xadd(f"{P}requests", cast(Any, stream_fields("good-1", good)))
    r.xadd(f"{P}requests", cast(Any, hostile))
    for bad in ({"prompt_tokens": "-5"}, {"latency": "1e400"}, {"latency": "nan"}, {"status": "abc"},
                {"completion_tokens": "9" * 4_400}, {"at_wall": "[1,2]"}):
        r.xadd(f"{P}requests", cast(Any, {**stream_fields("good-1", good), **bad}))
    r.xadd(f"{P}requests", {"at_wall": "1.0", "agent": "no-instance"})
    r.xadd(f"{P}requests", {b"instance": b"good-1", b"agent": b"\xff\xfe", b"at_wall": b"x"})  # not UTF-8
    alert = Alert("cpu", "warning", "CPU 96%", opened_at=1_000.0, value=96.0, rule="cpu", updated_at=1_000.0)
    r.xadd(f"{P}alerts", cast(Any, alert_fields("good-1", alert)))
    r.xadd(f"{P}alerts", {"instance": MARKUP, "alert": json.dumps(
        {**dataclasses.asdict(alert), "name": OSC52, "message": f"{MARKUP} {OSC52} {OSC8}"})})
    wrong_types = [{"message": ["x"]}, {"opened_at": "soon"}, {"level": "bogus"}, {"repeats": "3"},
                   {"acknowledged": 1}, {"cleared_at": float("1e300")}, {"name": 5}]
    for bad in wrong_types:
        r.xadd(f"{P}alerts", {"instance": "good-1", "alert": json.dumps({**dataclasses.asdict(alert), **bad})})
    for raw in ("not json", "[1,2]", "{}", json.dumps({**dataclasses.asdict(alert), "x": "y" * 10_000})):
        r.xadd(f"{P}alerts", {"instance": "good-1", "alert": raw})
    r.close()
