"""A document worker process: reads jobs on stdin, extracts, writes frames back.

Started by the worker pool as `python -m medops.core.documents.worker` in its own
session (so killing its process group also kills a running Tesseract). The
document itself arrives as an open descriptor over a Unix socket (the channel,
`MEDOPS_WORKER_CHANNEL`): a worker never opens an intake path. Frames
are an 8-byte big-endian length and JSON, both ways: JSON, not pickle, because
a worker parses hostile files and the core must not execute whatever a
subverted worker sends back; the core checks each reply's shape too. Replies go
to a private copy of the original stdout, while fd 1 points at stderr, so
nothing a library prints can corrupt them. The worker exits when its stdin closes.
"""

from __future__ import annotations

import os
import resource
import socket
import struct
import sys
import time
from dataclasses import asdict
from typing import Any, BinaryIO

import orjson

from medops.core.documents.extraction import Extraction, ExtractionOptions, PageText

FRAME_HEADER = struct.Struct("!Q")
# A hostile file may try to make MuPDF or Pillow allocate without bound; past its
# share of WORKERS_ADDRESS_SPACE (given by the core) a worker gets MemoryError (or dies)
# instead of starving the machine. The share never goes below the floor a worker needs to run.
WORKERS_ADDRESS_SPACE = 4 * 1024**3
WORKER_ADDRESS_SPACE_FLOOR = 1024**3
# Progress frames at most this often (seconds), and always for the last page.
PROGRESS_INTERVAL = 0.05
# The core reads no larger reply (20 M characters of text fit with room to spare).
MAX_FRAME_BYTES = 256 * 1024**2
# Names the descriptor number of the worker's end of the channel socket.
CHANNEL_VARIABLE = "MEDOPS_WORKER_CHANNEL"
MEMORY_VARIABLE = "MEDOPS_WORKER_MEMORY"  # this worker's share of the address space, in bytes


def memory_share(workers: int) -> int:
    """Each worker's share of `WORKERS_ADDRESS_SPACE` when `workers` run at once."""
    return max(WORKER_ADDRESS_SPACE_FLOOR, WORKERS_ADDRESS_SPACE // max(1, workers))


def encode_frame(message: Any) -> bytes:
    """One message as length + JSON (dataclasses become objects)."""
    body = orjson.dumps(message)
    return FRAME_HEADER.pack(len(body)) + body


def read_frame(stream: BinaryIO) -> Any | None:
    """The next message from a blocking stream, or None at end of input."""
    header = stream.read(FRAME_HEADER.size)
    if len(header) < FRAME_HEADER.size:
        return None
    (length,) = FRAME_HEADER.unpack(header)
    body = stream.read(length)
    if len(body) < length:
        return None
    return orjson.loads(body)


def job_message(job_id: str, name: str, kind: str, options: ExtractionOptions, sha256: str) -> list[Any]:
    """What the core sends a worker to start a job, after the file's descriptor on the channel socket.

    `name` only names the document in messages; `sha256` is what intake hashed, checked again by the worker.
    """
    return [job_id, name, kind, asdict(options), sha256]


def receive_descriptor(channel: socket.socket) -> int | None:
    """The next document's descriptor from the core, or None if the channel closed."""
    _message, fds, _flags, _address = socket.recv_fds(channel, 1, 1)
    return fds[0] if fds else None


def extraction_from_reply(data: Any) -> Extraction:
    """An `Extraction` from a worker's "done" reply; ValueError if it is not shaped like one."""
    if not isinstance(data, dict) or not isinstance(data.get("pages"), list):
        raise ValueError("not an extraction")
    pages = []
    for page in data["pages"]:
        if not (isinstance(page, dict) and isinstance(page.get("number"), int) and isinstance(page.get("text"), str)
                and isinstance(page.get("method"), str) and isinstance(page.get("seconds"), (int, float))):
            raise ValueError("not a page")
        pages.append(PageText(page["number"], page["text"], page["method"], float(page["seconds"])))
    warnings = data.get("warnings")
    if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
        raise ValueError("bad warnings")
    return Extraction(tuple(pages), tuple(warnings), data.get("repaired") is True)


class _Output:
    """Writes frames to the private results descriptor."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, message: Any) -> None:
        data = memoryview(encode_frame(message))
        while data:
            written = os.write(self.fd, data)
            data = data[written:]


def _limit_memory(limit: int) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY or hard > limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def main() -> int:
    """Serve jobs until stdin closes."""
    # Tesseract's OpenMP threads fight each other across workers: one each is 3-4x faster.
    os.environ["OMP_THREAD_LIMIT"] = "1"
    output = _Output(os.dup(1))
    os.dup2(2, 1)
    memory_limit = int(os.environ.pop(MEMORY_VARIABLE, WORKERS_ADDRESS_SPACE))
    _limit_memory(memory_limit)
    import pymupdf
    import pytesseract  # noqa: F401  (imported now so the first job does not pay for it)
    from PIL import Image

    from medops.core.documents import extraction
    from medops.core.documents.sandbox import confine, worker_read_paths

    # MuPDF's own messages could name things inside the document; they go nowhere.
    pymupdf.TOOLS.mupdf_display_errors(False)
    pymupdf.TOOLS.mupdf_display_warnings(False)
    channel = socket.socket(fileno=int(os.environ.pop(CHANNEL_VARIABLE)))
    Image.init()  # every image plugin now: once confined, no module can be loaded from elsewhere
    scratch = os.environ.get("TMPDIR")
    unconfined = confine(worker_read_paths(), [scratch] if scratch else [])
    output.send(("ready", os.getpid(), unconfined or ""))
    jobs = sys.stdin.buffer
    while (job := read_frame(jobs)) is not None:
        job_id, name, kind, options, sha256 = job[0], job[1], job[2], ExtractionOptions(**job[3]), job[4]
        fd = receive_descriptor(channel)
        if fd is None:
            return 0

        last_sent = [0.0]

        def progress(page: PageText, total: int, job_id: str = job_id, last_sent: list[float] = last_sent) -> None:
            # Text pages take well under a millisecond: a frame for each would keep the
            # core's event loop busy with progress alone, so they are coalesced.
            now = time.monotonic()
            if page.number == total or now - last_sent[0] >= PROGRESS_INTERVAL:
                last_sent[0] = now
                output.send(("page", job_id, page.number, total, page.method))

        try:
            try:
                data = extraction.read_descriptor(fd, name, sha256)
            finally:
                os.close(fd)
            result = extraction.extract(name, kind, options, on_page=progress, data=data)
            del data
        except extraction.ExtractionError as exc:
            output.send(("failed", job_id, exc.reason, str(exc)))
        except MemoryError:
            output.send(("failed", job_id, "memory", "the document needs more memory than a worker may use "
                         f"({memory_limit / 1024**3:.1f} GiB); it may be hostile, or split it"))
        except Exception as exc:  # any library failure must become a clear job failure
            # Only the exception type: its message might quote the document.
            output.send(("failed", job_id, "internal", f"extraction failed unexpectedly ({type(exc).__name__}); "
                         "the file may be malformed; ask for a new copy"))
        else:
            output.send(("done", job_id, result))
        pymupdf.TOOLS.mupdf_warnings(reset=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
