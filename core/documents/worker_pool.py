"""The document workers: `python -m medops.core.documents.worker` children we start, talk to and kill ourselves.

Each worker runs in its own session, talking over its stdin/stdout pipes (read by
asyncio, so nothing blocks the event loop). Unlike `ProcessPoolExecutor`, one
worker can be killed (with any Tesseract it started) while the others go on.
The pool only keeps processes: what a reply means, and which job a worker runs,
is the pipeline's (pipeline.py), told through a `PoolListener`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Literal, Protocol, TypeVar

import orjson

from medops.core.documents.worker import (
    CHANNEL_VARIABLE,
    FRAME_HEADER,
    MAX_FRAME_BYTES,
    MEMORY_VARIABLE,
    memory_share,
)
from medops.core.memory.segment import OwnerId, process_id

log = logging.getLogger(__name__)

J = TypeVar("J")

KillReason = Literal["timeout", "cancelled", "retired", "stopped", "garbled"]
"""Why we ended a worker: its document timed out or was cancelled, the pool shrank, the core stopped,
or it sent a reply no worker sends."""


def worker_command() -> list[str]:
    """How a worker process is started: this interpreter, the worker module by its full name.

    `-P`: the current folder is not put on the import path, so nothing where
    medops was started can stand in for a module of ours.
    """
    return [sys.executable, "-P", "-m", "medops.core.documents.worker"]


# What a worker may inherit, by name: what Python needs to start and import medops, what Tesseract and MuPDF
# need to find themselves and their data, and the locale. Nothing else: a worker parses hostile files, and the
# core's environment holds secrets (GROQ_API_KEY, MEDOPS_STORE_PASSWORD, store and endpoint URLs that may carry
# credentials) a worker never needs.
WORKER_ENV_NAMES = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TESSDATA_PREFIX", "LD_LIBRARY_PATH",
    "PYTHONPATH", "PYTHONHOME", "PYTHONNOUSERSITE", "PYTHONUSERBASE", "PYTHONDONTWRITEBYTECODE",
    "PYTHONPYCACHEPREFIX", "PYTHONHASHSEED", "PYTHONIOENCODING", "PYTHONUTF8", "PYTHONSAFEPATH",
    "PYTHONFAULTHANDLER", "COVERAGE_PROCESS_START",
})
WORKER_ENV_PREFIXES = ("LC_",)


def worker_env(scratch: Path, channel_fd: int = -1, workers: int = 1) -> dict[str, str]:
    """The environment a worker starts with: the allowed names of ours (`WORKER_ENV_NAMES`), its channel, its
    share of the memory bound, its scratch folder."""
    env = {name: value for name, value in os.environ.items()
           if name in WORKER_ENV_NAMES or name.startswith(WORKER_ENV_PREFIXES)}
    env[CHANNEL_VARIABLE] = str(channel_fd)
    env[MEMORY_VARIABLE] = str(memory_share(workers))
    env["OMP_THREAD_LIMIT"] = "1"
    # Tesseract's page images and outputs are patient data: they go to a folder
    # only we can read, which is removed with the worker, even after a kill.
    env["TMPDIR"] = str(scratch)
    return env


SCRATCH_PREFIX = "medops-worker-"


def _scratch_prefix() -> str:
    """Scratch folders are named for the core that made them (PID and start time), so a later run can
    tell a dead run's folders from a live one's."""
    me = process_id(os.getpid())
    return f"{SCRATCH_PREFIX}{os.getpid()}-{me.started if me else 0}-"


def reclaim_worker_folders(directory: Path | None = None) -> list[str]:
    """Remove this user's worker scratch folders whose core is gone (killed mid-OCR, say); return their names."""
    root = Path(directory or tempfile.gettempdir())
    removed = []
    for path in root.glob(SCRATCH_PREFIX + "*"):
        parts = path.name.removeprefix(SCRATCH_PREFIX).split("-")
        try:
            owner = OwnerId(int(parts[0]), int(parts[1]))
            if path.lstat().st_uid != os.geteuid() or not path.is_dir() or path.is_symlink():
                continue
        except (IndexError, ValueError, FileNotFoundError):
            continue  # not named by a core of ours, or reclaimed by another run first
        if process_id(owner.pid) != owner:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    if removed:
        log.info("reclaimed %d worker scratch folder(s) left by runs that died", len(removed))
    return removed


def describe_exit(returncode: int | None) -> str:
    """A process's end in words: its exit status or the signal that killed it."""
    if returncode is None:
        return "exit status unknown"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


@dataclass(eq=False)
class Worker(Generic[J]):
    """One worker process and the job it runs (the pipeline's)."""

    process: asyncio.subprocess.Process
    scratch: Path  # its private temporary folder, removed when it exits
    channel: socket.socket  # our end of the socket documents' descriptors are passed over
    ready: bool = False
    job: J | None = None
    kill_reason: KillReason | None = None
    reader: asyncio.Task[None] | None = None


