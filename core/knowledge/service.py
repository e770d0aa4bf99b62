"""The ICD-10-CM knowledge base: look up a code, search descriptions, list children.

`KnowledgeService` prepares `knowledge.duckdb` off the event loop (building it on
first run), then answers through the query cache and the DuckDB pool. Queries that
arrive while it is still being built wait for it; if it cannot be prepared they
fail with the reason. Every query is parameterised; user text never becomes SQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from medops.core.clock import Clock
from medops.core.errors import KnowledgeError
from medops.core.knowledge.build import CHAPTERS, BuildOutcome, display_code, ensure_knowledge, words_of
from medops.core.knowledge.db_pool import DuckDBPool
from medops.core.knowledge.entries import CodeEntry, SearchHit, SearchResults
from medops.core.knowledge.query_cache import QueryCache, Rows, cache_key
from medops.core.settings.config import Settings
from medops.core.snapshot import CacheSnapshot, KnowledgeSnapshot, KnowledgeState, PoolSnapshot

MAX_SEARCH_WORDS = 12
MAX_SEARCH_LIMIT = 500
_CODE_SHAPE = re.compile(r"[A-Z][0-9][0-9A-Z]{1,5}")
_CODE_PREFIX = re.compile(r"[A-Z][0-9][0-9A-Z]{0,5}")  # R0, R07, R078...: a code or the start of one
# ICD-10-CM's connecting and hedging words: "Chest pain, unspecified" is all chest pain, so these do not
# count in how much of a description a search covers.
FILLER_WORDS = ("a", "and", "as", "at", "by", "classified", "due", "elsewhere", "for", "from", "in", "not", "of",
                "on", "or", "other", "site", "specified", "the", "to", "unspecified", "with", "without")


class InvalidCode(KnowledgeError):
    """The text given is not shaped like an ICD-10-CM code."""


class InvalidSearch(KnowledgeError):
    """A search had no usable words or an impossible limit."""


class KnowledgeUnavailable(KnowledgeError):
    """The knowledge base is not running or could not be prepared."""


def normalise_code(text: str) -> str:
    """"r07.9", " R079 " -> "R079"; refuses text that cannot be an ICD-10-CM code."""
    code = re.sub(r"[\s.]", "", text).upper()
    if not _CODE_SHAPE.fullmatch(code):
        shown = text.strip()[:20]
        raise InvalidCode(f"{shown!r} is not an ICD-10-CM code: a letter, a digit, then 1 to 5 letters or "
                          f"digits, with or without the dot (e.g. R07.9 or R079)")
    return code


def code_prefix(text: str) -> str | None:
    """"r07.9", "R079", "r07" -> the code (or code start) without its dot; None for text not shaped like one."""
    code = text.strip().replace(".", "").upper()
    return code if _CODE_PREFIX.fullmatch(code) else None


def search_words(text: str) -> list[str]:
    """The distinct lower-cased words of a search, in order; refuses a search with none."""
    words = list(dict.fromkeys(words_of(text)))
    if not words:
        raise InvalidSearch("a search needs at least one word of letters or digits (e.g. \"chest pain\"); "
                            f"the text given ({len(text)} characters) has none")
    if len(words) > MAX_SEARCH_WORDS:
        raise InvalidSearch(f"a search takes at most {MAX_SEARCH_WORDS} words, this one has {len(words)}; "
                            f"keep the most specific ones")
    return words


# Parent and child counts are stored per row at build time and chapter titles are
# constants: a join or a correlated count here would double or triple a lookup's cost.
CODE_SQL = """
SELECT display, billable, description, category, chapter, parent, children FROM codes WHERE code = $1
"""

CHILDREN_SQL = """
SELECT display, billable, description, category, chapter, parent, children FROM codes WHERE parent = $1
ORDER BY code
"""

_CHAPTER_TITLES = {number: title for number, _first, _last, title in CHAPTERS}

# Ranked without the FTS extension (it would need a download). First the code typed ($3, without its dot;
# NULL when the text is not shaped like one), then the codes it starts, in code order. Then by words: most
# search words matched, then most matched as whole words, then how much of the description they cover
# (search words starting one of its words, over its words with fillers aside), then most matched at a
# word's start, then the earliest match, the shortest description. `total` counts every match, past the limit.
SEARCH_SQL = """
SELECT display, billable, description, matched, whole, by_code, total
FROM (
    SELECT *, count(*) OVER () AS total, starts / greatest(words - fillers, 1) AS coverage
    FROM (
        SELECT code, display, billable, description,
            CASE WHEN code = $3 THEN 2 WHEN starts_with(code, $3) THEN 1 ELSE 0 END AS code_rank,
            code_rank > 0 AS by_code,
            len(list_filter($1, lambda w: contains(search_text, w))) AS matched,
            len(list_filter($1, lambda w: contains(search_text, ' ' || w || ' '))) AS whole,
            len(list_filter($1, lambda w: contains(search_text, ' ' || w))) AS starts,
            list_min(list_transform($1, lambda w: nullif(strpos(search_text, w), 0))) AS first_at,
            length(search_text) - length(replace(search_text, ' ', '')) - 1 AS words,
            len(regexp_extract_all(search_text, '{fillers}')) AS fillers
        FROM codes
        WHERE starts_with(code, $3) OR list_bool_or(list_transform($1, lambda w: contains(search_text, w)))
    )
)
ORDER BY code_rank DESC, CASE WHEN by_code THEN code END, matched DESC, whole DESC, coverage DESC, starts DESC,
    first_at, length(description), code
