"""`medops.core` must import without the console: CI also runs import-linter."""

from __future__ import annotations

import subprocess
import sys


def test_core_imports_without_textual_or_console() -> None:
    probe = (
        "import sys, pkgutil, importlib, medops.core as core\n"
        "for m in pkgutil.walk_packages(core.__path__, 'medops.core.'): importlib.import_module(m.name)\n"
        "bad = sorted(n for n in sys.modules\n"
        "             if n.split('.')[0] in {'textual', 'plotext'} or n.startswith('medops.console'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
