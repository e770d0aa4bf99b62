"""`medops` builds its parser from every command module on each run: that must not import the core."""

from __future__ import annotations

import subprocess
import sys

from console.commands import kb
from core.knowledge import MAX_SEARCH_LIMIT


def test_building_the_parser_leaves_the_core_and_its_libraries_unloaded() -> None:
    code = ("import sys, console.cli; console.cli.build_parser(); "
            "print(' '.join(m for m in ('core.resource_core', 'core.knowledge', 'core.local_endpoint', "
            "'core.doctor', 'duckdb', 'groq', 'httpx', 'psutil', 'textual') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == ""


def test_the_search_limit_in_the_help_is_the_one_the_core_enforces() -> None:
    assert kb.MAX_SEARCH_LIMIT == MAX_SEARCH_LIMIT
