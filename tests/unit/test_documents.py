"""The document pipeline with real worker processes: results, progress, hostile files, crashes, timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from medops.core.clock import FakeClock, SystemClock
from medops.core.documents.extraction import ExtractionError
from medops.core.documents.intake import Intake, IntakeRefused
from medops.core.documents.pipeline import (
    DocumentCancelled,
    DocumentPipeline,
    DocumentsStopped,
    DocumentTimedOut,
    WorkerCrashed,
)
from medops.core.documents.results import DocumentProgress
from medops.core.errors import DocumentError
from medops.core.settings.config import MIB, Settings
from tests.helpers.document_files import (
    CLINICAL_TEXT,
    encrypted_pdf,
    oversized_page_pdf,
    png_bomb,
    scanned_pdf,
    text_pdf,
)
from tests.helpers.waiting import eventually

# Generous bound so a broken pipeline fails the test instead of hanging it.
HANG_GUARD = 60


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "intake"
    path.mkdir()
    return path


@pytest.fixture(autouse=True)
def scratch_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where worker scratch folders are made in these tests, so we can see them go."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


def make_pipeline(folder: Path, clock: SystemClock | FakeClock | None = None, workers: int = 1,
                  timeout: float = 120.0) -> DocumentPipeline:
    settings = Settings(process_pool_size=workers, document_timeout=timeout)
    return DocumentPipeline(settings, Intake((folder,), max_bytes=2 * MIB), clock or SystemClock())


@pytest.fixture
async def pipeline(folder: Path) -> AsyncIterator[DocumentPipeline]:
    documents = make_pipeline(folder)
    await documents.start()
    yield documents
    await documents.stop()


async def test_a_text_pdf_comes_back_with_text_pages_methods_and_hash(pipeline: DocumentPipeline,
                                                                      folder: Path) -> None:
    path = text_pdf(folder / "letter.pdf", ["aspirin 300 mg", "troponin negative"])
    result = await asyncio.wait_for(pipeline.extract(path), HANG_GUARD)
    assert result.text.split("\f") == ["aspirin 300 mg\n", "troponin negative\n"]
    assert (result.pages, result.page_methods, result.method) == (2, ("text", "text"), "text")
    assert result.characters == len(result.text)
    assert len(result.sha256) == 64 and result.name == "letter.pdf"
    assert "aspirin" not in repr(result)


async def test_progress_is_reported_up_to_the_last_page(pipeline: DocumentPipeline, folder: Path) -> None:
    seen: list[DocumentProgress] = []
    await asyncio.wait_for(pipeline.extract(text_pdf(folder / "three.pdf", ["a", "b", "c"]), seen.append),
                           HANG_GUARD)
    states = [(p.state, p.pages_done, p.pages_total) for p in seen]
    assert states[:2] == [("queued", 0, 0), ("running", 0, 0)]
    pages = [done for state, done, total in states if state == "running" and total == 3]
    assert pages == sorted(pages) and pages[-1] == 3  # fast text pages are coalesced, the last always comes
    assert states[-1] == ("done", 3, 3)
    assert len({p.job_id for p in seen}) == 1


async def test_a_scanned_pdf_is_ocrd_in_the_worker_reporting_every_page(pipeline: DocumentPipeline,
                                                                        folder: Path) -> None:
    seen: list[DocumentProgress] = []
    result = await asyncio.wait_for(pipeline.extract(scanned_pdf(folder / "scan.pdf", [CLINICAL_TEXT] * 2),
                                                     seen.append), HANG_GUARD)
    assert result.method == "ocr" and "metformin 500 mg" in result.text
    assert [(p.pages_done, p.method) for p in seen if p.state == "running" and p.pages_total] == [(1, "ocr"),
                                                                                                  (2, "ocr")]


def hostile_empty(folder: Path) -> Path:
    (folder / "empty.pdf").write_bytes(b"")
    return folder / "empty.pdf"


def hostile_random(folder: Path) -> Path:
    (folder / "random.pdf").write_bytes(b"\x07" + os.urandom(8192))
    return folder / "random.pdf"


def hostile_truncated(folder: Path) -> Path:
    whole = text_pdf(folder / "whole.pdf", ["one", "two"]).read_bytes()
    (folder / "truncated.pdf").write_bytes(whole[: len(whole) // 3])
    return folder / "truncated.pdf"


def hostile_not_pdf(folder: Path) -> Path:
    (folder / "minutes.pdf").write_text("Meeting minutes, plain text, named like a PDF.\n" * 20)
    return folder / "minutes.pdf"


def hostile_oversize(folder: Path) -> Path:
    with (folder / "huge.pdf").open("wb") as stream:
        stream.write(b"%PDF-1.7\n")
        stream.truncate(3 * MIB)
    return folder / "huge.pdf"


def hostile_symlink(folder: Path) -> Path:
    outside = text_pdf(folder.parent / "outside.pdf", ["secret"])
    (folder / "link.pdf").symlink_to(outside)
    return folder / "link.pdf"


@pytest.mark.parametrize(("make", "error", "message"), [
    (hostile_empty, IntakeRefused, "is empty"),
    (hostile_random, IntakeRefused, "is not a PDF, PNG, JPEG or TIFF"),
    (hostile_truncated, ExtractionError, "not a readable PDF"),
    (encrypted_pdf, ExtractionError, "password-protected"),
    (hostile_not_pdf, IntakeRefused, "is not a PDF"),
    (hostile_oversize, IntakeRefused, "over the 2 MiB limit"),
    (hostile_symlink, IntakeRefused, "outside the intake folders"),
    (png_bomb, ExtractionError, "decompression bomb"),
], ids=["empty", "random", "truncated", "encrypted", "not-pdf", "oversize", "symlink-out", "image-bomb"])
async def test_a_hostile_file_fails_clearly_and_the_next_document_succeeds(
        pipeline: DocumentPipeline, folder: Path, make: Callable[[Path], Path], error: type[DocumentError],
        message: str) -> None:
    path = make(folder / "bomb.png") if make in (png_bomb, encrypted_pdf) else make(folder)
    with pytest.raises(error, match=message):
        await asyncio.wait_for(pipeline.extract(path), HANG_GUARD)
    good = await asyncio.wait_for(pipeline.extract(text_pdf(folder / "good.pdf", ["still working"])), HANG_GUARD)
    assert good.text.strip() == "still working"
    snapshot = pipeline.snapshot()
    assert (snapshot.failed, snapshot.done) == (1, 1)
    assert snapshot.recent[1].state == "failed" and message in snapshot.recent[1].error


async def test_a_page_larger_than_any_sane_render_is_read_at_a_capped_resolution(pipeline: DocumentPipeline,
                                                                                folder: Path) -> None:
    result = await asyncio.wait_for(pipeline.extract(oversized_page_pdf(folder / "poster.pdf", CLINICAL_TEXT)),
                                    HANG_GUARD)
    assert result.method == "ocr" and "chest pain" in result.text
    assert any("rendered at" in w for w in result.warnings)


async def test_a_worker_killed_mid_job_fails_that_document_and_the_next_succeeds(pipeline: DocumentPipeline,
                                                                                 folder: Path,
                                                                                 scratch_root: Path) -> None:
    slow = scanned_pdf(folder / "slow.pdf", [CLINICAL_TEXT] * 4)
    pages: list[int] = []
    job = asyncio.ensure_future(pipeline.extract(slow, lambda p: pages.append(p.pages_done)))
    assert await eventually(lambda: bool(pages) and pages[-1] >= 1)
    job_id = pipeline.snapshot().recent[0].job_id
    victim = pipeline.worker_pid(job_id)
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    with pytest.raises(WorkerCrashed, match=r"worker process died \(killed by SIGKILL\) on page \d of 4"):
        await asyncio.wait_for(job, HANG_GUARD)
    good = await asyncio.wait_for(pipeline.extract(text_pdf(folder / "next.pdf", ["next one"])), HANG_GUARD)
    assert good.text.strip() == "next one"
    assert victim not in {pipeline.worker_pid(good.job_id)}
    assert pipeline.pool_snapshot().errors == 1
    # The dead worker's scratch folder (Tesseract's page images) is gone; only the new worker's is left.
    assert len(os.listdir(scratch_root)) == 1


async def test_a_document_past_its_time_limit_has_its_worker_killed(folder: Path, clock: FakeClock) -> None:
    documents = make_pipeline(folder, clock, timeout=30.0)
    await documents.start()
    try:
        seen: list[DocumentProgress] = []
        job = asyncio.ensure_future(documents.extract(scanned_pdf(folder / "slow.pdf", [CLINICAL_TEXT] * 4),
                                                      seen.append))
        assert await eventually(lambda: any(p.state == "running" for p in seen))
        victim = documents.worker_pid(seen[0].job_id)
        await clock.advance(29.0)
        assert not job.done()
        await clock.advance(1.0)
        with pytest.raises(DocumentTimedOut, match=r"not done after 30 s.*document_timeout"):
            await asyncio.wait_for(job, HANG_GUARD)
        assert documents.pool_snapshot().timeouts == 1
        good = await asyncio.wait_for(documents.extract(text_pdf(folder / "quick.pdf", ["quick"])), HANG_GUARD)
        assert good.text.strip() == "quick"
        assert victim is not None
        with pytest.raises(ProcessLookupError):
            os.kill(victim, 0)
    finally:
        await documents.stop()


async def test_a_running_job_can_be_cancelled(pipeline: DocumentPipeline, folder: Path) -> None:
    seen: list[DocumentProgress] = []
    job = asyncio.ensure_future(pipeline.extract(scanned_pdf(folder / "slow.pdf", [CLINICAL_TEXT] * 4),
                                                 seen.append))
    assert await eventually(lambda: any(p.state == "running" for p in seen))
    assert pipeline.cancel(seen[0].job_id)
    with pytest.raises(DocumentCancelled):
        await asyncio.wait_for(job, HANG_GUARD)
    assert pipeline.snapshot().cancelled == 1
    assert not pipeline.cancel(seen[0].job_id)


async def test_a_queued_job_can_be_cancelled_before_it_starts(pipeline: DocumentPipeline, folder: Path) -> None:
    first: list[DocumentProgress] = []
    second: list[DocumentProgress] = []
    running = asyncio.ensure_future(pipeline.extract(scanned_pdf(folder / "a.pdf", [CLINICAL_TEXT] * 2),
                                                     first.append))
    assert await eventually(lambda: any(p.state == "running" for p in first))
    queued = asyncio.ensure_future(pipeline.extract(text_pdf(folder / "b.pdf", ["b"]), second.append))
    assert await eventually(lambda: pipeline.pool_snapshot().queued == 1)
    assert second[-1].state == "queued"
    assert pipeline.cancel(second[0].job_id)
    with pytest.raises(DocumentCancelled, match="before it started"):
        await asyncio.wait_for(queued, HANG_GUARD)
    assert (await asyncio.wait_for(running, HANG_GUARD)).method == "ocr"


async def test_the_same_content_twice_reuses_the_first_result(pipeline: DocumentPipeline, folder: Path) -> None:
    first = await pipeline.extract(text_pdf(folder / "a.pdf", ["same"]))
    (folder / "copy.pdf").write_bytes((folder / "a.pdf").read_bytes())
    again = await asyncio.wait_for(pipeline.extract(folder / "copy.pdf"), HANG_GUARD)
    assert again.duplicate_of == first.job_id and again.job_id != first.job_id
    assert again.text == first.text and again.name == "copy.pdf"


async def test_two_workers_take_two_documents_at_once(folder: Path) -> None:
    documents = make_pipeline(folder, workers=2)
    await documents.start()
    try:
        states: dict[str, str] = {}
        jobs = [asyncio.ensure_future(documents.extract(scanned_pdf(folder / f"{n}.pdf", [CLINICAL_TEXT] * 2),
                                                        lambda p: states.__setitem__(p.job_id, p.state)))
                for n in range(2)]
        assert await eventually(lambda: list(states.values()).count("running") == 2)
        assert documents.pool_snapshot().active == 2
        await asyncio.wait_for(asyncio.gather(*jobs), HANG_GUARD)
        assert documents.worker_count == 2
    finally:
        await documents.stop()


async def test_snapshots_count_jobs_and_never_carry_text(pipeline: DocumentPipeline, folder: Path) -> None:
    await pipeline.extract(text_pdf(folder / "a.pdf", ["confidential diagnosis"]))
    with pytest.raises(IntakeRefused):
        await pipeline.extract(folder / "absent.pdf")
    snapshot = pipeline.snapshot()
    assert (snapshot.done, snapshot.failed, snapshot.pages) == (1, 1, 1)
    assert "confidential" not in repr(snapshot)
    pool = pipeline.pool_snapshot()
    assert (pool.name, pool.capacity, pool.completed) == ("process", 1, 1)


async def test_workers_start_only_when_a_document_arrives(folder: Path) -> None:
    documents = make_pipeline(folder, workers=2)
    await documents.start()
    try:
        assert documents.worker_count == 0
        await asyncio.wait_for(documents.extract(text_pdf(folder / "a.pdf", ["a"])), HANG_GUARD)
        assert documents.worker_count == 2
    finally:
        await documents.stop()


async def test_stop_fails_queued_jobs_and_ends_every_worker(folder: Path, scratch_root: Path) -> None:
    documents = make_pipeline(folder)
    await documents.start()
    seen: list[DocumentProgress] = []
    running = asyncio.ensure_future(documents.extract(scanned_pdf(folder / "a.pdf", [CLINICAL_TEXT] * 3),
                                                      seen.append))
    assert await eventually(lambda: any(p.state == "running" for p in seen))
    queued = asyncio.ensure_future(documents.extract(text_pdf(folder / "b.pdf", ["b"])))
    assert await eventually(lambda: documents.pool_snapshot().queued == 1)
    pid = documents.worker_pid(seen[0].job_id)
    await asyncio.wait_for(documents.stop(), HANG_GUARD)
    for job in (running, queued):
        with pytest.raises(DocumentsStopped):
            await job
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(DocumentsStopped):
        await documents.extract(folder / "b.pdf")
    assert os.listdir(scratch_root) == []


async def test_paused_intake_holds_queued_documents_until_resumed(pipeline: DocumentPipeline, folder: Path) -> None:
    pipeline.pause()
    job = asyncio.ensure_future(pipeline.extract(text_pdf(folder / "held.pdf", ["held"])))
    assert await eventually(lambda: pipeline.pool_snapshot().queued == 1)
    assert not job.done() and pipeline.snapshot().running == 0
    pipeline.resume()
    assert (await asyncio.wait_for(job, HANG_GUARD)).text.strip() == "held"


async def test_a_file_rewritten_in_place_after_intake_checked_it_is_refused_not_read(pipeline: DocumentPipeline,
                                                                                     folder: Path) -> None:
    pipeline.pause()
    path = text_pdf(folder / "referral.pdf", ["checked text"])
    job = asyncio.ensure_future(pipeline.extract(path))
    # admitted and hashed, not yet read by a worker
    assert await eventually(lambda: pipeline.pool_snapshot().queued == 1)
    rewritten = text_pdf(folder / "draft.pdf", ["swapped in later"]).read_bytes()
    with path.open("r+b") as same_file:  # same inode, new bytes
        same_file.write(rewritten)
        same_file.truncate()
    pipeline.resume()
    with pytest.raises(ExtractionError, match=r"referral\.pdf: changed after intake checked it") as refused:
        await asyncio.wait_for(job, HANG_GUARD)
    assert refused.value.reason == "changed" and "swapped" not in str(refused.value)
    again = await asyncio.wait_for(pipeline.extract(path), HANG_GUARD)  # sent again, it is read as it is now
    assert again.text.strip() == "swapped in later"


async def test_the_worker_reads_the_file_intake_opened_not_what_the_name_points_at_later(
        pipeline: DocumentPipeline, folder: Path, tmp_path: Path) -> None:
    pipeline.pause()
    path = text_pdf(folder / "referral.pdf", ["checked text"])
    job = asyncio.ensure_future(pipeline.extract(path))
    assert await eventually(lambda: pipeline.pool_snapshot().queued == 1)
    path.unlink()  # the name now leads out of the intake folder
    path.symlink_to(text_pdf(tmp_path / "outside.pdf", ["outside secret"]))
    pipeline.resume()
    result = await asyncio.wait_for(job, HANG_GUARD)
    assert result.text.strip() == "checked text"


async def test_a_caller_that_gives_up_cancels_its_job(pipeline: DocumentPipeline, folder: Path) -> None:
    seen: list[DocumentProgress] = []
    job = asyncio.ensure_future(pipeline.extract(scanned_pdf(folder / "slow.pdf", [CLINICAL_TEXT] * 4),
                                                 seen.append))
    assert await eventually(lambda: any(p.state == "running" for p in seen))
    pid = pipeline.worker_pid(seen[0].job_id)
    job.cancel()
    assert await eventually(lambda: pipeline.snapshot().cancelled == 1)
    assert pipeline.snapshot().running == 0
    assert pid is not None
    assert await eventually(lambda: pipeline.worker_pid(seen[0].job_id) is None)


def test_workers_get_one_omp_thread_a_private_tmpdir_and_no_groq_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from medops.core.documents.worker_pool import worker_env

    monkeypatch.setenv("GROQ_API_KEY", "gsk_secret")
    env = worker_env(Path("/scratch"))
    assert env["OMP_THREAD_LIMIT"] == "1" and env["TMPDIR"] == "/scratch"
    assert "GROQ_API_KEY" not in env


SECRETS = {"MEDOPS_STORE_PASSWORD": "store-secret", "MEDOPS_STORE_URL": "redis://u:store-secret@db:6379/0",
           "GROQ_BASE_URL": "https://user:pass@groq.example", "GROQ_API_KEY": "gsk_secret",
           "MEDOPS_ACL_OPERATOR_PASSWORD": "op-secret", "HTTPS_PROXY": "http://u:proxy-secret@proxy:3128"}


async def test_a_real_workers_environment_holds_no_secret(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    documents = make_pipeline(folder, workers=1)
    await documents.start()
    try:
        seen: list[DocumentProgress] = []
        job = asyncio.ensure_future(documents.extract(scanned_pdf(folder / "slow.pdf", [CLINICAL_TEXT] * 4),
                                                      seen.append))
        assert await eventually(lambda: any(p.state == "running" for p in seen))
        pid = documents.worker_pid(seen[0].job_id)
        assert pid is not None
        # what the worker process was started with
        environ = await asyncio.to_thread(Path(f"/proc/{pid}/environ").read_bytes)
        names = {entry.partition(b"=")[0].decode() for entry in environ.split(b"\0") if entry}
        assert names.isdisjoint(SECRETS)
        assert not any(value.encode() in environ for value in SECRETS.values())
        assert {"PATH", "LC_ALL", "TMPDIR", "OMP_THREAD_LIMIT"} <= names  # what Python and Tesseract need
        job.cancel()
        with contextlib.suppress(asyncio.CancelledError, DocumentError):
            await job
    finally:
        await documents.stop()


async def test_shrinking_the_pool_retires_idle_workers(folder: Path) -> None:
    documents = make_pipeline(folder, workers=2)
    await documents.start()
    try:
        documents.warm()
        assert await eventually(lambda: documents.ready_workers == 2)
        documents.resize(1)
        assert await eventually(lambda: documents.worker_count == 1)
        assert documents.pool_snapshot().capacity == 1
        result = await asyncio.wait_for(documents.extract(text_pdf(folder / "a.pdf", ["after resize"])), HANG_GUARD)
        assert result.text.strip() == "after resize"
        assert documents.worker_count == 1
    finally:
        await documents.stop()


async def test_workers_that_cannot_start_fail_the_document_clearly(folder: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setattr("medops.core.documents.worker_pool.worker_command",
                        lambda: [sys.executable, "-c", "raise SystemExit(3)"])
    documents = make_pipeline(folder)
    await documents.start()
    try:
        for name in ("a.pdf", "b.pdf"):  # and again: every new document tries again
            with pytest.raises(DocumentError, match=r"exited while starting \(exit status 3\), 3 times in a row"):
                await asyncio.wait_for(documents.extract(text_pdf(folder / name, [name])), HANG_GUARD)
    finally:
        await documents.stop()


SUBVERTED_WORKER = """
import json, os, pickle, struct, sys, time
out = os.dup(1)
def send(body):
    os.write(out, struct.pack("!Q", len(body)) + body)
