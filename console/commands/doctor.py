"""`medops doctor`: what this machine has and lacks, one line per check."""

from __future__ import annotations

import argparse
from typing import Any

from medops.core.settings.paths import locate


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("doctor", help="check Python, packages, Tesseract, folders and the Groq key")
    parser.set_defaults(handler=doctor)


def doctor(args: argparse.Namespace) -> int:
    from medops.core.doctor import run_checks  # imported when run: every `medops` run builds the parser

    failed = False
    for check in run_checks(locate()):
        mark = "ok  " if check.ok else ("FAIL" if check.essential else "warn")
        print(f"{mark}  {check.name:<16} {check.detail}")
        failed |= check.essential and not check.ok
    return 1 if failed else 0
