"""Burn rate: a day window's pace over the last hour (from the quota's own records) and when it runs out at that
pace, against a fake clock; the alert when that falls before the window frees; its line on the Overview and in
`medops status`."""

from __future__ import annotations

import json

import pytest
from rich.text import Text

from medops.console.commands.status import burn_lines, status_dict
from medops.console.panes.vitals import LINE_WIDTH, burn_line
from medops.core.burn_rate import HOUR, burn_rates, out_words, project
from medops.core.clock import FakeClock
from medops.core.groq.quota import GroqQuota
from medops.core.settings.config import ModelLimits, Settings
from medops.core.snapshot import CoreSnapshot, QuotaSnapshot, WindowUsage
from medops.core.watch.alerts import AlertEngine, BurnRateRule

LIMITS = ModelLimits(rpm=1_000, rpd=1_000, tpm=1_000_000, tpd=1_000_000)
SETTINGS = Settings(alert_open_after=5.0, alert_repeat_interval=60.0)


async def spend(quota: GroqQuota, clock: FakeClock, requests: int, every: float, tokens: int = 100) -> None:
    """`requests` requests of `tokens`, one each `every` seconds, each answered at once."""
    for _ in range(requests):
        reservation = quota.try_admit(tokens)
        assert reservation is not None
        quota.settle(reservation, tokens)
        await clock.advance(every)


def quota_snapshot(quota: GroqQuota) -> QuotaSnapshot:
    return QuotaSnapshot((quota.snapshot(),), default_model=quota.model)


async def test_the_pace_is_what_entered_the_day_window_in_the_last_hour(clock: FakeClock) -> None:
    quota = GroqQuota("m", LIMITS, clock)
    await spend(quota, clock, 100, every=60.0)  # 100 minutes: 59 of them in the last hour (one a whole hour ago)
    windows = {w.name: w for w in quota.snapshot().windows}
    assert windows["rpd"].last_hour == 59
    assert windows["tpd"].last_hour == 5_900
    flying = quota.try_admit(100)
    assert flying is not None
    assert {w.name: w.last_hour for w in quota.snapshot().windows}["rpd"] == 60  # in flight counts too
    assert windows["rpm"].last_hour is None  # a minute window has no pace to project


async def test_at_this_pace_the_window_runs_out_when_its_room_is_spent(clock: FakeClock) -> None:
    quota = GroqQuota("m", LIMITS, clock)
    await spend(quota, clock, 121, every=30.0)  # the last hour holds 119 of them; 879 left
    now = clock.wall()
    rpd = next(r for r in burn_rates(quota_snapshot(quota), now) if r.window == "rpd")
    assert (rpd.per_hour, rpd.remaining) == (119, 879)
    assert rpd.runs_out_at == pytest.approx(now + 879 / 119 * HOUR)
    # the oldest request leaves the day window a day after it settled: long after 7.3 hours
    assert rpd.frees_at == pytest.approx(now + 86_400.0 - 121 * 30.0 + 30.0)
    assert rpd.runs_out_first


async def test_a_window_spent_slowly_frees_before_it_runs_out(clock: FakeClock) -> None:
    quota = GroqQuota("m", LIMITS, clock)
    await spend(quota, clock, 10, every=60.0)
    await clock.advance(86_400.0 - 20 * 60.0)  # the first ones leave in ten minutes
    await spend(quota, clock, 1, every=1.0)
    rpd = next(r for r in burn_rates(quota_snapshot(quota), clock.wall()) if r.window == "rpd")
    assert rpd.per_hour == 1 and not rpd.runs_out_first


async def test_a_window_unused_for_an_hour_never_runs_out_at_this_pace(clock: FakeClock) -> None:
    quota = GroqQuota("m", LIMITS, clock)
    await spend(quota, clock, 5, every=1.0)
    await clock.advance(HOUR)
    rpd = next(r for r in burn_rates(quota_snapshot(quota), clock.wall()) if r.window == "rpd")
    assert (rpd.per_hour, rpd.runs_out_at, rpd.runs_out_first) == (0, None, False)
    assert out_words(rpd, clock.wall()) == "nothing used in the last hour"


def test_a_pace_not_known_is_not_projected() -> None:
    assert project("m", WindowUsage("rpd", 5, 10, 60.0), 0.0) is None  # a fleet member's own windows
    assert project("m", WindowUsage("rpm", 5, 10, 60.0, last_hour=5), 0.0) is None


def snapshot_of(clock: FakeClock, *windows: WindowUsage) -> CoreSnapshot:
    from medops.core.snapshot import ModelQuota
    return CoreSnapshot(taken_at=clock.wall(), uptime=0.0,
                        quota=QuotaSnapshot((ModelQuota("llama", windows),), default_model="llama"))


RUNNING_OUT = WindowUsage("rpd", 900, 1_000, reset_in=40_000.0, last_hour=50)  # out in 2 h, frees in 11 h
LASTING = WindowUsage("tpd", 1_000, 1_000_000, reset_in=40_000.0, last_hour=100)


async def test_the_alert_opens_after_the_damping_when_a_window_runs_out_before_it_frees(clock: FakeClock) -> None:
    engine = AlertEngine(clock, [BurnRateRule()])
    snapshot = snapshot_of(clock, RUNNING_OUT, LASTING)
    assert engine.evaluate(snapshot, SETTINGS) == []  # not yet: it must hold alert_open_after
    await clock.advance(5.0)
    announced = engine.evaluate(snapshot_of(clock, RUNNING_OUT, LASTING), SETTINGS)
    assert [a.name for a in announced] == ["burn_rate:llama:rpd"]
    assert "llama rpd out at" in announced[0].message and "50 in the last hour" in announced[0].message
    assert announced[0].value == pytest.approx(2.0)  # hours left at this pace


async def test_no_burn_rate_alert_while_the_window_frees_first(clock: FakeClock) -> None:
    engine = AlertEngine(clock, [BurnRateRule()])
    freeing = WindowUsage("rpd", 900, 1_000, reset_in=600.0, last_hour=50)
    for _ in range(10):
        assert engine.evaluate(snapshot_of(clock, freeing), SETTINGS) == []
        await clock.advance(1.0)


def test_the_overview_line_fits_80_columns_and_names_the_soonest_out_first(clock: FakeClock) -> None:
    line = burn_line(snapshot_of(clock, LASTING, RUNNING_OUT))
    plain = Text.from_markup(line).plain
    assert plain.startswith("burn rpd 50/h out at ") and "tpd 100/h lasts over a day" in plain
    assert len(plain) <= LINE_WIDTH
    assert "[b reverse]rpd 50/h" in line  # runs out before it frees: emphasised
    assert burn_line(snapshot_of(clock, WindowUsage("rpd", 0, 1_000, 0.0, last_hour=0))) == ""


def test_status_prints_each_burn_rate_in_words_and_in_json(clock: FakeClock) -> None:
    snapshot = snapshot_of(clock, RUNNING_OUT, LASTING)
    lines = burn_lines(snapshot)
    assert lines[0].startswith("burn       llama rpd: 50 in the last hour, 100 left; out at ")
    assert "RUNS OUT before it frees" in lines[0] and "RUNS OUT" not in lines[1]
    plain = json.loads(json.dumps(status_dict(snapshot)))
    rpd = next(r for r in plain["burn_rates"] if r["window"] == "rpd")
    assert (rpd["per_hour"], rpd["runs_out_first"]) == (50, True)
    assert rpd["runs_out_at"] == pytest.approx(clock.wall() + 2 * HOUR)
