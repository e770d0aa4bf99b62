"""The knowledge base and the ledger inside the resource core, and `medops kb` from the shell."""

from __future__ import annotations

import re

import pytest

from medops.console.cli import main
from medops.core.clock import FakeClock
from medops.core.resource_core import CoreNotRunning, ResourceCore
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations

# The tests here start cores: each gets the session's knowledge base (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("knowledge_ready")


async def test_the_core_answers_knowledge_queries_and_shows_their_figures(locations: Locations,
                                                                          clock: FakeClock) -> None:
    core = ResourceCore(Settings(db_connection_pool_size=3), locations, clock)
    await core.start()
    try:
        results = await core.kb_search("chest pain", limit=5)
        assert [h.matched_words for h in results.hits] == [2] * 5 and results.total > 5
        entry = await core.kb_code("R079")
        assert entry is not None and entry.code == "R07.9"
        assert "R07.9" in [c.code for c in await core.kb_children("R07")]
        await core.kb_search("chest pain", limit=5)
        snapshot = core.snapshot()
        duckdb_pool = next(p for p in snapshot.pools if p.name == "duckdb")
        assert (duckdb_pool.capacity, duckdb_pool.completed) == (3, 3)
        assert (snapshot.cache.hits, snapshot.cache.misses) == (1, 3)
        assert snapshot.knowledge.state == "ready"
        assert snapshot.ledger.mode == "read-write"
    finally:
        await core.stop()
    assert core.snapshot().ledger.mode == "off"


async def test_the_knowledge_base_is_prepared_on_the_cpu_threads(locations: Locations, clock: FakeClock) -> None:
    core = ResourceCore(Settings(cpu_threads=2), locations, clock)
    await core.start()
    try:
        await core.knowledge_ready()
        cpu = next(p for p in core.snapshot().pools if p.name == "cpu")
        assert (cpu.capacity, cpu.completed, cpu.errors) == (2, 1, 0)
    finally:
        await core.stop()


async def test_knowledge_queries_need_a_running_core(locations: Locations, clock: FakeClock) -> None:
    core = ResourceCore(Settings(), locations, clock)
    with pytest.raises(CoreNotRunning):
        await core.kb_code("R07.9")


def test_kb_code_prints_the_code_and_where_it_sits(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kb", "code", "r07.9"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "R07.9  Chest pain, unspecified"
    assert "chapter   18  Symptoms, signs" in out
    assert "parent    R07" in out


def test_kb_search_prints_ranked_codes_and_the_count_of_matches(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kb", "search", "chest pain", "--limit", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    assert all("chest pain" in line.lower() for line in lines[:3])
    assert lines[0].split()[0] == "R07.9"
    assert re.fullmatch(r"3 of \d+ matching codes shown; --limit N shows more", lines[3])


@pytest.mark.parametrize("typed", ["R07.9", "r079"])
def test_kb_search_puts_a_typed_code_first(capsys: pytest.CaptureFixture[str], typed: str) -> None:
    assert main(["kb", "search", typed]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "R07.9     billable  Chest pain, unspecified", "1 of 1 matching code shown"]


def test_kb_children_lists_the_codes_below(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kb", "children", "R07"]) == 0
    codes = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert codes == ["R07.0", "R07.1", "R07.2", "R07.8", "R07.9"]


def test_kb_answers_bad_input_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kb", "search", "?!"]) == 2
    assert "at least one word" in capsys.readouterr().err
    assert main(["kb", "code", "chest"]) == 2
    assert "is not an ICD-10-CM code" in capsys.readouterr().err
    assert main(["kb", "code", "R07.99"]) == 1
    assert "has no code R07.99" in capsys.readouterr().out
