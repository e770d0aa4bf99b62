"""`ResourceCore.set_limit`: live changes reach their part, bad values and restart-only keys are refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import fields

import pytest

from medops.core.clock import FakeClock
from medops.core.documents.intake import Intake
from medops.core.documents.pipeline import DocumentPipeline
from medops.core.errors import ConfigError
from medops.core.groq.path import GroqPath
from medops.core.groq.requests import Priority, PromptRequest
from medops.core.ledger.limit_history import read_ledger_file
from medops.core.resource_core import ResourceCore
from medops.core.settings.config import MIB, Settings
from medops.core.settings.live_changes import LIVE, RESTART_ONLY, RestartNeeded
from medops.core.settings.paths import Locations
from medops.core.snapshot import CoreSnapshot, TunerChange
from tests.helpers.fake_metrics import FakeMetricsSource

# The tests here start cores: each gets the session's knowledge base (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("knowledge_ready")


@pytest.fixture
def metrics() -> FakeMetricsSource:
    """The figures the core's own tuner reads: none until a test gives some."""
    source = FakeMetricsSource()
    source.figures = None
    return source


@pytest.fixture
async def core(locations: Locations, clock: FakeClock, metrics: FakeMetricsSource) -> AsyncIterator[ResourceCore]:
    # Small case memory: four slots, so one stored case fills a quarter of them.
    started = ResourceCore(Settings(max_cases_in_memory=4, case_memory_mb=1, cpu_threads=2, io_threads=4,
                                    process_pool_size=1), locations, clock, tuner_metrics=metrics)
    await started.start()
    try:
        yield started
    finally:
        await started.stop()


def pool(snapshot: CoreSnapshot, name: str) -> int:
    return next(p.capacity for p in snapshot.pools if p.name == name)


def test_every_setting_is_either_live_or_restart_only() -> None:
    keys = {f.name for f in fields(Settings)}
    assert set(LIVE) | set(RESTART_ONLY) == keys
    assert not set(LIVE) & set(RESTART_ONLY)


async def test_pool_sizes_change_at_once_and_the_change_is_recorded(core: ResourceCore, clock: FakeClock) -> None:
    core.set_limit("io_threads", "9")
    core.set_limit("cpu_threads", 3)
    core.set_limit("process_pool_size", "2")
    core.set_limit("query_cache_size", "50")
    snapshot = core.snapshot()
    assert (pool(snapshot, "io"), pool(snapshot, "cpu"), pool(snapshot, "process")) == (9, 3, 2)
    assert snapshot.cache.capacity == 50
    assert core.settings.io_threads == 9 and core.settings.query_cache_size == 50
    newest = snapshot.limit_changes[0]
    assert (newest.key, newest.old, newest.new, newest.by, newest.at) == \
        ("query_cache_size", "1000", "50", "console", clock.wall())
    assert [c.key for c in snapshot.limit_changes] == ["query_cache_size", "process_pool_size", "cpu_threads",
                                                       "io_threads"]


async def test_scheduler_knobs_reach_the_running_scheduler(core: ResourceCore) -> None:
    core.set_limit("groq_concurrent", "3")
    core.set_limit("batch_interval", 0.5)
    assert core.snapshot().scheduler.concurrency == 3
    assert core.settings.batch_interval == 0.5


async def test_the_groq_path_hands_scheduler_knobs_to_its_running_scheduler(clock: FakeClock) -> None:
    path = GroqPath(Settings(), clock, env={"GROQ_BASE_URL": "http://127.0.0.1:9"})
    await path.start()
    try:
        path.apply(Settings(groq_concurrent=3, batch_interval=0.5))
        assert path.scheduler is not None and path.scheduler.batch_interval == 0.5
    finally:
        await path.stop()


async def test_document_timeouts_and_ocr_options_apply_to_the_next_document(core: ResourceCore) -> None:
    core.set_limit("document_timeout", "120")
    core.set_limit("ocr_page_timeout", "15")
    assert (core.settings.document_timeout, core.settings.ocr_page_timeout) == (120, 15)


