"""What every subcommand needs: the settings in force and a running core."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from core.config import LoadedSettings, load_settings
from core.paths import locate
from core.resource_core import ResourceCore


def load(args: argparse.Namespace) -> LoadedSettings:
    """Settings from defaults, `--config` (or MEDOPS_CONFIG), and the environment."""
    config = Path(args.config) if getattr(args, "config", None) else None
    return load_settings(locate(), config)


@asynccontextmanager
async def running_core(args: argparse.Namespace) -> AsyncIterator[ResourceCore]:
    """A started core, stopped however the block ends."""
    resource_core = ResourceCore(load(args).settings, locate())
    await resource_core.start()
    try:
        yield resource_core
    finally:
        await resource_core.stop()
