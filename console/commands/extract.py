"""`medops extract FILE... [--case ID] [--text]`: one JSON line per file, exit 1 if any failed."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TYPE_CHECKING, Any

from console.commands.common import running_core
from core.errors import MedopsError

if TYPE_CHECKING:
    from core.resource_core import ResourceCore


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "extract", help="extract text from documents in the intake folders, one JSON line per file")
    parser.add_argument("files", nargs="+", metavar="FILE", help="PDF, PNG, JPEG or TIFF inside an intake folder")
    parser.add_argument("--case", metavar="ID", help="store each document's text in this case's memory")
    parser.add_argument("--text", action="store_true", help="include the extracted text in each line")
    parser.set_defaults(handler=extract_files)


def extract_files(args: argparse.Namespace) -> int:
    async def run() -> bool:
        async with running_core(args) as core:
            # All files go in at once so every worker is busy; lines come out in the order given.
            tasks = [asyncio.ensure_future(_one(core, name, args.case, args.text)) for name in args.files]
            ok = True
            for task in tasks:
                line = await task
                ok = ok and line["status"] == "ok"
                print(json.dumps(line, ensure_ascii=False), flush=True)
            return ok

    return 0 if asyncio.run(run()) else 1


async def _one(core: ResourceCore, name: str, case_id: str | None, with_text: bool) -> dict[str, Any]:
    started = core.clock.monotonic()
    try:
        result = await core.extract(name, case_id=case_id)
    except MedopsError as exc:
        return {"file": name, "status": "error", "pages": None, "characters": None, "method": None,
                "seconds": round(core.clock.monotonic() - started, 3), "error": str(exc)}
    except Exception as exc:  # one broken file never stops the others
        print(f"medops: unexpected {type(exc).__name__} on {name}", file=sys.stderr)
        return {"file": name, "status": "error", "pages": None, "characters": None, "method": None,
                "seconds": round(core.clock.monotonic() - started, 3),
                "error": f"unexpected {type(exc).__name__}; please report it"}
    line: dict[str, Any] = {"file": name, "status": "ok", "pages": result.pages, "characters": result.characters,
                            "method": result.method, "seconds": round(result.seconds, 3), "error": None}
    if result.warnings:
        line["warnings"] = list(result.warnings)
    if with_text:
        line["text"] = result.text
    return line
