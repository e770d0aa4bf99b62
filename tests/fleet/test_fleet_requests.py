"""Requests across the fleet: a member's held requests reach the store with its snapshot; a cancel sent through
the store is carried out by the member holding the request, and its answer comes back."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from medops.console.commands.requests import act, find_request, listing
from medops.core.fleet.view import FleetView, read_fleet
from medops.core.groq.requests import PromptRequest
from medops.core.groq.scheduler import RequestCancelled
from tests.helpers.fleet_helpers import fleet_cores
from tests.helpers.redis_server import RedisServer


async def fleet_until(url: str, check: object, within: float = 20.0) -> FleetView:
    deadline = time.monotonic() + within
    while True:
        view = await read_fleet(url, "test", None)
        if check(view) or time.monotonic() > deadline:  # type: ignore[operator]
            return view
        await asyncio.sleep(0.2)


async def test_another_members_requests_are_listed_and_a_cancel_goes_through(
        redis_server: RedisServer, tmp_path: Path, built_knowledge: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    url = redis_server.url
    async with fleet_cores(url, tmp_path, built_knowledge, ("ward", "lab")) as (ward, lab):
        assert lab._fleet is not None
        lab_name = lab._fleet.instance
        lab.pause_intake()  # its request stays held, waiting
        asked = asyncio.create_task(lab.ask(PromptRequest("q", "triage", request_id="held-on-lab")))

        view = await fleet_until(url, lambda v: any(r.request_id == "held-on-lab" for r in
                                                    v.snapshots.get(lab_name, ward.snapshot()).scheduler.requests))
        row = next(r for r in view.snapshots[lab_name].scheduler.requests if r.request_id == "held-on-lab")
        assert (row.state, row.reason, row.agent) == ("waiting", "intake paused", "triage")
        assert listing(view, as_json=False) == 0
        assert "held-on-lab" in capsys.readouterr().out

        # From the CLI's path: the command goes to the member holding it, which answers.
        answer = await asyncio.to_thread(act, view, url, "test", None, "cancel", ["held-on-lab"])
        printed = capsys.readouterr().out
        assert answer == 0, printed
        assert f"applied   {lab_name}  request held-on-lab cancelled (it was waiting)" in printed
        with pytest.raises(RequestCancelled, match=r"cancelled by store user .*\(fleet\) while waiting"):
            await asked
        assert lab.snapshot().limit_changes[0].key == "request:held-on-lab"


async def test_a_request_is_picked_by_the_start_of_its_id_as_the_listing_shows_it(
        redis_server: RedisServer, tmp_path: Path, built_knowledge: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    url = redis_server.url
    first, second, third = ("7f3e9a0c1d2b4e5f8a9b0c1d2e3f4a5b", "7f3e9a0c55555555aaaaaaaaaaaaaaaa",
                            "0123456789abcdef0123456789abcdef")
    async with fleet_cores(url, tmp_path, built_knowledge, ("ward", "lab")) as (_, lab):
        assert lab._fleet is not None
        lab_name = lab._fleet.instance
        lab.pause_intake()  # its requests stay held, waiting
        asked = {i: asyncio.create_task(lab.ask(PromptRequest("q", "triage", request_id=i)))
                 for i in (first, second, third)}
        view = await fleet_until(url, lambda v: len(v.snapshots[lab_name].scheduler.requests) == 3
                                 if lab_name in v.snapshots else False)
        assert listing(view, as_json=False) == 0
        shown = [line.split()[1] for line in capsys.readouterr().out.splitlines()[1:]]
        assert sorted(shown) == sorted(i[:14] for i in (first, second, third))
        assert listing(view, as_json=True) == 0  # JSON Lines: one object per member a line
        records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [r["member"] for r in records] == sorted(view.snapshots)
        lab_record = next(r for r in records if r["member"] == lab_name)
        assert lab_record["held"] == 3 and {r["request_id"] for r in lab_record["requests"]} == {first, second, third}

        async def run(action: str, request: list[str]) -> tuple[int, str, str]:
            code = await asyncio.to_thread(act, view, url, "test", None, action, request)
            out, err = capsys.readouterr()
            return code, out, err

        # The 14 characters shown pick the request.
        code, out, _ = await run("priority", [third[:14], "critical"])
        assert code == 0 and f"applied   {lab_name}  request {third}" in out
        # A start shared by two: refused, naming both as the listing shows them, nothing sent.
        code, out, err = await run("cancel", ["7f3e9a"])
        assert (code, out) == (2, "")
        assert f"7f3e9a starts 2 requests' ids: {first[:14]} ({lab_name}), {second[:14]} ({lab_name})" in err
        assert "give more of the id" in err
        code, _, err = await run("cancel", ["7f3e"])
        assert code == 2 and "6 characters at least" in err
        code, _, err = await run("cancel", ["ffffff"])
        assert code == 2 and "no member lists a request whose id starts with ffffff" in err
        assert not any(task.done() for task in asked.values())  # none of those reached a request
        code, out, _ = await run("cancel", [first[:14]])
        assert code == 0 and f"request {first} cancelled" in out
        with pytest.raises(RequestCancelled):
            await asked[first]
        for task in (asked[second], asked[third]):
            task.cancel()
        await asyncio.gather(asked[second], asked[third], return_exceptions=True)


def test_ids_alike_in_the_shown_characters_are_named_as_far_as_they_differ_with_their_members() -> None:
    from tests.helpers.published_rows import published, row, view

    fleet = view({"ward": published(row("7f3e9a0c1d2b4e5faaaa", 1.0)), "lab": published(row("7f3e9a0c1d2b4e99", 1.0)),
                  "icu": published(row("held-on-icu", 1.0))})
    assert find_request(fleet, "7f3e9a0c1d2b4e5") == ("ward", "7f3e9a0c1d2b4e5faaaa")
    assert find_request(fleet, "held-on-icu") == ("icu", "held-on-icu")  # a whole id, however short
    assert find_request(fleet, "7f3e9a") == ("7f3e9a starts 2 requests' ids: 7f3e9a0c1d2b4e5 (ward), "
                                             "7f3e9a0c1d2b4e9 (lab); give more of the id, as `medops requests` "
                                             "shows it")
