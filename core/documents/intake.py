"""Document intake: which files may be read, what they are, and who they duplicate.

Only files inside the configured intake folders are accepted (symlinks are
resolved first, so a link cannot point out of them). Size is checked before a
byte is read, the type comes from magic bytes rather than the name, and a
streamed SHA-256 identifies duplicates.

The file is opened once, walking down from its intake folder without following
any link and without blocking (a pipe swapped in cannot hang us); what was
opened is checked by `fstat` against what was checked by path (device and
inode), and that same descriptor is hashed and handed to the worker, so a link
swapped in after the check cannot make us read another file.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import hashlib
import os
import stat
from concurrent.futures import Executor
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from medops.core.errors import DocumentError
from medops.core.settings.config import MIB, Settings
from medops.core.settings.paths import Locations

# Hashing reads at least this much at a time: each read is handed to a
# thread, so small chunks would mean thousands of thread hops per document.
HASH_CHUNK_BYTES = 1 * MIB
# PDF readers accept a header a little way into the file; so do we.
PDF_HEADER_WINDOW = 1024
COMPLETION_LIMIT = 50
# No link followed at the last step, no blocking open on a FIFO, not inherited by children.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class IntakeRefused(DocumentError):
    """A file was refused before extraction: outside the intake folders, too big, empty or of an unknown type."""


class DocumentKind(StrEnum):
    """The document types medops extracts text from, told apart by magic bytes."""

    PDF = "pdf"
    PNG = "png"
    JPEG = "jpeg"
    TIFF = "tiff"


class OpenedFile:
    """The descriptor intake checked and hashed; extraction reads these bytes, never the path again."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    @property
    def fd(self) -> int:
        """The open descriptor (-1 once closed)."""
        return self._fd

    def close(self) -> None:
        """Close it; safe to call twice (the number is never closed again once reused)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


@dataclass(frozen=True)
class IntakeFile:
    """A file that passed intake: where it really is, its type, size and hash, and the descriptor read."""

    path: Path  # resolved, inside an intake folder
    name: str  # as the user gave it, for messages and the console
    kind: DocumentKind
    size: int
    sha256: str
    opened: OpenedFile | None = field(default=None, repr=False, compare=False)

    def close(self) -> None:
        """Close the descriptor intake opened, once it is no longer needed."""
        if self.opened is not None:
            self.opened.close()


def sniff_kind(head: bytes) -> DocumentKind | None:
    """The document type from a file's first bytes, or None if it is none we read."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return DocumentKind.PNG
    if head.startswith(b"\xff\xd8\xff"):
        return DocumentKind.JPEG
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return DocumentKind.TIFF
    if b"%PDF-" in head[:PDF_HEADER_WINDOW]:
        return DocumentKind.PDF
    return None


def resolve_intake_dirs(settings: Settings, locations: Locations) -> tuple[Path, ...]:
    """The intake folders in force: `intake_dirs` if set, else `<data>/intake`."""
    if settings.intake_dirs:
        return tuple(Path(d).expanduser() for d in settings.intake_dirs)
    return (locations.default_intake_dir,)


def missing_folder_note(folder: Path) -> str:
    """What a configured intake folder that is not there means, and what to do."""
    return (f"intake folder {folder} does not exist (or is not a folder): no document can be read from it; "
            "create it, or fix intake_dirs (MEDOPS_INTAKE_DIRS)")


