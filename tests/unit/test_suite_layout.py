"""The suite's own layout: a test file takes what it shares from a helper module, never from another test file
(whose tests would then be collected twice, or whose move would break its importers)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def imports_of_test_files(tests: Path) -> list[str]:
    """Every import, in a test file under `tests` (its benchmarks aside), of a module named test_*."""
    found = []
    for path in sorted(tests.rglob("test_*.py")):
        if "bench" in path.relative_to(tests).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                # `from tests.test_x import y`, and `from tests import test_x` or `from . import test_x`
                names = [node.module or "", *(alias.name for alias in node.names)]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            found += [f"{path.relative_to(tests)}:{node.lineno} imports {name}" for name in names
                      if name.rsplit(".", 1)[-1].startswith("test_")]
    return found


def test_no_test_file_imports_another() -> None:
    assert imports_of_test_files(TESTS) == [], "move what is shared into a module in tests/helpers/"
