"""Alerts from the console: acknowledged and silenced from the Alerts pane; a resize is not the core stalling."""

from __future__ import annotations

from dataclasses import replace

from medops.console import times
from medops.console.app import MedopsApp
from medops.console.panes.alerts import SILENCE_FOR, AlertsPane, alert_line
from medops.console.panes.status import ConsoleState, status_text
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations
from medops.core.snapshot import Alert, EndpointInfo
from tests.helpers.console_data import NOW, FrozenCore, busy_snapshot
from tests.helpers.waiting import until


class AlertCore(FrozenCore):
    """Records what the console asks of its alerts and of the loop-lag probe."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str, float]] = []

    def acknowledge_alert(self, name: str) -> bool:
        self.calls.append(("acknowledge", name, 0.0))
        return True

    def silence_alert(self, name: str, seconds: float) -> float:
        self.calls.append(("silence", name, seconds))
        return 0.0

    def excuse_loop_lag(self, seconds: float) -> None:
        self.calls.append(("excuse", "", seconds))


async def test_the_alerts_pane_acknowledges_and_silences_the_open_alerts(locations: Locations) -> None:
    core = AlertCore()
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=core)  # type: ignore[arg-type]
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.snapshots_applied > 0)
        app.query_one(AlertsPane).focus()
        await pilot.press("k", "s")
        await pilot.pause()
        open_alert = "quota_low:llama-3.3-70b-versatile"  # the busy snapshot's one open alert (the other cleared)
        assert [c for c in core.calls if c[0] != "excuse"] == [("acknowledge", open_alert, 0.0),
                                                              ("silence", open_alert, SILENCE_FOR)]


async def test_a_resize_excuses_the_loop_lag_it_causes(locations: Locations) -> None:
    core = AlertCore()
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=core)  # type: ignore[arg-type]
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.core_started)
        core.calls.clear()
        await pilot.resize_terminal(160, 48)
        await pilot.pause()
        assert [c[0] for c in core.calls] == ["excuse"]


def test_alert_times_are_local_with_the_zone_named_like_the_history(berlin_time: None) -> None:
    line = alert_line(Alert("cpu", "warning", "CPU 95%", NOW))  # 00:00 UTC
    assert line.startswith("01:00:00") and times.zone(NOW) == "CET time"


def test_the_status_line_says_which_groq_in_words() -> None:
    local = busy_snapshot()
    assert "[b]Groq stand-in[/] [$success]ok[/]" in status_text(local, ConsoleState(1.0, False, "x"))
    real = replace(local, endpoint=EndpointInfo("groq", "https://api.groq.com", False))
    assert "[b]Groq api.groq.com[/] [reverse $error] DOWN [/]" in status_text(real, ConsoleState(1.0, False, "x"))


async def test_a_cleared_alert_shows_when_it_cleared_not_when_it_opened(locations: Locations, utc_time: None) -> None:
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=FrozenCore())
    async with app.run_test(size=(160, 48)) as pilot:
        assert await until(pilot, lambda: app.snapshots_applied > 0)
        shown = str(app.query_one(AlertsPane).render())
        # the busy snapshot's loop_lag alert opened at 23:50:00 and cleared at 23:51:40
        assert f"{times.clock_time(NOW - 500)} cleared loop_lag" in shown
        assert f"{times.clock_time(NOW - 600)} cleared" not in shown
