"""`medops status` and `medops limits history` print values other members or operators chose (a model name, an
operator's name on a fleet command): control characters are shown, never sent, and markup is plain text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medops.console.cli import main
from medops.core.clock import FakeClock
from medops.core.settings.paths import Locations
from tests.helpers.core_runs import small_core
from tests.helpers.redis_server import RedisServer

OSC52 = "\x1b]52;c;SGVsbG8=\x07"
OSC0 = "\x1b]0;PWNED\x07"
MARKUP = "[@click=app.toggle_intake]CLICK[/]"


def assert_inert(printed: str) -> None:
    assert "Traceback" not in printed
    assert "\x1b" not in printed and "\x07" not in printed and "\x9b" not in printed


@pytest.mark.usefixtures("knowledge_ready")
async def test_limits_history_prints_a_hostile_operator_name_as_text(
        locations: Locations, clock: FakeClock, capsys: pytest.CaptureFixture[str]) -> None:
    operator = f"{OSC52}{OSC0}{MARKUP}@ward7"
    core = small_core(locations, clock)
    await core.start()
    try:
        core.set_limit("io_threads", "6", by=f"{operator} (fleet)")  # as a member carries out a fleet command
    finally:
        await core.stop()
    assert main(["limits", "history"]) == 0
    out, err = capsys.readouterr()
    assert_inert(out + err)
    assert f"by ␛]52;c;SGVsbG8=␇␛]0;PWNED␇{MARKUP}@ward7 (fleet)" in out
    assert main(["limits", "history", "--json"]) == 0
    out, err = capsys.readouterr()
    assert_inert(out + err)
    assert json.loads(out.splitlines()[0])["by"] == f"{operator} (fleet)"  # JSON keeps the value, escaped


@pytest.mark.usefixtures("knowledge_ready")
def test_status_prints_a_hostile_model_name_from_a_fleets_config_as_text(
        locations: Locations, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        redis_server: RedisServer) -> None:
    model = f"m{OSC52}{OSC0}{MARKUP}"
    config = tmp_path / "medops.toml"
    config.write_text(f'default_model = {json.dumps(model)}\n[models.{json.dumps(model)}]\n'
                      "rpm = 30\nrpd = 1000\ntpm = 6000\ntpd = 100000\n")
    monkeypatch.setenv("MEDOPS_CONFIG", str(config))
    monkeypatch.setenv("MEDOPS_MONITOR_INTERVAL", "0.2")
    monkeypatch.setenv("MEDOPS_STORE_URL", redis_server.url)
    assert main(["status"]) == 0
    out, err = capsys.readouterr()
    assert_inert(out + err)
    assert f"quota      m␛]52;c;SGVsbG8=␇␛]0;PWNED␇{MARKUP}: rpm 0/30" in out
    assert main(["fleet"]) == 0  # the model as the store's windows name it
    out, err = capsys.readouterr()
    assert_inert(out + err)
