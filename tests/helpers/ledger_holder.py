"""Another process holding a DuckDB file (the ledger), as a second medops would."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

HOLDER = textwrap.dedent("""
    import sys, duckdb
    con = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "ro")
    print("holding", flush=True)
    sys.stdin.read()
""")


@contextlib.contextmanager
def held(path: Path, mode: str) -> Iterator[subprocess.Popen[str]]:
    """Another process holding a DuckDB file, read-write ("rw") or read-only ("ro"), for the block."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), mode], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "holding"
        yield process
    finally:
        if process.stdin:
            process.stdin.close()
        process.wait(timeout=30)

