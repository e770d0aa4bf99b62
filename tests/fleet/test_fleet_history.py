"""The fleet's history read back from a real store: members' published requests and alerts, paged and filtered."""

from __future__ import annotations

import dataclasses

import pytest
import redis

from medops.console.panes.history import ALERTS, MEMBER_AT, REQUESTS, alert_row, request_row
from medops.core.clock import SystemClock
from medops.core.fleet.history import read_alerts, read_heads, read_requests
from medops.core.fleet.membership import Fleet
from medops.core.fleet.store import QuotaStore
from medops.core.fleet.view import FleetUnavailable, read_fleet
from medops.core.settings.config import ModelLimits
from medops.core.snapshot import Alert
from tests.helpers.fleet_helpers import fleet_of, member, publish, request
from tests.helpers.redis_server import RedisServer

LIMITS = ModelLimits(rpm=30, rpd=14_400, tpm=6_000, tpd=500_000)


async def test_paging_back_lists_every_members_requests_once_newest_first(redis_server: RedisServer) -> None:
    url = redis_server.url
    async with member(url, LIMITS, "alpha") as a, member(url, LIMITS, "bravo") as b:
        for start in range(0, 260, 20):  # the two members take turns, 10 requests each
            await publish(fleet_of(a), [request(n) for n in range(start, start + 10)])
            await publish(fleet_of(b), [request(n) for n in range(start + 10, start + 20)])
        seen: list[tuple[str, int]] = []
        before = None
        pages = 0
        while True:
            page = await read_requests(url, "test", before=before, limit=100)
            pages += 1
            seen.extend((row.instance, row.record.prompt_tokens) for row in page.requests)
            if page.older is None:
                break
            before = page.older
        assert pages == 3
        assert [n for _, n in seen] == list(range(259, -1, -1))  # nothing skipped, nothing repeated
        assert {name for name, n in seen if n % 20 < 10} == {"alpha"}
        assert {name for name, n in seen if n % 20 >= 10} == {"bravo"}
        first = (await read_requests(url, "test", limit=1)).requests[0]
        assert first.record == request(259)  # every figure comes back as the member recorded it


async def test_a_filter_finds_a_full_page_past_many_other_rows(redis_server: RedisServer) -> None:
    url = redis_server.url
    async with member(url, LIMITS, "alpha") as a:
        records = [request(n, model="m-big" if n % 50 == 0 else "m-small",
                           agent="diagnosis" if n % 100 == 0 else "triage") for n in range(2_000)]
        await publish(fleet_of(a), records)
        page = await read_requests(url, "test", limit=30, model="m-big")
        assert [r.record.prompt_tokens for r in page.requests] == list(range(1_950, 450, -50))
        rest = await read_requests(url, "test", before=page.older, limit=30, model="m-big")
        assert [r.record.prompt_tokens for r in rest.requests] == list(range(450, -50, -50))
        assert rest.older is None
        both = await read_requests(url, "test", limit=100, model="m-big", agent="diagnosis")
        assert [r.record.prompt_tokens for r in both.requests] == list(range(1_900, -100, -100))


async def test_alert_announcements_come_back_with_their_member(redis_server: RedisServer) -> None:
    url = redis_server.url
    opened = Alert("cpu", "warning", "CPU 96% for 30 s", opened_at=1_000.0, value=96.0, rule="cpu",
                   updated_at=1_000.0)
    cleared = dataclasses.replace(opened, cleared_at=1_060.0, updated_at=1_060.0)
    async with member(url, LIMITS, "alpha") as a:
        empty = await read_heads(url, "test")
        assert empty.alerts == ""
        await publish(fleet_of(a), [], (opened, cleared))
        page = await read_alerts(url, "test")
        assert [(row.instance, row.alert) for row in page.alerts] == [("alpha", cleared), ("alpha", opened)]
        assert page.older is None
        heads = await read_heads(url, "test")
        assert heads.alerts == page.alerts[0].entry_id and heads.requests == ""


async def test_an_entry_that_cannot_be_read_is_counted_not_dropped_silently(redis_server: RedisServer) -> None:
    url = redis_server.url
    async with member(url, LIMITS, "alpha") as a:
        await publish(fleet_of(a), [request(1)])
        client = redis.Redis.from_url(url)
        client.xadd("medops:{test}:requests", {"instance": "zulu", "at_wall": "not a time"})
        client.close()
        page = await read_requests(url, "test")
        assert [r.record.prompt_tokens for r in page.requests] == [1]
        assert "1 requests in the fleet's stream could not be read" in page.note


async def test_a_store_that_is_away_is_said_with_what_to_check(redis_server: RedisServer) -> None:
    url = redis_server.url
    redis_server.stop()
    with pytest.raises(FleetUnavailable, match=r"cannot be read.*check store_url"):
        await read_requests(url, "test")
    with pytest.raises(FleetUnavailable, match="ask for 1 to 1000"):
        await read_alerts(url, "test", limit=0)


async def test_history_names_a_member_by_the_instance_name_the_fleet_view_shows(redis_server: RedisServer) -> None:
    # Seen in a trial: History called a member "vm:18314" and the Fleet tab "vm-18314-0a4adb".
    url, name = redis_server.url, "vm-18314-0a4adb"
    clock = SystemClock()
    fleet = Fleet(QuotaStore(url, "test", clock), name, '{"host": "vm", "pid": 18314, "role": "worker"}', clock,
                  180.0, 30.0, 0.0)
    await fleet.start()
    try:
        await publish(fleet, [request(1)], (Alert("cpu", "warning", "CPU 95%", 1_000.0, 1_000.0),))
        shown = [m.instance for m in (await read_fleet(url, "test")).members]
        requests = (await read_requests(url, "test")).requests
        alerts = (await read_alerts(url, "test")).alerts
    finally:
        await fleet.stop()
    assert shown == [name]
    assert [str(request_row(r, None)[MEMBER_AT[REQUESTS]]) for r in requests] == [name]  # History's instance column
    assert [str(alert_row(a, None)[MEMBER_AT[ALERTS]]) for a in alerts] == [name]


async def test_a_page_lists_every_members_rows_by_their_time_not_by_when_they_reached_the_stream(
        redis_server: RedisServer) -> None:
    url = redis_server.url
    async with member(url, LIMITS, "alpha") as a, member(url, LIMITS, "bravo") as b:
        # bravo's newer rows reach the stream first; alpha's older batch comes after them
        await publish(fleet_of(b), [request(n) for n in range(10, 20)],
                      (Alert("cpu", "warning", "CPU 95%", 1_020.0, 95.0, updated_at=1_020.0),))
        await publish(fleet_of(a), [request(n) for n in range(10)],
                      (Alert("cpu", "warning", "CPU 92%", 1_005.0, 92.0, updated_at=1_005.0),))
        requests = (await read_requests(url, "test", limit=100)).requests
        alerts = (await read_alerts(url, "test", limit=100)).alerts
    assert [row.record.prompt_tokens for row in requests] == list(range(19, -1, -1))
    assert [row.instance for row in alerts] == ["bravo", "alpha"]
