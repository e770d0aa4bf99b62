"""`medops status --json`: start the core, wait for the monitor's first sample, print one snapshot, stop."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from medops.console.commands.common import running_core


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("status", help="start the core and print one snapshot (after the first resource "
                                                  "sample: one monitor_interval)")
    parser.add_argument("--json", action="store_true", required=True, help="print the snapshot as JSON")
    parser.set_defaults(handler=status)


def status(args: argparse.Namespace) -> int:
    from medops.core.snapshot import snapshot_to_dict

    async def take() -> dict[str, Any]:
        async with running_core(args) as resource_core:
            # Before the monitor's first sample every system figure is zero; its CPU share needs an interval.
            return snapshot_to_dict(await resource_core.wait_for_first_sample())

    print(json.dumps(asyncio.run(take()), indent=2, sort_keys=True))
    return 0
