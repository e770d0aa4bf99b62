"""Shared fixtures: every test gets its own data and config folders."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from medops.core.clock import FakeClock
from medops.core.knowledge.build import build_knowledge
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations
from tests.helpers.redis_server import RedisServer

KNOWLEDGE_BUILT_AT = 1_767_225_600.0  # the wall time stamped in the session's knowledge base


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


@pytest.fixture(scope="session")
def built_knowledge(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real knowledge base, built once per session (over a second; a copy of it takes milliseconds)."""
    path = tmp_path_factory.mktemp("knowledge") / "knowledge.duckdb"
    build_knowledge(path, KNOWLEDGE_BUILT_AT)
    return path


@pytest.fixture
def knowledge_ready(isolated_folders: Locations, built_knowledge: Path) -> Path:
    """A copy of the session's knowledge base in this test's data folder, so a core started here opens it.

    For tests that start cores: the build is the same every time, so they skip it. Tests of the build
    itself (first run, progress, a corrupt or outdated file) do not use this and build for real.
    """
    isolated_folders.ensure()
    shutil.copyfile(built_knowledge, isolated_folders.knowledge_db)
    return isolated_folders.knowledge_db


@contextmanager
def local_zone(zone: str) -> Iterator[None]:
    """Local time is `zone` inside the block, so the times a test prints or draws are known."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = zone
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


@pytest.fixture
def utc_time() -> Iterator[None]:
    """Local time is UTC: frozen screenshots do not depend on this machine's zone."""
    with local_zone("UTC"):
        yield


@pytest.fixture
def berlin_time() -> Iterator[None]:
    """Local time is Europe/Berlin (not UTC, with summer time): printed local times are known and shifted."""
    with local_zone("Europe/Berlin"):
        yield


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server of this test's own on a free loopback port, stopped after."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()
