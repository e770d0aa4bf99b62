"""`medops extract FILE... [--case ID] [--text]`: one JSON line per file, exit 1 if any failed.

With `--case` the text joins that case in the case memory of the medops running on the
same data folder (the console, usually): this command's own core lives only as long as
the command, so a case stored there would vanish with it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from medops.console.commands.common import load, running_core
from medops.core.errors import MedopsError
from medops.core.settings.paths import locate

if TYPE_CHECKING:
    from medops.core.contract import CoreCommands
    from medops.core.documents.intake import Intake
    from medops.core.memory.case_memory import CaseMemory


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "extract", help="extract text from documents in the intake folders, one JSON line per file")
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="PDF, PNG, JPEG or TIFF inside an intake folder: a path, or a name in the current folder "
                             "or an intake folder (each line's found_in says which)")
    parser.add_argument("--case", metavar="ID",
                        help="add each document's text to this case in the running medops' case memory")
    parser.add_argument("--text", action="store_true", help="include the extracted text in each line")
    parser.set_defaults(handler=extract_files, changes=lambda a: "extracting documents"
                        + (" into a case" if a.case is not None else ""))


def extract_files(args: argparse.Namespace) -> int:
    from medops.core.documents.intake import Intake

    # The same folders and rules as the core's own intake, which checks every file again before reading it.
    intake = Intake.from_settings(load(args).settings, locate())
    cases = None
    if args.case is not None:
        cases = _running_case_memory(args.case)
        if cases is None:
            return 2

    async def run() -> bool:
        async with running_core(args, "extract") as core:
            # All files go in at once so every worker is busy; lines come out in the order given.
            tasks = [asyncio.ensure_future(_one(core, intake, name, args.case, args.text, cases))
                     for name in args.files]
            ok = True
            for task in tasks:
                line = await task
                ok = ok and line["status"] == "ok"
                print(json.dumps(line, ensure_ascii=False), flush=True)
            return ok

    try:
        return 0 if asyncio.run(run()) else 1
    finally:
        if cases is not None:
            cases.close()


def _running_case_memory(case_id: str) -> CaseMemory | None:
    """The case memory of the medops running on this data folder, attached; None (and why, on stderr) if none."""
    from medops.core.errors import CaseMemoryError
    from medops.core.memory.case_memory import CaseMemory, check_case_id

    data_dir = locate().data_dir
    try:
        check_case_id(case_id)
        found = CaseMemory.running(data_dir)
    except CaseMemoryError as exc:
        print(f"medops: {exc}", file=sys.stderr)
        return None
    if found is None:
        print("medops: --case adds the text to a case in the case memory of a running medops, and none runs on "
              f"{data_dir}: start the console (make run) and run this again, or leave out --case. "
              "Nothing was extracted.", file=sys.stderr)
        return None
    pid, cases = found
    print(f"medops: case {case_id} lives in the case memory of medops PID {pid}", file=sys.stderr)
    return cases


async def _one(core: CoreCommands, intake: Intake, name: str, case_id: str | None, with_text: bool,
               cases: CaseMemory | None) -> dict[str, Any]:
    from medops.core.documents.case_entry import store_document

    started = time.monotonic()
    found_in = ""
    try:
        path, found_in = await asyncio.to_thread(intake.find, name)
        result = await core.extract(path)
        if cases is not None and case_id is not None:
            await asyncio.get_running_loop().run_in_executor(None, store_document, cases, case_id, result)
    except MedopsError as exc:
        return {"file": name, "status": "error", "pages": None, "characters": None, "method": None,
                "seconds": round(time.monotonic() - started, 3), "error": str(exc)} | _found(found_in)
    except Exception as exc:  # one broken file never stops the others
        print(f"medops: unexpected {type(exc).__name__} on {name}", file=sys.stderr)
        return {"file": name, "status": "error", "pages": None, "characters": None, "method": None,
                "seconds": round(time.monotonic() - started, 3),
                "error": f"unexpected {type(exc).__name__}; please report it"} | _found(found_in)
    line: dict[str, Any] = {"file": name, "status": "ok", "pages": result.pages, "characters": result.characters,
                            "method": result.method, "seconds": round(result.seconds, 3), "error": None}
    line |= _found(found_in)
    if case_id is not None:
        line["case"] = case_id
    if result.warnings:
        line["warnings"] = list(result.warnings)
    if with_text:
        line["text"] = result.text
    return line


def _found(found_in: str) -> dict[str, str]:
    """For a name (not a path): which folder it was taken from, the current one or an intake folder."""
    return {"found_in": found_in} if found_in else {}
