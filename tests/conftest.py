"""Shared fixtures: every test gets its own data and config folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.clock import FakeClock
from core.config import Settings
from core.paths import Locations


@pytest.fixture(autouse=True)
def isolated_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Locations:
    """Point medops at throwaway folders and clear any MEDOPS_* or Groq settings."""
    import os

    for name in list(os.environ):
        if name.startswith("MEDOPS_") or name in {"GROQ_API_KEY", "GROQ_BASE_URL"}:
            monkeypatch.delenv(name)
    monkeypatch.setenv("MEDOPS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MEDOPS_CONFIG_DIR", str(tmp_path / "config"))
    return Locations(config_dir=tmp_path / "config", data_dir=tmp_path / "data")


@pytest.fixture
def locations(isolated_folders: Locations) -> Locations:
    return isolated_folders


@pytest.fixture
def settings() -> Settings:
    return Settings()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
