"""The `medops` command line: version, doctor, status and config."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from medops.console.cli import main
from medops.core import __version__
from medops.core.doctor import run_checks
from medops.core.settings.paths import Locations


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"medops {__version__}"


@pytest.mark.usefixtures("knowledge_ready")
def test_status_json_prints_one_snapshot_after_the_first_resource_sample(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDOPS_MONITOR_INTERVAL", "0.2")  # the first sample comes one interval after start
    assert main(["status", "--json"]) == 0
    snapshot = json.loads(capsys.readouterr().out)
    assert {"taken_at", "uptime", "quota", "scheduler", "slots", "system", "alerts"} <= set(snapshot)
    system = snapshot["system"]
    assert system["sampled_at"] > 0
    assert system["rss_bytes"] > 0 and system["threads"] > 0
    assert system["memory_used"] > 0 and system["cpu_per_core"]


def test_config_show_prints_value_and_source(capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDOPS_QUEUE_LIMIT", "42")
    assert main(["config", "show"]) == 0
    line = next(row for row in capsys.readouterr().out.splitlines() if row.startswith("queue_limit "))
    assert "42" in line and "env MEDOPS_QUEUE_LIMIT" in line


def test_bad_setting_exits_2_with_a_clear_message(capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDOPS_GROQ_CONCURRENT", "-3")
    assert main(["config", "show"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("medops: setting groq_concurrent = -3 (from env MEDOPS_GROQ_CONCURRENT)")
    assert "Traceback" not in err


def test_doctor_reports_each_check_and_exits_zero_when_essentials_pass(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["doctor"])
    out = capsys.readouterr().out
    for name in ("python", "textual", "groq", "duckdb", "tesseract", "data folder", "shared memory", "groq key"):
        assert f" {name} " in out
    assert "uses its local endpoint" in out
    assert code == 0


def test_doctor_fails_when_the_data_folder_is_not_writable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    checks = {c.name: c for c in run_checks(Locations(tmp_path, blocker / "data"), env={})}
    assert not checks["data folder"].ok and checks["data folder"].essential
    assert "MEDOPS_DATA_DIR" in checks["data folder"].detail


def test_doctor_says_when_the_groq_key_is_set_without_showing_it(tmp_path: Path) -> None:
    checks = {c.name: c for c in run_checks(Locations(tmp_path, tmp_path / "d"), env={"GROQ_API_KEY": "gsk_secret"})}
    assert "talks to Groq" in checks["groq key"].detail
    assert "gsk_secret" not in checks["groq key"].detail


def test_console_script_is_installed() -> None:
    out = subprocess.run([Path(sys.executable).parent / "medops", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "doctor" in out.stdout and "status" in out.stdout


def test_medops_themes_dir_as_the_readme_documents_is_not_taken_for_a_setting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MEDOPS_THEMES_DIR", str(tmp_path / "themes"))
    assert main(["config", "show"]) == 0
    assert "unknown setting" not in capsys.readouterr().err


@pytest.mark.parametrize(("env", "expected"), [
    ({"GROQ_API_KEY": "gsk_clé"}, "GROQ_API_KEY holds characters a Groq key never has"),
    ({"GROQ_BASE_URL": "http://user:pw@proxy.example:3128"}, "'http://***@proxy.example:3128' uses plain http"),
])
def test_doctor_reports_a_key_or_base_url_medops_would_refuse_without_showing_secrets(
        locations: Locations, env: dict[str, str], expected: str) -> None:
    check = next(c for c in run_checks(locations, env=env) if c.name == "groq key")
    assert not check.ok and check.essential and expected in check.detail
    assert "clé" not in check.detail and "pw@" not in check.detail
