"""What every subcommand needs: the settings in force and a running core.

Core modules are imported inside the functions: `medops` builds its parser from every
command module on each run, and the core takes most of a second to import.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from medops.core.settings.paths import locate

if TYPE_CHECKING:
    from medops.core.contract import CoreCommands
    from medops.core.settings.config import LoadedSettings


# What a command line would spend or change, in words ("sending a prompt (it spends quota)"), for
# `medops --read-only`, which refuses it (cli.py); "" when it only reads. Every command sets one as `changes`:
# a command that sets none is refused under --read-only, so a new command is never let through by mistake.
Changes = Callable[[argparse.Namespace], str]


def reads_only(args: argparse.Namespace) -> str:
    """The `changes` of a command that spends no quota and changes nothing."""
    return ""


def load(args: argparse.Namespace) -> LoadedSettings:
    """Settings from defaults, `--config` (or MEDOPS_CONFIG), and the environment."""
    from medops.core.settings.config import load_settings

    config = Path(args.config) if getattr(args, "config", None) else None
    return load_settings(locate(), config)


@asynccontextmanager
async def running_core(args: argparse.Namespace, role: str) -> AsyncIterator[CoreCommands]:
    """A started core, stopped however the block ends; `role` names the command in the fleet (`medops fleet`)."""
    from medops.core.resource_core import ResourceCore

    resource_core = ResourceCore(load(args).settings, locate(), role=role)
    await resource_core.start()
    try:
        yield resource_core
    finally:
        await resource_core.stop()
