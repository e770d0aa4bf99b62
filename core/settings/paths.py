"""Where medops keeps its files: XDG folders, each overridable by environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "medops"


@dataclass(frozen=True)
class Locations:
    """The folders medops reads and writes."""

    config_dir: Path
    data_dir: Path

    @property
    def config_file(self) -> Path:
        """The TOML file read when no `--config` or `MEDOPS_CONFIG` names one."""
        return self.config_dir / "medops.toml"

    @property
    def ops_db(self) -> Path:
        return self.data_dir / "ops.duckdb"

    @property
    def knowledge_db(self) -> Path:
        return self.data_dir / "knowledge.duckdb"

    @property
    def default_intake_dir(self) -> Path:
        return self.data_dir / "intake"

    def ensure(self) -> None:
        """Create the data folder (owner-only: it holds patient-adjacent data)."""
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)


def locate(env: Mapping[str, str] | None = None) -> Locations:
    """The folders in force: `MEDOPS_CONFIG_DIR` / `MEDOPS_DATA_DIR`, else XDG."""
    env = os.environ if env is None else env
    config_dir = env.get("MEDOPS_CONFIG_DIR") or platformdirs.user_config_dir(APP_NAME)
    data_dir = env.get("MEDOPS_DATA_DIR") or platformdirs.user_data_dir(APP_NAME)
    return Locations(Path(config_dir).expanduser(), Path(data_dir).expanduser())