def test_the_pipeline_takes_timeouts_and_ocr_options_for_the_next_document(locations: Locations,
                                                                            clock: FakeClock) -> None:
    settings = Settings()
    pipeline = DocumentPipeline(settings, Intake.from_settings(settings, locations), clock)
    pipeline.apply(Settings(document_timeout=120, ocr_page_timeout=15))
    assert pipeline.timeout == 120
    assert pipeline.options.ocr_page_timeout == 15


async def test_alert_thresholds_are_read_on_the_next_tick(core: ResourceCore, clock: FakeClock) -> None:
    core.cases.store("case-1", {"note": "x"})  # 1 of 4 slots: 25 %, under the default 90 % threshold
    await clock.advance(core.settings.monitor_interval)
    assert not [a for a in core.snapshot().alerts if a.name == "slots"]
    core.set_limit("alert_slots_percent", "20")
    core.set_limit("alert_open_after", "0")
    await clock.advance(core.settings.monitor_interval)
    assert [a for a in core.snapshot().alerts if a.name == "slots" and a.cleared_at is None]


async def test_switching_the_tuner_off_shows_in_the_next_snapshot(core: ResourceCore) -> None:
    assert core.snapshot().tuner.enabled
    core.set_limit("tuner_enabled", "off")
    assert not core.snapshot().tuner.enabled


def plenty_of_room(metrics: FakeMetricsSource) -> None:
    """Feed the core's own tuner figures that make it grow both knobs: idle CPU, work waiting, 4 GiB free."""
    source = FakeMetricsSource()
    source.set(memory_available=4_000 * MIB)
    metrics.figures = source.figures


def left_alone(core: ResourceCore, knob: str) -> list[TunerChange]:
    return [c for c in core.snapshot().tuner.changes if c.knob == knob and c.skipped]


async def tuner_round(core: ResourceCore, clock: FakeClock) -> None:
    await clock.advance(core.settings.tuner_interval)


async def test_the_tuner_grows_knobs_nobody_set(core: ResourceCore, clock: FakeClock,
        metrics: FakeMetricsSource) -> None:
    plenty_of_room(metrics)
    await tuner_round(core, clock)
    assert pool(core.snapshot(), "io") == 8 and core.snapshot().cache.capacity == 2_000
    assert core.snapshot().tuner.pinned == ()


async def test_knobs_the_operator_set_are_left_alone_and_the_tuner_says_so_once(
        core: ResourceCore, clock: FakeClock,
        metrics: FakeMetricsSource) -> None:
    plenty_of_room(metrics)
    core.set_limit("io_threads", "6")
    core.set_limit("query_cache_size", "50")
    assert core.snapshot().tuner.pinned == ("io_threads", "query_cache_size")
    await tuner_round(core, clock)
    await tuner_round(core, clock)
    assert pool(core.snapshot(), "io") == 6 and core.snapshot().cache.capacity == 50
    (io,) = left_alone(core, "io_threads")
    (cache,) = left_alone(core, "query_cache_size")
    assert (io.old, io.new, io.applied, cache.old, cache.new) == (6, 6, False, 50, 50)
    assert io.at == clock.wall() - core.settings.tuner_interval  # recorded at the first round, not again
    assert "set by the operator (console) to 6 at " in io.reason and "UTC" in io.reason


async def test_unpin_hands_the_knob_back_to_the_tuner(core: ResourceCore, clock: FakeClock,
        metrics: FakeMetricsSource) -> None:
    plenty_of_room(metrics)
    core.set_limit("io_threads", "6")
    await tuner_round(core, clock)
    assert core.unpin("io_threads") is True
    assert core.snapshot().tuner.pinned == ()
    handback = core.snapshot().limit_changes[0]
    assert (handback.key, handback.old, handback.new) == ("io_threads", "6", "auto")
    await tuner_round(core, clock)
    assert pool(core.snapshot(), "io") == 10
    assert core.unpin("io_threads") is False  # nothing pinned any more


async def test_setting_a_knob_again_after_unpin_pins_it_again(core: ResourceCore, clock: FakeClock,
        metrics: FakeMetricsSource) -> None:
    plenty_of_room(metrics)
    core.set_limit("io_threads", "6")
    await tuner_round(core, clock)
    core.unpin("io_threads")
    core.set_limit("io_threads", "5")
    await tuner_round(core, clock)
    assert pool(core.snapshot(), "io") == 5
    assert [c.reason.split(" at ")[0] for c in left_alone(core, "io_threads")] == [
        "set by the operator (console) to 5", "set by the operator (console) to 6"]


