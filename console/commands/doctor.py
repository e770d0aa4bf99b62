"""`medops doctor`: what this machine has and lacks, one line per check."""

from __future__ import annotations

import argparse
from typing import Any

from medops.console.commands.common import load, reads_only
from medops.core.settings.paths import locate


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("doctor", help="check Python, packages, Tesseract, folders and the Groq key")
    parser.set_defaults(handler=doctor, changes=reads_only)


def doctor(args: argparse.Namespace) -> int:
    from medops.core.doctor import run_checks  # imported when run: every `medops` run builds the parser
    from medops.core.errors import ConfigError

    failed = False
    intake_dirs: tuple[str, ...] = ()
    try:
        settings = load(args).settings
        store_url, intake_dirs = settings.store_url, settings.intake_dirs
    except ConfigError as exc:  # doctor still checks the rest; the settings' fault is its own line
        print(f"FAIL  {'settings':<16} {exc}")
        failed, store_url = True, ""
    for check in run_checks(locate(), store_url=store_url, intake_dirs=intake_dirs):
        mark = "ok  " if check.ok else ("FAIL" if check.essential else "warn")
        print(f"{mark}  {check.name:<16} {check.detail}")
        failed |= check.essential and not check.ok
    return 1 if failed else 0
