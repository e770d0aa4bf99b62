"""Document pipeline benchmarks: text and OCR pages/s with 1 and 2 workers, event-loop lag, import cost.

Goals (issue 7): text and OCR throughput with 2 workers at least 1.7x one
worker; event-loop lag p99 under 10 ms while documents are extracted, beside
the reference approach (PyMuPDF in a thread via run_in_executor). Each figure
is printed beside its peer measured in the same run.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pymupdf

from medops.core.clock import SystemClock
from medops.core.documents.extraction import ExtractionOptions, extract
from medops.core.documents.intake import Intake
from medops.core.documents.pipeline import DocumentPipeline
from medops.core.settings.config import MIB, Settings
from medops.core.watch.loop_lag import LoopLagProbe
from tests.helpers.document_files import CLINICAL_TEXT, scanned_pdf, text_pdf

TEXT_DOCS, TEXT_PAGES = 8, 150
OCR_DOCS, OCR_PAGES = 4, 2
LAG_INTERVAL = 0.005  # probe every 5 ms: a 10 ms stall cannot hide between probes
T = TypeVar("T")


def _load() -> str:
    """The machine's load: on 2 shared cores, a second worker only helps when nobody else is busy."""
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def _clock() -> Callable[[], float]:
    return SystemClock().monotonic


def _text_corpus(folder: Path) -> list[Path]:
    page = (CLINICAL_TEXT + "\n") * 6
    return [text_pdf(folder / f"text-{n}.pdf", [f"document {n} page {p}\n{page}" for p in range(TEXT_PAGES)],
                     fontsize=7) for n in range(TEXT_DOCS)]


def _ocr_corpus(folder: Path) -> list[Path]:
    return [scanned_pdf(folder / f"scan-{n}.pdf", [CLINICAL_TEXT] * OCR_PAGES) for n in range(OCR_DOCS)]


async def _with_pipeline(folder: Path, workers: int, work: Callable[[DocumentPipeline], Awaitable[T]]) -> T:
    settings = Settings(process_pool_size=workers, document_timeout=600)
    pipeline = DocumentPipeline(settings, Intake((folder,), 100 * MIB), SystemClock())
    await pipeline.start()
    try:
        pipeline.warm()  # worker start-up is not what we measure here
        async with asyncio.timeout(60):
            while pipeline.ready_workers < workers:  # noqa: ASYNC110  (no event to wait on)
                await asyncio.sleep(0.01)
        return await work(pipeline)
    finally:
        await pipeline.stop()


async def _pages_per_second(folder: Path, workers: int, docs: list[Path], rounds: int) -> float:
    """Best of `rounds`: the 2 cores are shared, and the best round is the least disturbed one."""
    async def run(pipeline: DocumentPipeline) -> float:
        now = _clock()
        best = 0.0
        for n in range(rounds):
            # A fresh copy each round, or the duplicate check would answer from memory.
            copies = [doc.with_name(f"r{n}-{doc.name}") for doc in docs]
            for doc, copy in zip(docs, copies, strict=True):
                copy.write_bytes(doc.read_bytes() + f"% round {n}\n".encode())
            started = now()
            results = await asyncio.gather(*(pipeline.extract(copy) for copy in copies))
            best = max(best, sum(r.pages for r in results) / (now() - started))
        return best

    return await _with_pipeline(folder, workers, run)


def _plain_pymupdf_pages_per_second(docs: list[Path], rounds: int) -> float:
    now = _clock()
    best = 0.0
    for _ in range(rounds):
        started = now()
        pages = 0
        for path in docs:
            with pymupdf.open(path) as doc:
                for page in doc:
                    page.get_text("text")
                    pages += 1
        best = max(best, pages / (now() - started))
    return best