async def test_switching_the_tuner_off_and_on_hands_every_knob_back(core: ResourceCore, clock: FakeClock,
        metrics: FakeMetricsSource) -> None:
    plenty_of_room(metrics)
    core.set_limit("io_threads", "6")
    core.set_limit("query_cache_size", "50")
    core.set_limit("tuner_enabled", "on")  # already on: not a hand-back
    assert core.snapshot().tuner.pinned == ("io_threads", "query_cache_size")
    core.set_limit("tuner_enabled", "off")
    core.set_limit("tuner_enabled", "on")
    assert core.snapshot().tuner.pinned == ()
    await tuner_round(core, clock)
    assert pool(core.snapshot(), "io") == 10 and core.snapshot().cache.capacity == 100


async def test_only_knobs_the_tuner_sizes_can_be_handed_back(core: ResourceCore) -> None:
    with pytest.raises(ConfigError, match="not sized by the auto-tuner"):
        core.unpin("cpu_threads")


async def test_limit_changes_reach_the_ledger_and_refusals_do_not(core: ResourceCore, locations: Locations) -> None:
    core.set_limit("io_threads", "6")
    with pytest.raises(ConfigError):
        core.set_limit("io_threads", "0")
    this_run = core.snapshot().limit_changes
    await core.stop()  # the ledger writes what it holds and lets go of its file
    stored = read_ledger_file(locations.ops_db, 50).changes
    assert stored == this_run
    assert [(c.key, c.old, c.new, c.by) for c in stored] == [("io_threads", "4", "6", "console")]


async def test_out_of_range_value_is_refused_with_key_value_range_and_source(core: ResourceCore) -> None:
    before = core.settings
    with pytest.raises(ConfigError) as caught:
        core.set_limit("io_threads", "0")
    message = str(caught.value)
    assert "io_threads" in message and "0" in message and "1 to 4096" in message and "console" in message
    with pytest.raises(ConfigError, match=r"io_threads = 'many' \(from console\) is not a whole number "
                                          r"\(allowed 1 to 4096\)"):
        core.set_limit("io_threads", "many")
    with pytest.raises(ConfigError, match=r"io_threads_min = 99 .*exceeds io_threads_max"):
        core.set_limit("io_threads_min", 99)
    with pytest.raises(ConfigError, match="names no configured model"):
        core.set_limit("default_model", "no-such-model")
    with pytest.raises(ConfigError, match="unknown setting 'io_thread'"):
        core.set_limit("io_thread", 4)
    assert core.settings is before
    assert pool(core.snapshot(), "io") == 4
    assert core.snapshot().limit_changes == ()


@pytest.mark.parametrize("key", ["max_cases_in_memory", "case_memory_mb", "db_connection_pool_size",
                                 "endpoint_port", "models"])
async def test_keys_sized_at_start_are_refused_with_where_to_set_them(core: ResourceCore, key: str) -> None:
    with pytest.raises(RestartNeeded) as caught:
        core.set_limit(key, "5")
    assert "restart needed" in str(caught.value)
    assert f"MEDOPS_{key.upper()}" in str(caught.value) and "config file" in str(caught.value)
    assert core.snapshot().limit_changes == ()


async def test_the_quota_snapshot_names_the_default_model_as_it_changes(core: ResourceCore) -> None:
    assert core.snapshot().quota.default_model == Settings().default_model
    core.set_limit("default_model", "qwen/qwen3-32b")
    assert core.snapshot().quota.default_model == "qwen/qwen3-32b"


async def test_default_model_change_reaches_the_next_prompt(locations: Locations) -> None:
    core = ResourceCore(Settings(), locations)
    await core.start()
    try:
        core.set_limit("default_model", "qwen/qwen3-32b")
        result = await core.ask(PromptRequest("Which model?", "triage", Priority.CRITICAL,
                                              max_completion_tokens=50))
    finally:
        await core.stop()
    assert result.completion.model == "qwen/qwen3-32b"
