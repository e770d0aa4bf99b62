"""Requests across the fleet: a member's held requests reach the store with its snapshot; a cancel sent through
the store is carried out by the member holding the request, and its answer comes back."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from medops.console.commands.requests import act, listing
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
