"""Where medops keeps its files: XDG folders, each overridable by environment."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from medops.core.errors import ConfigError

APP_NAME = "medops"
# Files medops opens in the data folder by name: a link planted in their place is refused, never followed.
DATA_FILES = ("ops.duckdb", "ops.duckdb.wal", "knowledge.duckdb", "knowledge.duckdb.wal")


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

    def ensure(self, *, check_intake: bool = True) -> tuple[str, ...]:
        """Create the data folder (owner-only: it holds patient-adjacent data), or check the one found.

        A folder of another user's, or a link planted in it for a data file (or for `intake`, with
        `check_intake`, when it is the intake in force) is a ConfigError. Modes that let others in are
        set back to owner-only when the folder is ours; what was changed is returned, to be said.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        problems, fixed = inspect_data_folder(self, check_intake=check_intake, repair=True)
        if problems:
            raise ConfigError(problems[0])
        return fixed


def inspect_data_folder(locations: Locations, *, check_intake: bool = True,
                        repair: bool = False) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(problems, fixes): what makes the data folder unsafe, and what is open to others: made owner-only with
    `repair`, else said as what start will do (medops repairs its own folder, so that is no problem)."""
    folder = locations.data_dir
    problems: list[str] = []
    fixed: list[str] = []
    try:
        info = folder.stat()
    except OSError as exc:
        return (f"data folder {folder} cannot be examined ({exc.strerror}); set MEDOPS_DATA_DIR to a folder "
                "of yours",), ()
    me = os.geteuid()
    if info.st_uid != me:
        problems.append(f"data folder {folder} belongs to user id {info.st_uid}, not to this user ({me}): its "
                        "owner could read or replace what medops keeps there. Use a folder of your own "
                        "(MEDOPS_DATA_DIR); one user per data folder")
        return tuple(problems), ()
    if stat.S_IMODE(info.st_mode) & 0o077:
        mode = f"{stat.S_IMODE(info.st_mode):04o}"
        if repair:
            os.chmod(folder, 0o700)
            fixed.append(f"data folder {folder} was mode {mode}, open to others; set to 0700 (owner only)")
        else:
            fixed.append(f"data folder {folder} is mode {mode}, open to others; medops sets it to 0700 at start "
                         "(or run chmod 700 on it)")
    names = DATA_FILES + (("intake",) if check_intake else ())
    for name in names:
        path = folder / name
        if path.is_symlink():
            hint = ", or set intake_dirs to the folder you mean" if name == "intake" else ""
            problems.append(f"{path} is a symbolic link: medops does not follow links in its data folder, "
                            f"whoever planted it. Remove it (medops creates what it needs){hint}")
    loose = []
    for entry in os.scandir(folder):
        entry_info = entry.stat(follow_symlinks=False)
        if entry_info.st_uid == me and not entry.is_symlink() and stat.S_IMODE(entry_info.st_mode) & 0o077:
            loose.append(entry)
    if loose and repair:
        for entry in loose:
            os.chmod(entry.path, 0o700 if entry.is_dir(follow_symlinks=False) else 0o600)
        fixed.append(f"{len(loose)} file(s) in {folder} were open to others; set to owner only")
    elif loose:
        fixed.append(f"{len(loose)} file(s) in {folder} are open to others; medops sets them to owner only "
                     "at start")
    return tuple(problems), tuple(fixed)


def locate(env: Mapping[str, str] | None = None) -> Locations:
    """The folders in force: `MEDOPS_CONFIG_DIR` / `MEDOPS_DATA_DIR`, else XDG."""
    env = os.environ if env is None else env
    config_dir = env.get("MEDOPS_CONFIG_DIR") or platformdirs.user_config_dir(APP_NAME)
    data_dir = env.get("MEDOPS_DATA_DIR") or platformdirs.user_data_dir(APP_NAME)
    return Locations(Path(config_dir).expanduser(), Path(data_dir).expanduser())
