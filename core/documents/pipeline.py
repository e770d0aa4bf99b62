"""The document pipeline: intake, a queue of jobs, the worker pool that runs them, results.

Jobs run in the worker processes of worker_pool.py. When a document passes
`document_timeout` or is cancelled, or when a worker dies on a hostile file,
only that document fails; the worker is replaced and the other jobs go on.
Workers start on first use, so the core starts fast. A document with the
same content (SHA-256) as a recent one gets its text again without a worker.

Document text is patient data: it is never logged, and job listings carry
names, sizes, page counts and hashes only.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
from collections import OrderedDict, deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from medops.core.clock import Clock
from medops.core.documents.extraction import (
    Extraction,
    ExtractionError,
    ExtractionOptions,
)
from medops.core.documents.intake import Intake, IntakeFile, IntakeRefused
from medops.core.documents.results import DocumentProgress, DocumentResult, ProgressCallback
from medops.core.documents.sandbox import make_undumpable
from medops.core.documents.worker import encode_frame, extraction_from_reply, job_message
from medops.core.documents.worker_pool import Worker, WorkerPool, describe_exit, reclaim_worker_folders, worker_command
from medops.core.errors import DocumentError
from medops.core.settings.config import Settings
from medops.core.snapshot import DocumentJob, DocumentsSnapshot, JobState, PoolSnapshot
from medops.core.waits import RecentWaits

log = logging.getLogger("medops.documents")

RECENT_JOBS = 20
RESULT_CACHE = 32  # finished results kept to answer duplicates (same SHA-256) at once
WAIT_SAMPLES = 200
# A worker that dies before it is ready this many times in a row means the
# workers cannot start at all (broken install): fail the queue instead of looping.
MAX_START_FAILURES = 3


class WorkerCrashed(DocumentError):
    """The worker process extracting a document died."""


class DocumentTimedOut(DocumentError):
    """A document took longer than `document_timeout`; its worker was killed."""


class DocumentCancelled(DocumentError):
    """A document job was cancelled before it finished."""


class DocumentsStopped(DocumentError):
    """The document pipeline is not running (not started, or stopping)."""


_CODES: dict[type[DocumentError], str] = {WorkerCrashed: "worker_crashed", DocumentTimedOut: "timeout",
                                          DocumentCancelled: "cancelled", DocumentsStopped: "stopped"}
CODE_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,31}")


def error_code(error: DocumentError) -> str:
    """A failure as a short code, never its message (which may name the file): what the fleet is shown."""
    reason = getattr(error, "reason", "")
    if isinstance(reason, str) and CODE_PATTERN.fullmatch(reason):
        return reason
    for kind, code in _CODES.items():
        if isinstance(error, kind):
            return code
    return "refused" if isinstance(error, IntakeRefused) else "error"




@dataclass(eq=False)
class _Job:
    id: str
    name: str
    on_progress: ProgressCallback | None
    submitted_at: float
    future: asyncio.Future[DocumentResult]
    file: IntakeFile | None = None
    state: JobState = "queued"
    started_at: float | None = None
    pages_done: int = 0
    pages_total: int = 0
    error: str = ""
    error_code: str = ""
    watchdog: asyncio.Task[None] | None = None


class DocumentPipeline:
    """Takes documents in, extracts them in `process_pool_size` worker processes, reports progress."""

    def __init__(self, settings: Settings, intake: Intake, clock: Clock,
                 options: ExtractionOptions | None = None) -> None:
        self.intake = intake
        self.clock = clock
        self._pool: WorkerPool[_Job] = WorkerPool(settings.process_pool_size, self)
        self.timeout = settings.document_timeout
        self.options = options or ExtractionOptions(ocr_language=settings.ocr_language,
                                                    ocr_page_timeout=settings.ocr_page_timeout)
        self._paused = False
        self._ids = itertools.count(1)
        self._queue: deque[_Job] = deque()
        self._jobs: dict[str, _Job] = {}
        self._start_failures = 0
        self._recent: deque[DocumentJob] = deque(maxlen=RECENT_JOBS)
        self._results: OrderedDict[str, DocumentResult] = OrderedDict()
        self._in_flight: dict[str, asyncio.Future[DocumentResult]] = {}
        self._waits = RecentWaits(WAIT_SAMPLES)
        self._done = self._failed = self._cancelled = self._pages = 0
        self._timeouts = 0
        self._unconfined_said = False

    # lifecycle

    async def start(self) -> None:
        """Accept documents (workers start when the first one arrives, or on `warm()`); reclaim dead runs' scratch."""
        await asyncio.to_thread(reclaim_worker_folders)
        # Workers are this process's children: they must not read its environment (the Groq key) or memory.
        if not make_undumpable():
            log.warning("could not make the core non-dumpable; a document worker could read its environment")
        self._pool.running = True

    @property
    def size(self) -> int:
        """Worker processes the pool keeps (process_pool_size)."""
        return self._pool.size

    def warm(self) -> None:
        """Start the workers now, in the background, so the first document does not wait for them."""
        if self._pool.running:
            self._pool.grow(self.size)

    async def stop(self) -> None:
        """Fail what is queued, kill every worker and wait for them to go."""
        self._pool.running = False
        for job in list(self._jobs.values()):
            if job.state == "queued":
                self._finish_failed(job, DocumentsStopped("the core is stopping; the document was not processed"),
                                    "failed")
        self._queue.clear()
        await self._pool.stop()

    def apply(self, settings: Settings) -> None:
        """Take live changes: the pool size, and the timeout and OCR options the next document gets."""
        self.timeout = settings.document_timeout
        self.options = replace(self.options, ocr_language=settings.ocr_language,
                               ocr_page_timeout=settings.ocr_page_timeout)
        if settings.process_pool_size != self.size:
            self.resize(settings.process_pool_size)

    def resize(self, size: int) -> None:
        """Change the number of workers; extra idle workers leave at once, busy ones after their document."""
        self._pool.size = max(1, size)
        for worker in [w for w in self._pool.workers if w.job is None and w.ready][self.size:]:
            worker.kill_reason = "retired"
            self._pool.close(worker)
        self._dispatch()

    # commands

    async def extract(self, path: str | Path, on_progress: ProgressCallback | None = None) -> DocumentResult:
        """Take `path` in, extract its text in a worker and return the result; raises a `DocumentError`."""
        if not self._pool.running:
            raise DocumentsStopped("the document pipeline is not running; start the core first")
        loop = asyncio.get_running_loop()
        job = _Job(id=f"doc-{next(self._ids):04d}", name=Path(path).name or str(path), on_progress=on_progress,
                   submitted_at=self.clock.monotonic(), future=loop.create_future())
        self._jobs[job.id] = job
        self._progress(job)
        try:
            return await self._run(job, path)
        except asyncio.CancelledError:  # the caller gave up: so does the job
            self.cancel(job.id)
            raise

    async def _run(self, job: _Job, path: str | Path) -> DocumentResult:
        try:
            job.file = await self.intake.admit(path)
        except DocumentError as exc:
            self._finish_failed(job, exc, "failed")
            raise
        if job.future.done():  # cancelled, or the core stopped, while it was being read
            job.file.close()
            return await job.future
        log.info("document %s admitted: %s, %d bytes, sha256 %s", job.id, job.file.kind.value, job.file.size,
                 job.file.sha256[:12])
        duplicate = await self._duplicate(job)
        if duplicate is not None:
            return duplicate
        if job.future.done():
            return await job.future
        if self._start_failures >= MAX_START_FAILURES and not self._pool.workers:
            self._start_failures = 0  # a new document is a new try at starting workers
        self._in_flight[job.file.sha256] = job.future
        self._queue.append(job)
        self._dispatch()
        return await asyncio.shield(job.future)

    def cancel(self, job_id: str) -> bool:
        """Cancel a job: dropped if waiting, its worker killed if running; False if no such live job."""
        job = self._jobs.get(job_id)
        if job is None or job.future.done():
            return False
        running_on = next((w for w in self._pool.workers if w.job is job), None)
        if running_on is not None:
            running_on.kill_reason = "cancelled"
            self._pool.kill(running_on)  # the job fails when the worker's exit is seen
        else:
            # Queued, or still in intake (hashing, or waiting for an identical document).
            self._finish_failed(job, DocumentCancelled(f"{job.name}: cancelled before it started"), "cancelled")
        return True

    def pause(self) -> None:
        """Hold queued documents; those running finish."""
        self._paused = True

    def resume(self) -> None:
        """Start queued documents again."""
        self._paused = False
        self._dispatch()

    def worker_pid(self, job_id: str) -> int | None:
        """The process id of the worker running a job, for diagnosis."""
        for worker in self._pool.workers:
            if worker.job is not None and worker.job.id == job_id:
                return worker.process.pid
        return None

    # snapshots

    def snapshot(self) -> DocumentsSnapshot:
        """Counts and the most recent jobs, newest first; never any text."""
        live = [self._job_view(j) for j in self._jobs.values()]
        recent = tuple(reversed(live)) + tuple(reversed(self._recent))
        return DocumentsSnapshot(queued=sum(1 for j in self._jobs.values() if j.state == "queued"),
                                 running=sum(1 for j in self._jobs.values() if j.state == "running"),
                                 done=self._done, failed=self._failed, pages=self._pages,
                                 recent=recent[:RECENT_JOBS], cancelled=self._cancelled)

    def pool_snapshot(self) -> PoolSnapshot:
        """The worker pool as a PoolSnapshot named "process"."""
        p50, p95 = self._waits.percentiles()
        return PoolSnapshot(name="process", capacity=self.size,
                            active=sum(1 for w in self._pool.workers if w.job is not None),
                            queued=len(self._queue), completed=self._done, errors=self._failed,
                            timeouts=self._timeouts,
                            wait_p50=p50, wait_p95=p95)

    @property
    def ready_workers(self) -> int:
        """Worker processes started and ready for a document."""
        return sum(1 for w in self._pool.workers if w.ready and w.kill_reason is None)

    @property
    def worker_pids(self) -> tuple[int, ...]:
        """The process ids of the workers alive, for diagnosis."""
        return tuple(w.process.pid for w in self._pool.workers)

    @property
    def worker_count(self) -> int:
        """Worker processes alive (started or starting)."""
        return self._pool.count

    # internals: duplicates

    async def _duplicate(self, job: _Job) -> DocumentResult | None:
        assert job.file is not None
        sha = job.file.sha256
        earlier = self._in_flight.get(sha)
        if earlier is not None:
            with contextlib.suppress(DocumentError):
                await asyncio.shield(earlier)
        original = self._results.get(sha)
        if original is None:
            return None
        self._results.move_to_end(sha)
        now = self.clock.monotonic()
        result = replace(original, job_id=job.id, name=job.name, queued_seconds=0.0, extract_seconds=0.0,
                         seconds=now - job.submitted_at, duplicate_of=original.job_id,
                         warnings=(*original.warnings,
                                   f"same content (SHA-256) as {original.job_id}; its text was reused"))
        job.pages_done = job.pages_total = result.pages
        self._finish_done(job, result)
        return result

    # internals: what the worker pool tells us (`PoolListener`)

    def on_message(self, worker: Worker[_Job], message: object) -> None:
        """Act on one reply (ready, a page done, the text, a failure); ValueError if no worker sends it."""
        if not isinstance(message, list) or not message:
            raise ValueError("not a reply")
        kind = message[0]
        if kind == "ready":
            if len(message) > 2 and message[2] and not self._unconfined_said:
                self._unconfined_said = True
                log.warning("document workers run unconfined: %s", str(message[2])[:200])
            worker.ready = True
            self._start_failures = 0
            self._dispatch()
            return
        job = worker.job
        if job is None or message[1] != job.id:
            return
        if kind == "page" and len(message) == 5:
            _, _, number, total, method = message
            if not (isinstance(number, int) and isinstance(total, int)):
                raise ValueError("bad page reply")
            job.pages_done, job.pages_total = number, total
            self._progress(job, str(method))
        elif kind == "done" and len(message) == 3:
            extraction = extraction_from_reply(message[2])
            self._release(worker)
            self._finish_done(job, self._result(job, extraction))
        elif kind == "failed" and len(message) == 4:
            _, _, reason, text = message
            self._release(worker)
            self._finish_failed(job, ExtractionError(str(reason), str(text)), "failed")
        else:
            raise ValueError("unknown reply")

    def on_exit(self, worker: Worker[_Job]) -> None:
        """A worker has gone: fail the document it was running, saying why, and keep the pool at size."""
        reason = worker.kill_reason
        job = worker.job
        worker.job = None
        if job is not None and job.watchdog is not None:
            job.watchdog.cancel()
        if job is not None and not job.future.done():
            exit_text = describe_exit(worker.process.returncode)
            page = min(job.pages_done + 1, job.pages_total) if job.pages_total else job.pages_done + 1
            where = f" on page {page}" + (f" of {job.pages_total}" if job.pages_total else "")
            if reason == "timeout":
                self._timeouts += 1
                self._finish_failed(job, DocumentTimedOut(
                    f"{job.name}: not done after {self.timeout:g} s (document_timeout){where}; its worker was "
                    "stopped. Split the document, or raise document_timeout"), "failed")
            elif reason == "cancelled":
                self._finish_failed(job, DocumentCancelled(f"{job.name}: cancelled{where}"), "cancelled")
            elif reason == "garbled":
                self._finish_failed(job, WorkerCrashed(
                    f"{job.name}: its worker sent a malformed reply{where} and was stopped; the file may be "
                    "hostile. Other documents are unaffected; ask for a new copy"), "failed")
            elif reason == "stopped":
                self._finish_failed(job, DocumentsStopped(f"{job.name}: the core stopped{where}"), "failed")
            else:
                self._finish_failed(job, WorkerCrashed(
                    f"{job.name}: the worker process died ({exit_text}){where}; the file may be malformed or "
                    "hostile. Other documents are unaffected; ask for a new copy"), "failed")
            log.warning("document worker %d for %s ended: %s", worker.process.pid, job.id, exit_text)
        elif not worker.ready and reason is None:
            exit_text = describe_exit(worker.process.returncode)
            self.on_start_failed(f"a document worker exited while starting ({exit_text})")
        if self._pool.running and (self._queue or reason not in ("retired",)):
            self._dispatch(replace_dead=True)

    def on_start_failed(self, why: str) -> None:
        """Workers cannot start: after MAX_START_FAILURES in a row, fail the queue instead of looping."""
        self._start_failures += 1
        log.error("%s", why)
        if self._start_failures >= MAX_START_FAILURES:
            error = DocumentError(f"{why}, {self._start_failures} times in a row; run "
                                  f"`{' '.join(worker_command())}` to see why, or `medops doctor`")
            while self._queue:
                self._finish_failed(self._queue.popleft(), error, "failed")

    def _dispatch(self, replace_dead: bool = False) -> None:
        if not self._pool.running:
            return
        while self._queue and not self._paused:
            worker = self._pool.idle()
            if worker is None:
                break
            self._assign(worker, self._queue.popleft())
        # The pool fills up on first use and is then kept at size, so a dead worker is replaced.
        if (self._queue or replace_dead) and self._start_failures < MAX_START_FAILURES:
            self._pool.grow(self.size)

    def _assign(self, worker: Worker[_Job], job: _Job) -> None:
        assert job.file is not None
        worker.job = job
        job.state = "running"
        job.started_at = self.clock.monotonic()
        self._waits.add(job.started_at - job.submitted_at)
        assert job.file.opened is not None
        # The descriptor intake hashed, not the path: a file swapped in since is never read.
        self._pool.hand_over(worker, job.file.opened.fd)
        job.file.close()  # the worker holds its own copy now
        self._pool.send(worker, encode_frame(job_message(job.id, job.file.name, job.file.kind.value,
                                                         self.options, job.file.sha256)))
        job.watchdog = asyncio.get_running_loop().create_task(self._watch(worker, job))
        self._progress(job)

    async def _watch(self, worker: Worker[_Job], job: _Job) -> None:
        await self.clock.sleep(self.timeout)
        if worker.job is job:
            worker.kill_reason = "timeout"
            self._pool.kill(worker)

    def _release(self, worker: Worker[_Job]) -> None:
        job = worker.job
        worker.job = None
        if job is not None and job.watchdog is not None:
            job.watchdog.cancel()
        if len([w for w in self._pool.workers if w.kill_reason is None]) > self.size:
            worker.kill_reason = "retired"
            self._pool.close(worker)
        else:
            self._dispatch()

    # internals: results

    def _result(self, job: _Job, extraction: Extraction) -> DocumentResult:
        assert job.file is not None and job.started_at is not None
        now = self.clock.monotonic()
        pages = extraction.pages
        return DocumentResult(
            job_id=job.id, name=job.name, sha256=job.file.sha256, kind=job.file.kind.value, size=job.file.size,
            text="\f".join(p.text for p in pages), pages=len(pages),
            page_methods=tuple(p.method for p in pages), warnings=extraction.warnings,
            repaired=extraction.repaired, queued_seconds=job.started_at - job.submitted_at,
            extract_seconds=now - job.started_at, seconds=now - job.submitted_at)

    def _finish_done(self, job: _Job, result: DocumentResult) -> None:
        job.state = "done"
        job.pages_done = job.pages_total = result.pages
        self._done += 1
        self._pages += result.pages
        self._results[result.sha256] = result
        self._results.move_to_end(result.sha256)
        while len(self._results) > RESULT_CACHE:
            self._results.popitem(last=False)
        self._end(job)
        log.info("document %s done: %d pages (%s), %d characters", job.id, result.pages, result.method,
                 result.characters)
        job.future.set_result(result)

    def _finish_failed(self, job: _Job, error: DocumentError, state: Literal["failed", "cancelled"]) -> None:
        if job.future.done():
            return
        job.state = state
        job.error = str(error)
        job.error_code = error_code(error)
        if state == "cancelled":
            self._cancelled += 1
        else:
            self._failed += 1
        if job in self._queue:
            self._queue.remove(job)
        self._end(job)
        log.info("document %s %s: %s", job.id, state, type(error).__name__)
        job.future.set_exception(error)
        job.future.exception()  # retrieved here: a cancelled caller may never await it

    def _end(self, job: _Job) -> None:
        if job.watchdog is not None:
            job.watchdog.cancel()
        if job.file is not None:
            job.file.close()
        if job.file is not None and self._in_flight.get(job.file.sha256) is job.future:
            del self._in_flight[job.file.sha256]
        self._jobs.pop(job.id, None)
        self._recent.append(self._job_view(job))
        self._progress(job)

    def _job_view(self, job: _Job) -> DocumentJob:
        return DocumentJob(job_id=job.id, name=job.name, state=job.state, pages_done=job.pages_done,
                           pages_total=job.pages_total, error=job.error, error_code=job.error_code,
                           size_bytes=job.file.size if job.file is not None else 0)

    def _progress(self, job: _Job, method: str = "") -> None:
        if job.on_progress is None:
            return
        try:
            job.on_progress(DocumentProgress(job.id, job.name, job.state, job.pages_done, job.pages_total, method))
        except Exception:  # a broken progress display must not break the pipeline
            log.exception("progress callback failed for %s", job.id)
