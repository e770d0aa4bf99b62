"""The segment file under /dev/shm: create it owner-only, open it, reclaim ones left by dead runs.

A plain file on tmpfs reserved with `posix_fallocate` (not `multiprocessing.shared_memory`):
a full tmpfs fails here, at creation, instead of with SIGBUS on first touch, and
no resource tracker unlinks it when some unrelated process exits. The name
carries the owner's PID and process start time, so a later run can tell a
segment whose owner died (or whose PID was reused) from one still in use.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import mmap
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from medops.core.memory.errors import SegmentUnavailable

log = logging.getLogger(__name__)

SHM_DIR = Path("/dev/shm")
PREFIX = "medops-cases-"


@dataclass(frozen=True)
class OwnerId:
    """A process as the kernel knows it: PID plus start time (ticks since boot)."""

    pid: int
    started: int


def process_id(pid: int) -> OwnerId | None:
    """The process with this PID, or None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces or parentheses: split after the last ")".
    fields = stat[stat.rindex(")") + 2:].split()
    return OwnerId(pid, int(fields[19]))


def owner_of(name: str) -> OwnerId | None:
    """The process a segment's file name says created it (None if the name does not parse)."""
    parts = name.removeprefix(PREFIX).split("-")
    try:
        return OwnerId(int(parts[0]), int(parts[1]))
    except (IndexError, ValueError):
        return None


def owner_alive(name: str) -> bool:
    """Whether the process named in a segment's file name still runs (unparseable: assume it does)."""
    owner = owner_of(name)
    return owner is None or process_id(owner.pid) == owner


def folder_tag(folder: Path) -> str:
    """A short name for a data folder, put in its core's segment name so tools find that core's cases."""
    return hashlib.sha256(str(folder.expanduser().resolve()).encode()).hexdigest()[:12]


def running_segments(tag: str, directory: Path = SHM_DIR) -> list[tuple[OwnerId, Path]]:
    """This user's segments with `tag` whose owner still runs (not this process), the longest-running first."""
    found = []
    for path in directory.glob(f"{PREFIX}*-{tag}-*"):
        owner = owner_of(path.name)
        try:
            if owner is None or owner.pid == os.getpid() or path.lstat().st_uid != os.geteuid():
                continue
        except FileNotFoundError:
            continue
        if process_id(owner.pid) == owner:
            found.append((owner, path))
    return sorted(found, key=lambda found: found[0].started)


def reclaim_abandoned(directory: Path = SHM_DIR) -> list[str]:
    """Remove this user's segments whose owner process is gone; return their names."""
    removed = []
    uid = os.geteuid()
    for path in directory.glob(PREFIX + "*"):
        try:
            if path.lstat().st_uid != uid or owner_alive(path.name):
                continue
            path.unlink()
        except FileNotFoundError:
            continue  # another run reclaimed it first
        removed.append(path.name)
    if removed:
        log.info("reclaimed %d case-memory segment(s) left by runs that died", len(removed))
    return removed


@dataclass
class MappedSegment:
    """An open segment: its path, file descriptor (also the writer lock) and mapping."""

    path: Path
    fd: int
    mapping: mmap.mmap

    def close(self) -> None:
        """Unmap and close (the file stays for other processes)."""
        with contextlib.suppress(BufferError):  # a caller still holds a view: the GC unmaps later
            self.mapping.close()
        os.close(self.fd)


def create_segment(size: int, directory: Path = SHM_DIR, tag: str = "untagged") -> MappedSegment:
    """A new owner-only segment of `size` bytes, all zero, named for this process (and `tag`, its data folder's)."""
    me = process_id(os.getpid())
    started = me.started if me else 0
    path = directory / f"{PREFIX}{os.getpid()}-{started}-{tag}-{secrets.token_hex(4)}"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise SegmentUnavailable(f"cannot create case memory {path} ({exc.strerror}); "
                                 f"check that {directory} exists and is writable") from None
    try:
        os.fchmod(fd, 0o600)
        os.posix_fallocate(fd, 0, size)
        mapping = mmap.mmap(fd, size)
    except OSError as exc:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise SegmentUnavailable(f"cannot reserve {size:,} bytes of shared memory in {directory} "
                                 f"({exc.strerror}); free space there or lower case_memory_mb") from None
    return MappedSegment(path, fd, mapping)


def open_segment(path: Path) -> MappedSegment:
    """Map an existing segment; refuse one that is not ours or is readable by others."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise SegmentUnavailable(f"cannot open case memory {path} ({exc.strerror}); "
                                 "is the core that created it still running?") from None
    info = os.fstat(fd)
    if info.st_uid != os.geteuid() or info.st_mode & 0o077:
        os.close(fd)
        raise SegmentUnavailable(f"case memory {path} is not private to this user "
                                 f"(mode {info.st_mode & 0o777:o}); refusing to use it")
    try:
        mapping = mmap.mmap(fd, info.st_size)
    except (OSError, ValueError) as exc:
        os.close(fd)
        raise SegmentUnavailable(f"cannot map case memory {path} ({exc})") from None
    return MappedSegment(path, fd, mapping)
