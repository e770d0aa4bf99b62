"""What the knowledge base answers: ICD-10-CM code entries and search hits."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CodeEntry:
    """One ICD-10-CM code with where it sits: category, chapter, parent."""

    code: str  # as written, with the dot: R07.9
    billable: bool
    description: str
    category: str
    chapter: int | None
    chapter_title: str
    parent: str | None
    children: int


@dataclass(frozen=True)
class SearchHit:
    """A code whose description matched some of the search words."""

    code: str
    billable: bool
    description: str
    matched_words: int  # how many of the search's words its description contains
    whole_words: int  # how many of them it contains as whole words
    by_code: bool = False  # found because its code is, or starts with, the text searched for


@dataclass(frozen=True)
class SearchResults:
    """A search's best hits, best first, and how many codes matched in all (beyond the limit too)."""

    hits: tuple[SearchHit, ...]
    total: int
