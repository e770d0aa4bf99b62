"""The ICD-10-CM knowledge base: its build, its queries and its bad-input answers."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import duckdb
import pytest

from medops.core.clock import FakeClock
from medops.core.errors import KnowledgeError
from medops.core.knowledge.build import (
    KnowledgeBuildError,
    build_knowledge,
    display_code,
    ensure_knowledge,
    load_source,
)
from medops.core.knowledge.service import InvalidCode, InvalidSearch, KnowledgeService, KnowledgeUnavailable
from medops.core.settings.config import Settings

WALL = 1_767_225_600.0


@pytest.fixture
def knowledge_path(built_knowledge: Path, tmp_path: Path) -> Path:
    """A private copy of the session's knowledge base (tests/conftest.py) in this test's folder."""
    path = tmp_path / "knowledge.duckdb"
    shutil.copyfile(built_knowledge, path)
    return path


@pytest.fixture
async def service(knowledge_path: Path, clock: FakeClock) -> AsyncIterator[KnowledgeService]:
    service = KnowledgeService(knowledge_path, Settings(), clock)
    service.start()
    await service.ready()
    yield service
    await service.stop()


def query(path: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


# Build -----------------------------------------------------------------------------------------


def test_the_build_holds_every_code_the_package_ships(built_knowledge: Path) -> None:
    source = load_source()
    assert query(built_knowledge, "SELECT count(*) FROM codes") == [(len(source),)]
    assert query(built_knowledge, "SELECT count(*) FROM codes WHERE billable") == [
        (sum(1 for billable, _ in source.values() if billable),)]


def test_every_code_gets_a_chapter_and_its_category(built_knowledge: Path) -> None:
    assert query(built_knowledge, "SELECT count(*) FROM codes WHERE chapter IS NULL") == [(0,)]
    assert query(built_knowledge, "SELECT count(*) FROM codes WHERE category <> left(code, 3)") == [(0,)]
    assert query(built_knowledge, "SELECT display, category, chapter, parent FROM codes WHERE code = 'R079'") == [
        ("R07.9", "R07", 18, "R07")]


def test_a_code_whose_direct_parent_is_absent_hangs_from_the_nearest_one(built_knowledge: Path) -> None:
    # E08.37X1 has no E08.37X entry in ICD-10-CM.
    assert query(built_knowledge, "SELECT count(*) FROM codes WHERE code = 'E0837X'") == [(0,)]
    assert query(built_knowledge, "SELECT parent FROM codes WHERE code = 'E0837X1'") == [("E0837",)]


def test_display_codes_put_the_dot_after_the_category() -> None:
    assert [display_code(c) for c in ("R07", "R079", "S72392A")] == ["R07", "R07.9", "S72.392A"]


def test_the_build_reports_progress_and_leaves_only_the_finished_file(tmp_path: Path) -> None:
    seen: list[tuple[str, float]] = []
    build_knowledge(tmp_path / "knowledge.duckdb", WALL, lambda stage, fraction: seen.append((stage, fraction)))
    fractions = [fraction for _, fraction in seen]
    assert fractions == sorted(fractions)
    assert seen[-1] == ("ready", 1.0)
    assert len(seen) > 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["knowledge.duckdb"]


def test_a_valid_knowledge_base_is_not_rebuilt(knowledge_path: Path) -> None:
    before = knowledge_path.stat()
    outcome = ensure_knowledge(knowledge_path, WALL)
    assert not outcome.built
    assert outcome.codes == len(load_source())
    assert knowledge_path.stat().st_ino == before.st_ino
    assert knowledge_path.stat().st_mtime_ns == before.st_mtime_ns


def test_a_corrupt_knowledge_base_is_set_aside_and_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "knowledge.duckdb"
    path.write_bytes(b"this is not a database" * 100)
    outcome = ensure_knowledge(path, WALL)
    assert outcome.built
    assert "not a readable knowledge base" in outcome.detail
    assert (tmp_path / "knowledge.duckdb.corrupt").read_bytes() == b"this is not a database" * 100
    assert query(path, "SELECT count(*) FROM codes") == [(len(load_source()),)]


def test_a_knowledge_base_of_another_schema_is_rebuilt(knowledge_path: Path) -> None:
    with duckdb.connect(str(knowledge_path)) as con:
        con.execute("UPDATE meta SET value = '0' WHERE key = 'schema_version'")
    outcome = ensure_knowledge(knowledge_path, WALL)
    assert outcome.built
    assert "schema '0'" in outcome.detail
    assert query(knowledge_path, "SELECT value FROM meta WHERE key = 'schema_version'") != [("0",)]


def test_a_build_that_cannot_write_says_where_and_leaves_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(KnowledgeBuildError, match="is writable"):
        build_knowledge(blocker / "knowledge.duckdb", WALL)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-folder"]


# Queries ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["R07.9", "R079", "r07.9", " R07.9 "])
async def test_a_code_is_found_with_or_without_its_dot(service: KnowledgeService, text: str) -> None:
    entry = await service.code(text)
    assert entry is not None
    assert (entry.code, entry.billable, entry.description) == ("R07.9", True, "Chest pain, unspecified")
    assert (entry.category, entry.chapter, entry.parent, entry.children) == ("R07", 18, "R07", 0)
    assert entry.chapter_title.startswith("Symptoms, signs")


async def test_a_well_formed_code_icd10cm_lacks_is_none(service: KnowledgeService) -> None:
    assert await service.code("R07.99") is None


@pytest.mark.parametrize("text", ["", "chest", "7R0", "R", "R07.9999999", "R0'7"])
async def test_text_that_is_not_a_code_is_refused_clearly(service: KnowledgeService, text: str) -> None:
    with pytest.raises(InvalidCode, match="is not an ICD-10-CM code"):
        await service.code(text)


async def test_a_category_lists_its_children_in_order(service: KnowledgeService) -> None:
    children = await service.children("R07")
    assert [c.code for c in children] == ["R07.0", "R07.1", "R07.2", "R07.8", "R07.9"]
    assert [c.code for c in await service.children("R07.8")] == ["R07.81", "R07.82", "R07.89"]
    assert next(c for c in children if c.code == "R07.8").children == 3


async def test_a_leaf_code_has_no_children_and_an_unknown_code_is_refused(service: KnowledgeService) -> None:
    assert await service.children("R07.9") == ()
    with pytest.raises(InvalidCode, match=r"no code R07\.7"):
        await service.children("R077")


async def test_search_ranks_codes_matching_every_word_first(service: KnowledgeService) -> None:
    hits = (await service.search("chest pain", limit=30)).hits
    assert len(hits) == 30
    matched = [hit.matched_words for hit in hits]
    assert matched == sorted(matched, reverse=True)
    assert hits[0].matched_words == 2
    assert {"R07.9", "R07.89", "R07.1"} <= {hit.code for hit in hits if hit.matched_words == 2}
    for hit in hits[:5]:
        assert "chest" in hit.description.lower() and "pain" in hit.description.lower()


async def test_search_prefers_whole_words(service: KnowledgeService) -> None:
    hits = (await service.search("diabetes", limit=500)).hits
    whole = [hit.whole_words for hit in hits]
    assert whole == sorted(whole, reverse=True)  # "Prediabetes" only after every whole-word match
    assert hits[0].description == "Diabetes insipidus"  # every word of it that is not a filler is covered


async def test_words_rank_by_how_much_of_the_description_they_cover(service: KnowledgeService) -> None:
    codes = [hit.code for hit in (await service.search("chest pain", limit=100)).hits]
    # "Chest pain, unspecified" and "Other chest pain" are all chest pain; "Chest pain on breathing" is not.
    assert codes[:5] == ["R07.9", "R07.8", "R07.89", "R07.1", "R07"]
    assert codes.index("R14.1") > 5 and codes.index("R68.84") > 5  # Gas pain, Jaw pain


@pytest.mark.parametrize("text", ["R07.9", "r079", "R079", " r07.9 "])
async def test_a_code_typed_with_or_without_its_dot_in_any_case_comes_first(service: KnowledgeService,
                                                                            text: str) -> None:
    results = await service.search(text)
    assert [(h.code, h.by_code) for h in results.hits] == [("R07.9", True)]
    assert results.total == 1  # its digits are not searched as words: no "NIHSS score 9"


async def test_a_code_prefix_lists_that_code_s_family_in_code_order(service: KnowledgeService) -> None:
    family = await service.search("R07")
    assert [h.code for h in family.hits] == ["R07", "R07.0", "R07.1", "R07.2", "R07.8", "R07.81", "R07.82",
                                             "R07.89", "R07.9"]
    assert [h.code for h in (await service.search("r07.8")).hits] == ["R07.8", "R07.81", "R07.82", "R07.89"]
    assert family.total == 9


async def test_text_shaped_like_a_code_that_starts_none_is_searched_as_a_word(service: KnowledgeService) -> None:
    hits = (await service.search("b12")).hits
    assert hits and all("B12" in hit.description and not hit.by_code for hit in hits)


async def test_search_respects_its_limit_and_counts_every_match(service: KnowledgeService,
                                                                knowledge_path: Path) -> None:
    results = await service.search("fracture", limit=7)
    assert len(results.hits) == 7
    await service.stop()
    assert query(knowledge_path, "SELECT count(*) FROM codes WHERE contains(search_text, 'fracture')") == [
        (results.total,)]
    assert results.total > 1_000


@pytest.mark.parametrize("text", ["", "   ", "?!", "--- ,,, ..."])
async def test_a_search_without_words_is_refused_clearly(service: KnowledgeService, text: str) -> None:
    with pytest.raises(InvalidSearch, match="at least one word"):
        await service.search(text)


@pytest.mark.parametrize("limit", [0, -1, 10_000])
async def test_an_impossible_limit_is_refused_clearly(service: KnowledgeService, limit: int) -> None:
    with pytest.raises(InvalidSearch, match="1 to 500"):
        await service.search("pain", limit=limit)


async def test_search_text_is_only_ever_data(service: KnowledgeService, knowledge_path: Path) -> None:
    hits = (await service.search("pain'; DROP TABLE codes; --")).hits
    assert hits  # "pain" still matches; the rest is words that match nothing harmful
    await service.stop()
    assert query(knowledge_path, "SELECT count(*) FROM codes") == [(len(load_source()),)]


async def test_a_repeated_query_is_answered_from_the_cache(service: KnowledgeService) -> None:
    first = await service.search("chest pain")
    second = await service.search("chest   PAIN!")
    assert second == first
    _, pool, cache = service.snapshot()
    assert (cache.hits, cache.misses) == (1, 1)
    assert pool.completed == 1


async def test_queries_wait_for_a_first_run_build(tmp_path: Path, clock: FakeClock) -> None:
    service = KnowledgeService(tmp_path / "knowledge.duckdb", Settings(), clock)
    service.start()
    assert service.snapshot()[0].state == "building"
    try:
        entry = await service.code("A00")
        assert entry is not None and entry.description == "Cholera"
        knowledge, _, _ = service.snapshot()
        assert (knowledge.state, knowledge.progress, knowledge.codes) == ("ready", 1.0, len(load_source()))
    finally:
        await service.stop()


async def test_a_knowledge_base_that_cannot_be_prepared_fails_queries_with_the_reason(
        tmp_path: Path, clock: FakeClock) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    service = KnowledgeService(blocker / "knowledge.duckdb", Settings(), clock)
    service.start()
    try:
        with pytest.raises(KnowledgeError, match="writable"):
            await service.search("pain")
        knowledge, _, _ = service.snapshot()
        assert knowledge.state == "failed"
        assert "writable" in knowledge.detail
    finally:
        await service.stop()


async def test_queries_before_start_are_refused(knowledge_path: Path, clock: FakeClock) -> None:
    service = KnowledgeService(knowledge_path, Settings(), clock)
    with pytest.raises(KnowledgeUnavailable, match="start the core"):
        await service.code("R07.9")


async def test_a_knowledge_base_replaced_while_open_keeps_answering(service: KnowledgeService,
                                                                    knowledge_path: Path) -> None:
    # The build renames a new file over the old one; readers keep the file they opened.
    replacement = knowledge_path.with_name("other.duckdb")
    shutil.copyfile(knowledge_path, replacement)
    os.replace(replacement, knowledge_path)
    assert (await asyncio.gather(service.code("A00")))[0] is not None