class PoolListener(Protocol[J]):
    """What the pool tells its owner: each reply, each exit, each failure to start."""

    def on_message(self, worker: Worker[J], message: object) -> None:
        """One decoded reply; raise ValueError if it is not one a worker sends (the worker is killed)."""
        ...

    def on_exit(self, worker: Worker[J]) -> None:
        """The worker has exited and is out of the pool (its scratch folder removed)."""
        ...

    def on_start_failed(self, why: str) -> None:
        """A worker process could not be started at all."""
        ...


class WorkerPool(Generic[J]):
    """Up to `size` worker processes, started on demand and replaced by their owner's choice."""

    def __init__(self, size: int, listener: PoolListener[J]) -> None:
        self.size = size
        self.running = False
        self.workers: list[Worker[J]] = []
        self._listener = listener
        self._starting = 0
        self._spawns: set[asyncio.Task[None]] = set()

    @property
    def count(self) -> int:
        """Worker processes alive (started or starting)."""
        return len(self.workers) + self._starting

    def grow(self, wanted: int) -> None:
        """Start workers in the background until `wanted` (at most `size`) are alive or starting."""
        while self.running and len(self.workers) + self._starting < min(wanted, self.size):
            self._starting += 1
            task = asyncio.get_running_loop().create_task(self._spawn())
            self._spawns.add(task)
            task.add_done_callback(self._spawns.discard)

    def idle(self) -> Worker[J] | None:
        """A worker ready for a document, if one is."""
        return next((w for w in self.workers if w.ready and w.job is None and w.kill_reason is None), None)

    def send(self, worker: Worker[J], frame: bytes) -> None:
        """Write one frame to the worker's stdin."""
        assert worker.process.stdin is not None
        worker.process.stdin.write(frame)

    def hand_over(self, worker: Worker[J], fd: int) -> bool:
        """Pass the worker an open descriptor over its channel (it never opens an intake path); False if it broke."""
        try:
            socket.send_fds(worker.channel, [b"d"], [fd])
        except OSError:
            worker.kill_reason = worker.kill_reason or "garbled"
            self.kill(worker)
            return False
        return True

    def kill(self, worker: Worker[J]) -> None:
        """Kill the worker and what it started; its exit reaches `on_exit`."""
        if worker.process.returncode is not None:
            return
        try:
            # The worker leads its own session: the group takes a running Tesseract along.
            os.killpg(worker.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError):
                worker.process.kill()

    def close(self, worker: Worker[J]) -> None:
        """Close the worker's stdin: it finishes and leaves."""
        if worker.process.stdin is not None:
            worker.process.stdin.close()

    async def stop(self) -> None:
        """Kill every worker (one being started as soon as it exists) and wait for them to go."""
        self.running = False
        if self._spawns:
            await asyncio.gather(*self._spawns, return_exceptions=True)
        for worker in list(self.workers):
            worker.kill_reason = worker.kill_reason or "stopped"
            self.kill(worker)
        readers = [w.reader for w in self.workers if w.reader is not None]
        if readers:
            await asyncio.gather(*readers, return_exceptions=True)

    async def _spawn(self) -> None:
        scratch = Path(tempfile.mkdtemp(prefix=_scratch_prefix()))  # mode 0700
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            process = await asyncio.create_subprocess_exec(
                *worker_command(), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL, env=worker_env(scratch, theirs.fileno(), self.size),
                start_new_session=True, pass_fds=(theirs.fileno(),))
        except OSError as exc:
            self._starting -= 1
            ours.close()
            shutil.rmtree(scratch, ignore_errors=True)
            self._listener.on_start_failed(f"cannot start a document worker ({exc.strerror})")
            return
        finally:
            theirs.close()
        self._starting -= 1
        worker: Worker[J] = Worker(process, scratch, ours)
        self.workers.append(worker)
        worker.reader = asyncio.get_running_loop().create_task(self._read(worker))
        if not self.running:
            worker.kill_reason = "stopped"
            self.kill(worker)

    async def _read(self, worker: Worker[J]) -> None:
        stdout = worker.process.stdout
        assert stdout is not None
        try:
            while True:
                header = await stdout.readexactly(FRAME_HEADER.size)
                (length,) = FRAME_HEADER.unpack(header)
                if length > MAX_FRAME_BYTES:
                    raise ValueError(f"a {length:,}-byte reply")
                self._listener.on_message(worker, orjson.loads(await stdout.readexactly(length)))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except ValueError:  # orjson.JSONDecodeError too: a worker that talks nonsense is not trusted further
            worker.kill_reason = worker.kill_reason or "garbled"
            self.kill(worker)
        await worker.process.wait()
        worker.channel.close()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(worker.process.pid, signal.SIGKILL)  # a Tesseract it left behind
        await asyncio.to_thread(shutil.rmtree, worker.scratch, True)
        if worker in self.workers:
            self.workers.remove(worker)
        self._listener.on_exit(worker)
