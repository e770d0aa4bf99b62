"""The data folder is checked, not trusted as found: owner, mode, links planted in it, file modes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from medops.console.cli import main
from medops.core.doctor import run_checks
from medops.core.errors import ConfigError
from medops.core.settings.paths import Locations


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def data_check(locations: Locations) -> tuple[bool, str]:
    check = next(c for c in run_checks(locations, env={}) if c.name == "data folder")
    return check.ok, check.detail


def test_an_open_folder_of_ours_is_made_owner_only_and_said(locations: Locations) -> None:
    locations.data_dir.mkdir(parents=True)
    os.chmod(locations.data_dir, 0o777)
    (locations.data_dir / "ops.duckdb").write_bytes(b"x")
    os.chmod(locations.data_dir / "ops.duckdb", 0o644)
    ok, detail = data_check(locations)
    assert not ok and "is mode 0777, open to others" in detail  # doctor reports it as found
    fixed = locations.ensure()
    assert mode(locations.data_dir) == 0o700 and mode(locations.data_dir / "ops.duckdb") == 0o600
    assert any("was mode 0777" in note and "set to 0700" in note for note in fixed)
    assert data_check(locations)[0]


def test_doctor_warns_of_a_0755_folder_that_start_fixes_without_failing(locations: Locations,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    locations.data_dir.mkdir(parents=True)
    os.chmod(locations.data_dir, 0o755)
    assert main(["doctor"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.split()[1:3] == ["data", "folder"])
    assert line.startswith("warn") and "is mode 0755, open to others; medops sets it to 0700 at start" in line
    assert mode(locations.data_dir) == 0o755  # doctor reports; start repairs


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_a_folder_owned_by_another_user_is_refused(locations: Locations) -> None:
    locations.data_dir.mkdir(parents=True)
    os.chown(locations.data_dir, 65534, 65534)
    with pytest.raises(ConfigError, match=r"belongs to user id 65534, not to this user.*one user per data folder"):
        locations.ensure()
    assert not data_check(locations)[0]


@pytest.mark.parametrize("name", ["ops.duckdb", "knowledge.duckdb.wal", "intake"])
def test_a_link_planted_for_a_data_file_or_the_intake_folder_is_refused(locations: Locations, tmp_path: Path,
                                                                         name: str) -> None:
    locations.data_dir.mkdir(parents=True, mode=0o700)
    target = tmp_path / "chosen-by-someone-else"
    (locations.data_dir / name).symlink_to(target)
    with pytest.raises(ConfigError, match=rf"{name} is a symbolic link: medops does not follow links"):
        locations.ensure()
    assert not target.exists()
    ok, detail = data_check(locations)
    assert not ok and "symbolic link" in detail


def test_an_intake_link_is_left_alone_when_intake_dirs_are_configured(locations: Locations, tmp_path: Path) -> None:
    locations.data_dir.mkdir(parents=True, mode=0o700)
    (locations.data_dir / "intake").symlink_to(tmp_path)
    assert locations.ensure(check_intake=False) == ()


def test_files_medops_creates_are_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {**os.environ, "MEDOPS_DATA_DIR": str(data), "MEDOPS_CONFIG_DIR": str(tmp_path / "config")}
    done = subprocess.run([sys.executable, "-m", "medops", "status", "--json"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    created = list(data.rglob("*"))
    assert any(p.name == "ops.duckdb" for p in created)
    assert mode(data) == 0o700
    assert {p.name: oct(mode(p)) for p in created if mode(p) & 0o077} == {}