def test_text_pages_per_second_with_one_and_two_workers(tmp_path: Path) -> None:
    docs = _text_corpus(tmp_path)
    plain = _plain_pymupdf_pages_per_second(docs, rounds=3)
    one = asyncio.run(_pages_per_second(tmp_path, 1, docs, rounds=3))
    two = asyncio.run(_pages_per_second(tmp_path, 2, docs, rounds=3))
    print(f"\ntext layer, best of 3, {TEXT_DOCS} docs x {TEXT_PAGES} pages, {_load()}: plain PyMuPDF in one "
          f"process {plain:,.0f} pages/s | pipeline 1 worker {one:,.0f} pages/s | 2 workers {two:,.0f} pages/s "
          f"= {two / one:.2f}x one worker (goal >= 1.7x), {two / plain:.2f}x plain")


def test_ocr_pages_per_second_with_one_and_two_workers(tmp_path: Path) -> None:
    docs = _ocr_corpus(tmp_path)
    one = asyncio.run(_pages_per_second(tmp_path, 1, docs, rounds=3))
    two = asyncio.run(_pages_per_second(tmp_path, 2, docs, rounds=3))
    print(f"\nOCR at 300 dpi, best of 3, {OCR_DOCS} docs x {OCR_PAGES} pages, {_load()}: 1 worker {one:.2f} pages/s | "
          f"2 workers {two:.2f} pages/s = {two / one:.2f}x (goal >= 1.7x)")


async def _lag_during(job: Callable[[], Awaitable[object]]) -> tuple[float, float, float]:
    probe = LoopLagProbe(SystemClock(), interval=LAG_INTERVAL, window=3_600)
    probe.start()
    try:
        await job()
    finally:
        stats = probe.stats()
        await probe.stop()
    return stats.p50_ms, stats.p99_ms, stats.max_ms


async def _pipeline_lag(folder: Path, docs: list[Path]) -> tuple[float, float, float]:
    return await _with_pipeline(folder, 2, lambda pipeline: _lag_during(
        lambda: asyncio.gather(*(pipeline.extract(d) for d in docs))))


async def _thread_lag(docs: list[Path]) -> tuple[float, float, float]:
    loop = asyncio.get_running_loop()
    options = ExtractionOptions()
    with ThreadPoolExecutor(2) as threads:
        return await _lag_during(lambda: asyncio.gather(
            *(loop.run_in_executor(threads, extract, str(d), "pdf", options) for d in docs)))


def test_event_loop_lag_during_extraction_beside_pymupdf_in_threads(tmp_path: Path) -> None:
    docs = _text_corpus(tmp_path)[:4] + _ocr_corpus(tmp_path)[:2]
    ours = asyncio.run(_pipeline_lag(tmp_path, docs))
    threads = asyncio.run(_thread_lag(docs))
    print(f"\nevent-loop lag while extracting 4 text + 2 scanned PDFs (probe every {LAG_INTERVAL * 1000:g} ms): "
          f"worker processes p50 {ours[0]:.2f} / p99 {ours[1]:.2f} / max {ours[2]:.2f} ms (goal p99 < 10 ms) | "
          f"PyMuPDF in threads (run_in_executor) p50 {threads[0]:.2f} / p99 {threads[1]:.2f} / "
          f"max {threads[2]:.2f} ms")


def _import_seconds(module: str, runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                             capture_output=True, text=True, check=True)
        last = [line for line in out.stderr.splitlines() if line.rstrip().endswith(f"| {module}")][-1]
        times.append(int(last.split("|")[1]) / 1e6)  # cumulative microseconds
    return statistics.median(times)


def test_import_cost_of_pymupdf_lite_beside_the_worker_imports() -> None:
    lite = _import_seconds("pymupdf")
    pillow = _import_seconds("PIL.Image")
    tesseract = _import_seconds("pytesseract")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import medops.core.documents.worker"], check=True)
    bare = time.perf_counter() - started
    print(f"\nimport (median of 7, -X importtime): pymupdf-lite {lite * 1000:.0f} ms | PIL.Image "
          f"{pillow * 1000:.0f} ms | pytesseract {tesseract * 1000:.0f} ms | a bare interpreter importing "
          f"medops.core.documents.worker {bare * 1000:.0f} ms wall (the core process never imports pymupdf)")
