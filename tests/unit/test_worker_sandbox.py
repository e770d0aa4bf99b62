"""A document worker holds no more than it needs: hostile code in a real worker reads no key, segment or ledger."""

from __future__ import annotations

import asyncio
import ctypes
import os
import secrets
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from medops.core.clock import SystemClock
from medops.core.documents.intake import Intake
from medops.core.documents.pipeline import DocumentPipeline
from medops.core.documents.sandbox import PR_GET_DUMPABLE, landlock_abi
from medops.core.settings.config import MIB, Settings
from tests.helpers.document_files import text_pdf

KEY = "gsk_hostile_test_key_" + "x" * 20
SECRET = b"segment and ledger contents: Jane Roe, MRN 00123456"

# The parent: a core process whose environment holds the key, extracting one document with a worker
# whose "extraction" is an exploit's payload: it tries to read what it should not, and reports.
PARENT = """
import asyncio, sys
from pathlib import Path
from medops.core.clock import SystemClock
from medops.core.documents import pipeline, worker_pool
from medops.core.documents.intake import Intake
from medops.core.settings.config import MIB, Settings

folder = Path(sys.argv[1])
worker_pool.worker_command = lambda: [sys.executable, "-P", "-c", sys.argv[2]]

async def main():
    documents = pipeline.DocumentPipeline(Settings(process_pool_size=1), Intake((folder,), 2 * MIB), SystemClock())
    await documents.start()
    try:
        print((await documents.extract(folder / "a.pdf")).text)
    finally:
        await documents.stop()

asyncio.run(main())
"""

PAYLOAD = """
import os, socket, sys
from medops.core.documents import extraction, worker

def exploit(name, kind, options, on_page=None, data=None):
    found = []
    for label, path in (("environ", f"/proc/{{os.getppid()}}/environ"), ("segment", {segment!r}),
                        ("ledger", {ledger!r})):
        try:
            with open(path, "rb") as stolen:
                content = stolen.read()
            found.append(label + ":read" + (":key" if {key!r}.encode() in content else ""))
        except OSError:
            found.append(label + ":denied")
    try:
        socket.create_connection(("127.0.0.1", {port}), timeout=5).close()
        found.append("network:connected")
    except OSError:
        found.append("network:denied")
    return extraction.Extraction((extraction.PageText(1, " ".join(found), "text", 0.0),))

extraction.extract = exploit
sys.exit(worker.main())
"""


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


@pytest.fixture
def segment() -> Iterator[Path]:
    path = Path("/dev/shm") / f"medops-cases-sandbox-test-{secrets.token_hex(4)}"
    path.write_bytes(SECRET)
    path.chmod(0o600)
    yield path
    path.unlink()


@pytest.mark.skipif(landlock_abi() < 4, reason="needs Landlock with TCP rules (Linux 6.7+)")
def test_hostile_code_in_a_real_worker_cannot_read_the_key_the_segment_or_the_ledger(
        tmp_path: Path, segment: Path, listener: int) -> None:
    folder = tmp_path / "intake"
    folder.mkdir()
    text_pdf(folder / "a.pdf", ["a"])
    ledger = tmp_path / "data" / "ops.duckdb"
    ledger.parent.mkdir(mode=0o700)
    ledger.write_bytes(SECRET)
    payload = PAYLOAD.format(segment=str(segment), ledger=str(ledger), key=KEY, port=listener)
    env = {**os.environ, "GROQ_API_KEY": KEY, "MEDOPS_DATA_DIR": str(ledger.parent)}
    done = subprocess.run([sys.executable, "-c", PARENT, str(folder), textwrap.dedent(payload)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["environ:denied", "segment:denied", "ledger:denied", "network:denied"]


async def test_the_core_is_not_dumpable_once_documents_start(tmp_path: Path) -> None:
    documents = DocumentPipeline(Settings(process_pool_size=1), Intake((tmp_path,), 2 * MIB), SystemClock())
    await documents.start()
    await documents.stop()
    assert ctypes.CDLL(None).prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0


async def test_workers_share_one_memory_bound_and_cannot_gain_privileges(tmp_path: Path) -> None:
    from medops.core.documents.worker import WORKERS_ADDRESS_SPACE

    documents = DocumentPipeline(Settings(process_pool_size=4), Intake((tmp_path,), 2 * MIB), SystemClock())
    await documents.start()
    try:
        documents.warm()
        async with asyncio.timeout(60):
            while documents.ready_workers < 4:  # noqa: ASYNC110  (nothing signals a worker's start)
                await asyncio.sleep(0.05)
        pids = list(documents.worker_pids)
        assert all(no_new_privileges(pid) for pid in pids)
        assert sum(address_space_limit(pid) for pid in pids) <= WORKERS_ADDRESS_SPACE
    finally:
        await documents.stop()


def no_new_privileges(pid: int) -> bool:
    return "NoNewPrivs:\t1" in Path(f"/proc/{pid}/status").read_text()


def address_space_limit(pid: int) -> int:
    line = next(ln for ln in Path(f"/proc/{pid}/limits").read_text().splitlines() if ln.startswith("Max address space"))
    return int(line.split()[3])
