"""`medops kb search|code|children`: ask the ICD-10-CM knowledge base from the shell."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING, Any

from medops.console.commands.common import reads_only, running_core

if TYPE_CHECKING:  # the knowledge module pulls in DuckDB: only the handlers import it
    from medops.core.contract import CoreCommands
    from medops.core.knowledge.entries import CodeEntry, SearchHit, SearchResults

# medops.core.knowledge.service.MAX_SEARCH_LIMIT, which the core enforces; copied so `medops --help` need not
# load DuckDB (tests/console/test_cli.py keeps the two equal).
MAX_SEARCH_LIMIT = 500


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("kb", help="look up ICD-10-CM codes in the knowledge base")
    actions = parser.add_subparsers(dest="kb_action", metavar="ACTION", required=True)
    search = actions.add_parser("search", help="a code and the codes it starts, or codes whose descriptions hold "
                                                "these words; best first, with the count of all matches")
    search.add_argument("words", help='a code with or without its dot (R07.9, r079, R07) or words, e.g. "chest pain"')
    search.add_argument("--limit", type=int, default=20, help=f"results at most (1-{MAX_SEARCH_LIMIT}, default 20)")
    search.set_defaults(handler=kb_search, changes=reads_only)
    code = actions.add_parser("code", help="one code with its category, chapter and parent")
    code.add_argument("code", help="an ICD-10-CM code, with or without the dot (R07.9 or R079)")
    code.set_defaults(handler=kb_code, changes=reads_only)
    children = actions.add_parser("children", help="the codes one level below a code")
    children.add_argument("code", help="an ICD-10-CM code or category (e.g. R07)")
    children.set_defaults(handler=kb_children, changes=reads_only)


async def _ready(resource_core: CoreCommands) -> None:
    """Wait for the knowledge base, saying so when it takes a while (the first run builds it)."""
    ready = asyncio.ensure_future(resource_core.knowledge_ready())
    done, _ = await asyncio.wait({ready}, timeout=0.5)
    if not done:
        print("medops: building the knowledge base (first run: a few seconds)...", file=sys.stderr)
    await ready


def _hit_line(hit: SearchHit) -> str:
    return f"{hit.code:<9} {'billable' if hit.billable else '        '}  {hit.description}"


def _entry_line(entry: CodeEntry) -> str:
    below = f"  ({entry.children} below)" if entry.children else ""
    return f"{entry.code:<9} {'billable' if entry.billable else '        '}  {entry.description}{below}"


def matches_line(results: SearchResults) -> str:
    """"20 of 318 matching codes shown; --limit N shows more": the search's last line."""
    shown, total = len(results.hits), results.total
    more = "; --limit N shows more" if total > shown else ""
    return f"{shown} of {total:,} matching code{'' if total == 1 else 's'} shown{more}"


def kb_search(args: argparse.Namespace) -> int:
    async def ask() -> SearchResults:
        async with running_core(args, "kb") as resource_core:
            await _ready(resource_core)
            return await resource_core.kb_search(args.words, args.limit)

    results = asyncio.run(ask())
    for hit in results.hits:
        print(_hit_line(hit))
    if not results.hits:
        print("no code starts with that and no code's description holds any of these words; "
              "try fewer or more general words")
        return 1
    print(matches_line(results))
    return 0


def kb_code(args: argparse.Namespace) -> int:
    async def ask() -> CodeEntry | None:
        async with running_core(args, "kb") as resource_core:
            await _ready(resource_core)
            return await resource_core.kb_code(args.code)

    entry = asyncio.run(ask())
    if entry is None:
        print(f"ICD-10-CM has no code {args.code.strip().upper()}; try `medops kb search WORDS`")
        return 1
    print(f"{entry.code}  {entry.description}")
    print(f"  billable  {'yes' if entry.billable else 'no (a heading: use a code below it)'}")
    print(f"  category  {entry.category}")
    print(f"  chapter   {entry.chapter or '?'}  {entry.chapter_title}")
    print(f"  parent    {entry.parent or '-'}")
    print(f"  below     {entry.children} code(s)")
    return 0


def kb_children(args: argparse.Namespace) -> int:
    async def ask() -> tuple[CodeEntry, ...]:
        async with running_core(args, "kb") as resource_core:
            await _ready(resource_core)
            return await resource_core.kb_children(args.code)

    entries = asyncio.run(ask())
    for entry in entries:
        print(_entry_line(entry))
    if not entries:
        print(f"{args.code.strip().upper()} has no codes below it (it is a leaf code)")
    return 0