LIMIT $2
""".format(fillers=rf"\b({'|'.join(FILLER_WORDS)})\b")  # our own constant: one regex beats a list of contains()


def _entry(row: Sequence[Any]) -> CodeEntry:
    return CodeEntry(code=row[0], billable=row[1], description=row[2], category=row[3], chapter=row[4],
                     chapter_title=_CHAPTER_TITLES.get(row[4], ""), parent=display_code(row[5]) if row[5] else None,
                     children=int(row[6]))


class KnowledgeService:
    """The knowledge base's lifecycle and queries: build, open, cache, pool."""

    def __init__(self, path: Path, settings: Settings, clock: Clock, build_on: Executor | None = None) -> None:
        """`build_on`: the threads that build the knowledge base on first run (CPU-bound); default: asyncio's."""
        self.path = path
        self._clock = clock
        self._build_on = build_on
        self.pool = DuckDBPool(settings.db_connection_pool_size, settings.db_query_timeout, clock)
        self.cache = QueryCache(settings.query_cache_size, settings.query_cache_ttl, clock)
        self._preparing: asyncio.Task[BuildOutcome] | None = None
        self._state: KnowledgeState = "off"
        self._detail = ""
        self._stage = ""
        self._progress = 0.0
        self._codes = 0

    def start(self) -> None:
        """Begin preparing the knowledge base in the background; returns at once."""
        if self._preparing is None:
            self._state = "building"
            self._preparing = asyncio.get_running_loop().create_task(self._prepare(), name="knowledge-prepare")
            # The failure is kept in `snapshot` and raised by `ready`: never an unretrieved error.
            self._preparing.add_done_callback(lambda task: task.cancelled() or task.exception())

    async def _prepare(self) -> BuildOutcome:
        try:
            outcome = await asyncio.get_running_loop().run_in_executor(
                self._build_on, ensure_knowledge, self.path, self._clock.wall(), self._on_progress)
            await asyncio.to_thread(self.pool.open, self.path)
        except KnowledgeError as exc:
            self._state, self._detail = "failed", str(exc)
            raise
        except OSError as exc:
            self._state = "failed"
            self._detail = f"cannot prepare {self.path.name} ({exc}); check that {self.path.parent} is writable"
            raise KnowledgeUnavailable(self._detail) from exc
        self._state, self._detail, self._codes = "ready", outcome.detail, outcome.codes
        return outcome

    def _on_progress(self, stage: str, fraction: float) -> None:
        # Called from the build thread: plain attribute writes, read by `snapshot`.
        self._stage, self._progress = stage, fraction

    async def ready(self) -> BuildOutcome:
        """Wait until the knowledge base can answer; raises why if it cannot."""
        if self._preparing is None:
            raise KnowledgeUnavailable("the knowledge base is not running; start the core first")
        try:
            return await asyncio.shield(self._preparing)
        except KnowledgeError:
            raise

    async def stop(self) -> None:
        """Let a build in progress finish (its thread cannot be cut short), then close the pool."""
        preparing, self._preparing = self._preparing, None
        if preparing is not None:
            with contextlib.suppress(KnowledgeError):
                await preparing
        self._state = "off"
        await asyncio.to_thread(self.pool.close)

    async def fetch(self, sql: str, params: Sequence[Any]) -> Rows:
        """Rows of one parameterised query: from the cache, else from the pool (then cached)."""
        if self._state != "ready":
            await self.ready()
        key = cache_key(sql, params)
        rows = self.cache.get(key)
        if rows is None:
            rows = await self.pool.fetch(sql, params)
            self.cache.put(key, rows)
        return rows

    async def code(self, text: str) -> CodeEntry | None:
        """The entry for a code ("R07.9" or "R079"), or None if ICD-10-CM has no such code."""
        rows = await self.fetch(CODE_SQL, [normalise_code(text)])
        return _entry(rows[0]) if rows else None

    async def children(self, text: str) -> tuple[CodeEntry, ...]:
        """The codes one level below `text` (a category's subcategories, and so on)."""
        code = normalise_code(text)
        rows = await self.fetch(CHILDREN_SQL, [code])
        if not rows and await self.code(code) is None:
            raise InvalidCode(f"ICD-10-CM has no code {display_code(code)}; search for it by words instead")
        return tuple(_entry(row) for row in rows)

    async def search(self, text: str, limit: int = 20) -> SearchResults:
        """The code typed (with or without its dot) and its family first, then codes whose descriptions
        hold the most of the text's words and are most covered by them; with the count of all matches."""
        if not 1 <= limit <= MAX_SEARCH_LIMIT:
            raise InvalidSearch(f"a search returns 1 to {MAX_SEARCH_LIMIT} results; {limit} was asked for")
        code = code_prefix(text)
        # A code's digits are not words: "R07.9" must not find every description with a 9 in it.
        words = [code.lower()] if code else search_words(text)
        rows = await self.fetch(SEARCH_SQL, [words, limit, code])
        hits = tuple(SearchHit(code=r[0], billable=r[1], description=r[2], matched_words=r[3], whole_words=r[4],
                               by_code=r[5]) for r in rows)
        return SearchResults(hits, total=rows[0][6] if rows else 0)

    def snapshot(self) -> tuple[KnowledgeSnapshot, PoolSnapshot, CacheSnapshot]:
        """The knowledge base's state, its pool and its cache."""
        knowledge = KnowledgeSnapshot(state=self._state, detail=self._detail, stage=self._stage,
                                      progress=self._progress, codes=self._codes)
        return knowledge, self.pool.snapshot(), self.cache.snapshot()