class Intake:
    """Accepts files from the intake folders only, and checks them before extraction."""

    def __init__(self, folders: tuple[Path, ...], max_bytes: int, io: Executor | None = None) -> None:
        self.folders = folders
        self.max_bytes = max_bytes
        # The core's I/O threads, so intake work shows in their figures (None: asyncio's default pool).
        self.io = io

    @classmethod
    def from_settings(cls, settings: Settings, locations: Locations, io: Executor | None = None) -> Intake:
        """An intake using the configured folders and `max_file_size_mb`, its file I/O on `io`."""
        return cls(resolve_intake_dirs(settings, locations), int(settings.max_file_size_mb * MIB), io)

    def ensure_default(self, locations: Locations) -> None:
        """Create the default intake folder (owner-only) when it is the one in force."""
        if self.folders == (locations.default_intake_dir,):
            locations.ensure()
            locations.default_intake_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    def missing_folders(self) -> tuple[str, ...]:
        """For each intake folder in force that is not there (or not a folder): what that means and what to do."""
        return tuple(missing_folder_note(folder) for folder in self.folders if not folder.is_dir())

    def _resolved_folders(self) -> list[Path]:
        return [folder.resolve() for folder in self.folders if folder.is_dir()]

    def check(self, path: str | Path, *, relative_to_intake: bool = False) -> Path:
        """Resolve `path` and refuse it unless it is a regular file inside an intake folder, within size.

        A relative path is taken from the working directory (the CLI), or with
        `relative_to_intake` from the intake folders, the first that has it (the console's form).
        """
        return self._check(path, relative_to_intake=relative_to_intake)[0]

    def _check(self, path: str | Path, *, relative_to_intake: bool = False) -> tuple[Path, os.stat_result]:
        listing = ":".join(str(f) for f in self.folders) or "none configured"
        if not str(path).strip():
            raise IntakeRefused(f"no path given; type the path of a document inside an intake folder ({listing})")
        given = Path(str(path).strip() if isinstance(path, str) else path).expanduser()
        if relative_to_intake and not given.is_absolute():
            given = self._in_a_folder(given)
        name = given.name or str(given)
        try:
            resolved = given.resolve(strict=True)
        except FileNotFoundError:
            where = f" in the intake folders ({listing})" if relative_to_intake else ""
            raise IntakeRefused(f"{name}: no such file{where}; check the path") from None
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
            raise IntakeRefused(f"{name}: cannot be resolved ({exc.__class__.__name__}); check the path") from None
        if not any(resolved.is_relative_to(folder) for folder in self._resolved_folders()):
            raise IntakeRefused(f"{name}: lies outside the intake folders ({listing}); copy it into one, "
                                "or add its folder to intake_dirs (MEDOPS_INTAKE_DIRS)")
        try:
            info = resolved.stat()
        except OSError as exc:
            raise IntakeRefused(f"{name}: cannot be read ({exc.strerror}); check its permissions") from None
        if stat.S_ISDIR(info.st_mode):
            raise IntakeRefused(f"{name}: is a folder; give a document file inside it")
        if not stat.S_ISREG(info.st_mode):
            raise IntakeRefused(f"{name}: is not a regular file (a pipe or device); give a document file")
        self._check_size(name, info.st_size)
        return resolved, info

    def _check_size(self, name: str, size: int) -> None:
        if size == 0:
            raise IntakeRefused(f"{name}: is empty (0 bytes); the upload or copy may have failed, send it again")
        if size > self.max_bytes:
            raise IntakeRefused(f"{name}: is {size / MIB:.1f} MiB, over the {self.max_bytes / MIB:g} MiB "
                                "limit; split it, or raise max_file_size_mb")

    async def check_async(self, path: str | Path, *, relative_to_intake: bool = False) -> Path:
        """`check` on the I/O threads: resolving and stat-ing a path can block on a slow disk."""
        outcome = await asyncio.get_running_loop().run_in_executor(
            self.io, functools.partial(self._check_or_refusal, path, relative_to_intake))
        if isinstance(outcome, IntakeRefused):
            raise outcome
        return outcome

    def _check_or_refusal(self, path: str | Path, relative_to_intake: bool) -> Path | IntakeRefused:
        # A refused path is the user's input, not a failure of the I/O pool: it comes back as a value,
        # so the pool's error count (the on-call engineer reads it) counts only real failures.
        try:
            return self.check(path, relative_to_intake=relative_to_intake)
        except IntakeRefused as refused:
            return refused

    def find(self, name: str, cwd: Path | None = None) -> tuple[Path, str]:
        """A relative name from the command line, in the current folder or an intake folder; says which.

        The current folder's file wins when it lies inside an intake folder, else the first intake folder
        that has it, else the current folder's (which `check` then refuses as outside). Blocks: stats files.
        """
        given = Path(name.strip()).expanduser()
        if given.is_absolute():
            return given, ""
        here = (cwd or Path.cwd()) / given
        inside = self._resolved_folders()
        found = [(path, where) for path, where in [(here, f"current folder ({here.parent})"),
                                                   *((f / given, f"intake folder ({f})") for f in self.folders)]
                 if path.exists()]
        for path, where in found:
            if any(path.resolve().is_relative_to(folder) for folder in inside):
                return path, where
        if found:
            return found[0]
        listing = ":".join(str(f) for f in self.folders) or "none configured"
        missing = self.missing_folders()
        hint = "; ".join(missing) if missing else "check the name"
        raise IntakeRefused(f"{given.name or name}: no such file in the current folder ({here.parent}) or the "
                            f"intake folders ({listing}); {hint}")

    def _in_a_folder(self, relative: Path) -> Path:
        """`relative` under the first intake folder that has it (the first folder when none has)."""
        tries = [folder / relative for folder in self.folders]
        return next((t for t in tries if os.path.lexists(t)), tries[0] if tries else relative)

    async def admit(self, path: str | Path) -> IntakeFile:
        """Check `path`, open it once, read its type from magic bytes and hash it; all file I/O off the loop.

        The result holds the open descriptor (`IntakeFile.opened`); the caller closes it.
        """
        loop = asyncio.get_running_loop()
        resolved, checked = await loop.run_in_executor(self.io, self._check, path)
        name = Path(path).name or str(path)
        fd = await loop.run_in_executor(self.io, self._open_checked, resolved, checked, name)
        opened = OpenedFile(fd)
        try:
            size, kind, sha256 = await self._hash(fd, name)
        except BaseException:
            opened.close()
            raise
        return IntakeFile(path=resolved, name=name, kind=kind, size=size, sha256=sha256, opened=opened)

    def _open_checked(self, resolved: Path, checked: os.stat_result, name: str) -> int:
        """Open `resolved` from its intake folder down, following no link, and confirm it is what was checked."""
        folder = next(f for f in self._resolved_folders() if resolved.is_relative_to(f))
        parts = resolved.relative_to(folder).parts
        try:
            at = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                for part in parts[:-1]:
                    below = os.open(part, _DIR_FLAGS, dir_fd=at)
                    os.close(at)
                    at = below
                fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=at)
            finally:
                os.close(at)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
                raise IntakeRefused(f"{name}: was replaced (by a link, or moved away) while it was being checked; "
                                    "nothing was read. Send it again once it stays put") from None
            raise IntakeRefused(f"{name}: cannot be read ({exc.strerror}); check its permissions") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise IntakeRefused(f"{name}: is not a regular file (a pipe or device was put in its place); "
                                    "give a document file")
            if (info.st_dev, info.st_ino) != (checked.st_dev, checked.st_ino):
                raise IntakeRefused(f"{name}: was replaced by another file while it was being checked; nothing "
                                    "was read. Send it again once it stays put")
            self._check_size(name, info.st_size)
        except BaseException:
            os.close(fd)
            raise
        return fd

    async def _hash(self, fd: int, name: str) -> tuple[int, DocumentKind, str]:
        """Size, type and SHA-256 of what `fd` holds, read in chunks on the I/O threads."""
        loop = asyncio.get_running_loop()
        sha = hashlib.sha256()
        kind: DocumentKind | None = None
        size = 0
        try:
            while chunk := await loop.run_in_executor(self.io, os.pread, fd, HASH_CHUNK_BYTES, size):
                if kind is None:
                    kind = sniff_kind(chunk)
                    if kind is None:
                        raise IntakeRefused(f"{name}: is not a PDF, PNG, JPEG or TIFF (by its content, whatever "
                                            "its name says); convert it to one of those")
                size += len(chunk)
                if size > self.max_bytes:  # it grew after the check
                    raise IntakeRefused(f"{name}: grew past the {self.max_bytes / MIB:g} MiB limit while being "
                                        "read; wait until it is fully written")
                sha.update(chunk)
        except OSError as exc:
            raise IntakeRefused(f"{name}: cannot be read ({exc.strerror}); check its permissions") from None
        if kind is None:
            raise IntakeRefused(f"{name}: is empty (0 bytes); the upload or copy may have failed, send it again")
        return size, kind, sha.hexdigest()

    def complete(self, prefix: str, limit: int = COMPLETION_LIMIT) -> list[str]:
        """Paths under the intake folders that start with `prefix` (folders end in '/'); for path completion.

        A relative prefix is completed inside the intake folders ("" lists their tops), an absolute one as typed.
        """
        expanded = os.path.expanduser(prefix)
        typed_dir, stem = os.path.split(expanded)
        if os.path.isabs(expanded):
            parents = [Path(typed_dir or "/")]
        else:
            parents = [folder / typed_dir for folder in self.folders]
        roots = self._resolved_folders()
        found: list[str] = []
        for parent in parents:
            try:
                real_parent = parent.resolve()
                entries = sorted(os.scandir(parent), key=lambda e: e.name)
            except (OSError, RuntimeError):
                continue
            if not any(real_parent.is_relative_to(root) or root.is_relative_to(real_parent) for root in roots):
                continue
            for entry in entries:
                if not entry.name.startswith(stem) or (entry.name.startswith(".") and not stem.startswith(".")):
                    continue
                is_dir = entry.is_dir()
                real = Path(parent, entry.name).resolve()
                # Offer what lies inside a root, and folders on the way down to one.
                if not any(real.is_relative_to(root) or (is_dir and root.is_relative_to(real)) for root in roots):
                    continue
                shown = os.path.join(typed_dir, entry.name) + ("/" if is_dir else "")
                if shown not in found:
                    found.append(shown)
                if len(found) >= limit:
                    return found
        return found

    async def complete_async(self, prefix: str, limit: int = COMPLETION_LIMIT) -> list[str]:
        """`complete` on the I/O threads, so a slow folder never stalls the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.io, self.complete, prefix, limit)
