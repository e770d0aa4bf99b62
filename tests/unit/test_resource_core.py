"""The core's lifecycle and snapshot."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from medops.core.clock import FakeClock, settle
from medops.core.fleet.store import StoreNeverReached
from medops.core.groq.requests import Priority, PromptRequest
from medops.core.groq.wait_reason import clock_time
from medops.core.resource_core import ResourceCore
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations
from tests.helpers.redis_server import free_port


@pytest.mark.usefixtures("knowledge_ready")
async def test_snapshot_reports_uptime_on_the_core_clock(locations: Locations, clock: FakeClock) -> None:
    core = ResourceCore(Settings(), locations, clock)
    await core.start()
    await clock.advance(12)
    snapshot = core.snapshot()
    assert snapshot.uptime == 12
    assert snapshot.taken_at == clock.wall()
    await core.stop()
    await core.stop()


async def test_start_creates_the_data_folder_private_to_the_user(locations: Locations, clock: FakeClock) -> None:
    core = ResourceCore(Settings(), locations, clock)
    await core.start()
    assert locations.data_dir.is_dir()
    assert locations.data_dir.stat().st_mode & 0o077 == 0
    await core.stop()


@pytest.mark.usefixtures("knowledge_ready")
async def test_start_warns_of_an_intake_folder_that_is_not_there(locations: Locations, clock: FakeClock,
                                                                 tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    missing = tmp_path / "scans-not-mounted"
    core = ResourceCore(Settings(intake_dirs=(str(missing),)), locations, clock)
    with caplog.at_level(logging.WARNING, logger="medops.core"):
        await core.start()
    await core.stop()
    assert f"intake folder {missing} does not exist" in caplog.text and "fix intake_dirs" in caplog.text


async def test_pause_and_resume_show_in_the_snapshot(locations: Locations, clock: FakeClock) -> None:
    core = ResourceCore(Settings(), locations, clock)
    core.pause_intake()
    assert core.snapshot().paused
    core.resume_intake()
    assert not core.snapshot().paused


@pytest.mark.usefixtures("knowledge_ready")
async def test_the_quota_snapshot_counts_requests_waiting_per_model(locations: Locations, clock: FakeClock) -> None:
    core = ResourceCore(Settings(), locations, clock)
    await core.start()
    core.pause_intake()  # queued prompts stay queued
    asks = [asyncio.create_task(core.ask(PromptRequest(f"q{n}", "triage", Priority.CRITICAL, model=model,
                                                       max_completion_tokens=50)))
            for n, model in enumerate(("qwen/qwen3-32b", "qwen/qwen3-32b", "llama-3.1-8b-instant"))]
    await settle()
    quota = core.snapshot().quota
    waiting = {m.model: m.waiting for m in quota.models}
    # One model's windows, as the gateway reads them for every answer, are the snapshot's own.
    alone = {model: core.model_quota(model) for model in ("qwen/qwen3-32b", None, "no-such-model")}
    await core.stop()
    await asyncio.gather(*asks, return_exceptions=True)  # stopping fails them; only the counts matter here
    assert waiting["qwen/qwen3-32b"] == 2 and waiting["llama-3.1-8b-instant"] == 1
    assert sum(waiting.values()) == 3
    assert alone["qwen/qwen3-32b"] == quota.of("qwen/qwen3-32b") and alone["qwen/qwen3-32b"] is not None
    assert alone[None] == quota.of("llama-3.1-8b-instant") and alone[None] is not None  # the default model
    assert alone["no-such-model"] is None


@pytest.mark.usefixtures("knowledge_ready")
async def test_a_request_on_a_member_whose_store_never_answered_says_why_and_fails_after_store_wait(
        locations: Locations, clock: FakeClock) -> None:
    # #28 second trial: a console with no redis at store_url held a prompt at "waiting…" for minutes, its row
    # saying "rpm full until" a time one second ahead, for ever. Every caller now gets what `medops ask` gets.
    url = f"redis://127.0.0.1:{free_port()}/0"
    core = ResourceCore(Settings(store_url=url, store_wait=30.0), locations, clock, role="console")
    await core.start()
    started = clock.wall()
    try:
        asking = asyncio.ensure_future(core.ask(PromptRequest("synthetic note", "triage", Priority.CRITICAL)))
        for _ in range(100):
            await settle()
            rows = core.snapshot().scheduler.requests
            if rows and rows[0].state == "waiting":
                break
        # The trial again: the row did not say when it gives up (its deadline read "-").
        assert [(row.reason, row.until) for row in rows] == [
            (f"quota store never reached: nothing is admitted until it answers (since {clock_time(started)}); "
             f"gives up at {clock_time(started + 30)} (store_wait)", started + 30)]
        await clock.advance(29)
        assert not asking.done()
        await clock.advance(1)
        with pytest.raises(StoreNeverReached) as refused:
            await asyncio.wait_for(asking, 10)
        assert str(refused.value).startswith(f"quota store {url} never answered in 30 s (")
        assert "nothing was sent" in str(refused.value) and "MEDOPS_STORE_URL" in str(refused.value)
        scheduler = core.snapshot().scheduler
        assert (scheduler.requests, scheduler.failed) == ((), 1)
    finally:
        await core.stop()
