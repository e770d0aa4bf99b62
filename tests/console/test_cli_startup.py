"""`medops` builds its parser from every command module on each run: that must not import the core."""

from __future__ import annotations

import subprocess
import sys

from medops.console.commands import kb
from medops.core.knowledge.service import MAX_SEARCH_LIMIT


def test_building_the_parser_leaves_the_core_and_its_libraries_unloaded() -> None:
    code = ("import sys, medops.console.cli as cli; cli.build_parser(); "
            "print(' '.join(m for m in ('medops.core.resource_core', 'medops.core.knowledge.service', "
            "'medops.core.groq.local.server', "
            "'medops.core.doctor', 'duckdb', 'groq', 'httpx', 'psutil', 'textual') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == ""


def test_the_search_limit_in_the_help_is_the_one_the_core_enforces() -> None:
    assert kb.MAX_SEARCH_LIMIT == MAX_SEARCH_LIMIT
