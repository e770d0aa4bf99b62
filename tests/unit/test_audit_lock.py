"""`scripts/audit-lock` (run by make lint/test): a known advisory fails, an unreachable registry only warns."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "audit-lock"


def fake_pip_audit(tmp_path: Path, report: object | None, exit_code: int = 0) -> Path:
    """A stand-in for pip-audit that writes `report` where -o says (None: writes nothing) and exits."""
    fake = tmp_path / "pip-audit"
    body = "" if report is None else f"open(sys.argv[sys.argv.index('-o') + 1], 'w').write({json.dumps(report)!r})\n"
    fake.write_text(f"#!{sys.executable}\nimport sys\n{body}sys.stderr.write('ConnectionError: no route\\n')\n"
                    f"sys.exit({exit_code})\n")
    fake.chmod(0o755)
    return fake


def audit(auditor: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), str(auditor), "requirements.lock"], capture_output=True,
                          text=True, timeout=60)


def test_a_known_advisory_fails_naming_the_package_and_the_fix(tmp_path: Path) -> None:
    report = {"dependencies": [
        {"name": "aiohttp", "version": "3.14.5", "vulns": [{"id": "GHSA-xxxx", "fix_versions": ["3.14.6"]}]},
        {"name": "duckdb", "version": "1.4.0", "vulns": []}]}
    done = audit(fake_pip_audit(tmp_path, report, exit_code=1))
    assert done.returncode == 1
    assert "aiohttp 3.14.5 has advisory GHSA-xxxx (fixed in: 3.14.6)" in done.stderr


def test_packages_the_registry_could_not_check_are_a_warning(tmp_path: Path) -> None:
    report = {"dependencies": [{"name": "aiohttp", "skip_reason": "Dependency not found on PyPI"}]}
    done = audit(fake_pip_audit(tmp_path, report))
    assert done.returncode == 0
    assert "warning: 1 of 1 packages in requirements.lock could not be audited" in done.stderr


@pytest.mark.parametrize("auditor", ["missing", "crashing"])
def test_an_audit_that_cannot_run_warns_and_passes(tmp_path: Path, auditor: str) -> None:
    path = tmp_path / "absent" if auditor == "missing" else fake_pip_audit(tmp_path, None, exit_code=1)
    done = audit(path)
    assert done.returncode == 0 and "warning:" in done.stderr and "requirements.lock was not audited" in done.stderr
