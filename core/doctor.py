"""`medops doctor`: one check per line, so on-call can see what a machine lacks."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medops.core.settings.paths import Locations, inspect_data_folder
from medops.core.settings.redact import redact_url

# Distribution name -> why medops needs it. All are essential.
DEPENDENCIES = {
    "textual": "the console",
    "textual-plotext": "the console's graphs",
    "groq": "the Groq API client",
    "duckdb": "knowledge base and ledger",
    "psutil": "the resource monitor",
    "aiofiles": "document intake",
    "pymupdf-lite": "PDF text",
    "pytesseract": "OCR",
    "cachetools": "the query cache",
    "platformdirs": "data and config folders",
    "redis": "the fleet's quota store client",
}
MIN_SHM_FREE = 64 * 1024 * 1024


@dataclass(frozen=True)
class Check:
    """The outcome of one check; a failed essential one makes doctor exit non-zero."""

    name: str
    ok: bool
    detail: str
    essential: bool = True


def run_checks(locations: Locations, env: Mapping[str, str] | None = None,
               shm: Path = Path("/dev/shm"), store_url: str = "", intake_dirs: tuple[str, ...] = ()) -> list[Check]:
    """Every check, in the order a person would fix them; `intake_dirs` as the settings have them."""
    env = os.environ if env is None else env
    checks = [_python()]
    checks += [_dependency(dist, why) for dist, why in DEPENDENCIES.items()]
    checks += [_tesseract(), _data_dir(locations), _intake_folders(intake_dirs), _shared_memory(shm),
               _groq_key(env), _sandbox(), _quota_store(store_url, env.get("MEDOPS_STORE_PASSWORD"))]
    return checks


def _sandbox() -> Check:
    from medops.core.documents.sandbox import landlock_abi

    abi = landlock_abi()
    if abi < 1:
        return Check("worker sandbox", False, "the kernel has no Landlock (Linux 5.13+, lsm=landlock): document "
                     "workers run without a filesystem sandbox", essential=False)
    network = "no TCP" if abi >= 4 else "TCP not restricted (Landlock ABI 4, Linux 6.7+, needed)"
    return Check("worker sandbox", True, f"Landlock ABI {abi}: document workers read only libraries, write only "
                 f"their scratch folder, {network}", essential=False)


def _python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    return Check("python", sys.version_info >= (3, 11), f"{version} (3.11 or newer needed)")


def _dependency(dist: str, why: str) -> Check:
    try:
        return Check(dist, True, f"{importlib.metadata.version(dist)} ({why})")
    except importlib.metadata.PackageNotFoundError:
        return Check(dist, False, f"not installed ({why}); run `make run` or `pip install -e .`")


def _tesseract() -> Check:
    binary = shutil.which("tesseract")
    if binary is None:
        return Check("tesseract", False, "binary not found: scanned pages cannot be OCR'd; "
                     "install with `apt-get install tesseract-ocr tesseract-ocr-eng`", essential=False)
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("tesseract", False, f"{binary} does not run ({exc})", essential=False)
    first = (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else "unknown version"
    return Check("tesseract", True, f"{first} at {binary}", essential=False)


def _data_dir(locations: Locations) -> Check:
    # Looked at as found, before anything is created or fixed: doctor reports, start repairs.
    fixes: tuple[str, ...] = ()
    if locations.data_dir.exists():
        problems, fixes = inspect_data_folder(locations)
        if problems:
            return Check("data folder", False, "; ".join(problems))
    try:
        locations.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.NamedTemporaryFile(dir=locations.data_dir):
            pass
    except OSError as exc:
        return Check("data folder", False, f"{locations.data_dir} is not writable ({exc.strerror}); "
                     "set MEDOPS_DATA_DIR to a writable folder")
    if fixes:  # what medops repairs itself at start is no failure, but worth knowing
        return Check("data folder", False, f"{locations.data_dir} is writable and yours; " + "; ".join(fixes),
                     essential=False)
    return Check("data folder", True, f"{locations.data_dir} is writable, yours and owner-only (0700), "
                 "no links in it")


def _intake_folders(intake_dirs: tuple[str, ...]) -> Check:
    """The configured intake folders exist (the default one, under the data folder, is created at start)."""
    if not intake_dirs:
        return Check("intake folders", True, "intake_dirs not set: documents are read from <data folder>/intake, "
                     "created at start", essential=False)
    from medops.core.documents.intake import missing_folder_note

    folders = [Path(d).expanduser() for d in intake_dirs]
    missing = [missing_folder_note(f) for f in folders if not f.is_dir()]
    if missing:
        return Check("intake folders", False, "; ".join(missing), essential=False)
    return Check("intake folders", True, ", ".join(map(str, folders)), essential=False)


def _shared_memory(shm: Path) -> Check:
    try:
        free = shutil.disk_usage(shm).free
    except OSError:
        return Check("shared memory", False, f"{shm} is missing: case memory needs a tmpfs there")
    ok = free >= MIN_SHM_FREE
    hint = "" if ok else f"; at least {MIN_SHM_FREE // 2**20} MiB are needed for case memory"
    return Check("shared memory", ok, f"{free / 2**20:,.0f} MiB free in {shm}{hint}")


def _groq_key(env: Mapping[str, str]) -> Check:
    from medops.core.errors import ConfigError
    from medops.core.groq.sender import check_api_key, check_base_url

    try:
        if env.get("GROQ_BASE_URL", "").strip():
            check_base_url(env["GROQ_BASE_URL"].strip(), "GROQ_BASE_URL")
        if env.get("GROQ_API_KEY", "").strip():
            check_api_key(env["GROQ_API_KEY"].strip())
    except ConfigError as bad:  # what every command would refuse at start: said here too, never the key
        return Check("groq key", False, str(bad))
    if env.get("GROQ_API_KEY"):
        return Check("groq key", True, "GROQ_API_KEY is set: medops talks to Groq", essential=False)
    return Check("groq key", True, "GROQ_API_KEY is not set: medops uses its local endpoint", essential=False)


def _quota_store(url: str, password: str | None) -> Check:
    """The fleet's store answers: a fleet member that never reaches it admits nothing."""
    if not url:
        return Check("quota store", True, "store_url not set: this process keeps its own Groq quota",
                     essential=False)
    import redis  # only when a store is set: doctor stays quick without one

    shown = redact_url(url)
    try:
        client = redis.Redis.from_url(url, password=password or None, socket_timeout=2, socket_connect_timeout=2)
        started = time.perf_counter()
        client.ping()
        took = (time.perf_counter() - started) * 1000
        info: dict[str, Any] = client.info("server")  # type: ignore[assignment]  # sync client: a dict
        version = info.get("redis_version", "?")
        functions = client.execute_command("FUNCTION", "LIST") is not None
        try:
            policy = str(dict(client.config_get("maxmemory-policy")).get("maxmemory-policy", "?"))  # type: ignore[arg-type]
        except redis.RedisError:  # a managed Redis may refuse CONFIG
            policy = "?"
        client.close()
    except (redis.RedisError, OSError) as exc:
        return Check("quota store", False, f"{shown} does not answer ({type(exc).__name__}): fleet members "
                     "admit nothing until it does; check the URL, MEDOPS_STORE_PASSWORD and the network")
    if not functions:
        return Check("quota store", False, f"{shown} answers in {took:.1f} ms but is Redis {version}: "
                     "FUNCTION is not available; the fleet's quota needs Redis 7 or newer")
    if policy not in ("noeviction", "?"):
        return Check("quota store", False, f"{shown} answers, but maxmemory-policy is {policy}: Redis may evict "
                     "the quota's windows and the fleet would then admit too much; set maxmemory-policy noeviction")
    unknown = "; its maxmemory-policy could not be read (set it to noeviction)" if policy == "?" else ""
    return Check("quota store", True, f"{shown} answers in {took:.1f} ms (Redis {version}){unknown}")