send(b'["ready", 1]')
(length,) = struct.unpack("!Q", sys.stdin.buffer.read(8))
job_id = json.loads(sys.stdin.buffer.read(length))[0]
send({reply})
time.sleep(60)
"""


@pytest.mark.parametrize("reply", [
    "pickle.dumps(['done', job_id, {'pages': []}])",  # the core never unpickles what a worker sends
    "json.dumps(['done', job_id, {'pages': 'not a list'}]).encode()",
    "json.dumps(['page', job_id, 'one', 'two', 'text']).encode()",
], ids=["pickle", "bad-result", "bad-page"])
async def test_a_worker_that_sends_a_malformed_reply_is_stopped_and_its_document_fails(
        folder: Path, monkeypatch: pytest.MonkeyPatch, reply: str) -> None:
    import sys

    script = SUBVERTED_WORKER.replace("{reply}", reply)
    monkeypatch.setattr("medops.core.documents.worker_pool.worker_command", lambda: [sys.executable, "-c", script])
    documents = make_pipeline(folder)
    await documents.start()
    try:
        with pytest.raises(WorkerCrashed, match="malformed reply"):
            await asyncio.wait_for(documents.extract(text_pdf(folder / "a.pdf", ["a"])), HANG_GUARD)
    finally:
        await documents.stop()


def test_the_core_process_never_imports_pymupdf() -> None:
    import subprocess
    import sys

    probe = "import medops.core.resource_core, sys; print(sorted({'pymupdf', 'PIL', 'pytesseract'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


async def test_scratch_folders_of_dead_runs_are_reclaimed_at_start_and_live_ones_kept(
        folder: Path, scratch_root: Path) -> None:
    from medops.core.memory.segment import process_id

    me = os.getpid()
    owner = process_id(me)
    assert owner is not None
    started = owner.started
    dead = scratch_root / f"medops-worker-{me}-{started - 1}-abc123"  # same PID, another start: a dead run's
    live = scratch_root / f"medops-worker-{me}-{started}-def456"
    for scratch in (dead, live):
        scratch.mkdir(mode=0o700)
        (scratch / "tess_x_input.PNG").write_bytes(b"a page image")
    documents = make_pipeline(folder)
    await documents.start()
    await documents.stop()
    assert not dead.exists() and live.exists()
