"""Document intake: which files may be read, what they are, and who they duplicate.

Only files inside the configured intake folders are accepted (symlinks are
resolved first, so a link cannot point out of them). Size is checked before a
byte is read, the type comes from magic bytes rather than the name, and a
streamed SHA-256 identifies duplicates.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import stat
from concurrent.futures import Executor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import aiofiles

from medops.core.errors import DocumentError
from medops.core.settings.config import MIB, Settings
from medops.core.settings.paths import Locations

# Hashing reads at least this much at a time: aiofiles hands each read to a
# thread, so small chunks would mean thousands of thread hops per document.
HASH_CHUNK_BYTES = 1 * MIB
# PDF readers accept a header a little way into the file; so do we.
PDF_HEADER_WINDOW = 1024
COMPLETION_LIMIT = 50


class IntakeRefused(DocumentError):
    """A file was refused before extraction: outside the intake folders, too big, empty or of an unknown type."""


class DocumentKind(StrEnum):
    """The document types medops extracts text from, told apart by magic bytes."""

    PDF = "pdf"
    PNG = "png"
    JPEG = "jpeg"
    TIFF = "tiff"

    @property
    def is_image(self) -> bool:
        return self is not DocumentKind.PDF


@dataclass(frozen=True)
class IntakeFile:
    """A file that passed intake: where it really is, its type, size and hash."""

    path: Path  # resolved, inside an intake folder
    name: str  # as the user gave it, for messages and the console
    kind: DocumentKind
    size: int
    sha256: str


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

    def _resolved_folders(self) -> list[Path]:
        return [folder.resolve() for folder in self.folders if folder.is_dir()]

    def check(self, path: str | Path, *, relative_to_intake: bool = False) -> Path:
        """Resolve `path` and refuse it unless it is a regular file inside an intake folder, within size.

        A relative path is taken from the working directory (the CLI), or with
        `relative_to_intake` from the intake folders, the first that has it (the console's form).
        """
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
        if info.st_size == 0:
            raise IntakeRefused(f"{name}: is empty (0 bytes); the upload or copy may have failed, send it again")
        if info.st_size > self.max_bytes:
            raise IntakeRefused(f"{name}: is {info.st_size / MIB:.1f} MiB, over the {self.max_bytes / MIB:g} MiB "
                                "limit; split it, or raise max_file_size_mb")
        return resolved

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

    def _in_a_folder(self, relative: Path) -> Path:
        """`relative` under the first intake folder that has it (the first folder when none has)."""
        tries = [folder / relative for folder in self.folders]
        return next((t for t in tries if os.path.lexists(t)), tries[0] if tries else relative)

    async def admit(self, path: str | Path) -> IntakeFile:
        """Check `path`, read its type from magic bytes and hash it; all file I/O off the event loop."""
        resolved = await self.check_async(path)
        name = Path(path).name or str(path)
        sha = hashlib.sha256()
        kind: DocumentKind | None = None
        size = 0
        try:
            async with aiofiles.open(resolved, "rb", executor=self.io) as stream:
                while chunk := await stream.read(HASH_CHUNK_BYTES):
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
        return IntakeFile(path=resolved, name=name, kind=kind, size=size, sha256=sha.hexdigest())

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
