"""Settings: the reference design's RESOURCE_LIMITS as one typed, validated object.

Sources, lowest first: built-in defaults, a TOML file (`--config`,
`MEDOPS_CONFIG`, or `medops.toml` in the config folder), then `MEDOPS_<KEY>`
environment variables. A bad value is refused at start, naming the key, the
value, what is allowed and where it came from.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from medops.core.errors import ConfigError
from medops.core.settings.paths import Locations
from medops.core.settings.redact import redact_url
from medops.core.settings.store_url import check_store_url

CPUS = os.cpu_count() or 1
MIB = 1024 * 1024


def _setting(default: Any, low: float | None = None, high: float | None = None, *,
             choices: tuple[str, ...] = (), help: str) -> Any:
    """A field with its allowed range (or choices) and a one-line meaning."""
    meta = {"low": low, "high": high, "choices": choices, "help": help}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class ModelLimits:
    """Groq's published limits for one model: per minute and per day."""

    rpm: int
    rpd: int
    tpm: int
    tpd: int
    context_window: int = 131_072
    vision: bool = False  # takes image_url content parts
    reasoning: bool = False  # takes reasoning_effort / reasoning_format / include_reasoning


# Groq's free-tier figures, as published for each model.
DEFAULT_MODELS: Mapping[str, ModelLimits] = MappingProxyType({
    "llama-3.1-8b-instant": ModelLimits(30, 14_400, 6_000, 500_000),
    "llama-3.3-70b-versatile": ModelLimits(30, 1_000, 12_000, 100_000),
    "meta-llama/llama-4-scout-17b-16e-instruct": ModelLimits(30, 1_000, 30_000, 500_000, vision=True),
    "openai/gpt-oss-20b": ModelLimits(30, 1_000, 8_000, 200_000, reasoning=True),
    "openai/gpt-oss-120b": ModelLimits(30, 1_000, 8_000, 200_000, reasoning=True),
    "qwen/qwen3-32b": ModelLimits(60, 1_000, 6_000, 500_000, 131_072, reasoning=True),
})

MODEL_LIMIT_RANGE = {"rpm": (1, 1_000_000), "rpd": (1, 100_000_000),
                     "tpm": (1, 1_000_000_000), "tpd": (1, 10_000_000_000),
                     "context_window": (256, 10_000_000)}
MODEL_FEATURES = ("vision", "reasoning")  # true/false per model in [models."name"]


@dataclass(frozen=True)
class Settings:
    """Every limit and knob medops runs with. Frozen: change it with `replace`."""

    # Groq
    groq_rpm: int = _setting(30, 1, 1_000_000, help="requests/min for an unknown [models] entry omitting rpm")
    groq_rpd: int = _setting(7_000, 1, 100_000_000, help="requests/day for an unknown [models] entry omitting rpd")
    groq_concurrent: int = _setting(10, 1, 1_000, help="Groq requests in flight at once")
    default_model: str = _setting("llama-3.1-8b-instant", help="model used when a request names none")
    groq_base_url: str = _setting("https://api.groq.com", help="Groq API base URL (GROQ_BASE_URL wins)")
    request_timeout: float = _setting(30.0, 0.1, 600.0, help="seconds one HTTP attempt may take")
    max_retries: int = _setting(3, 0, 20, help="retries of a 5xx, timeout or connection error")
    batch_interval: float = _setting(0.1, 0.0, 5.0, help="seconds high/normal requests are gathered")
    queue_limit: int = _setting(1_000, 1, 1_000_000, help="requests waiting at most; more are refused")
    starvation_bound: float = _setting(30.0, 0.1, 3_600.0,
                                       help="seconds a waiting request waits before it is promoted one priority "
                                            "(normal -> high -> critical)")
    endpoint_host: str = _setting("127.0.0.1", help="address of the local Groq-compatible endpoint")
    endpoint_port: int = _setting(0, 0, 65_535, help="its port (0: any free port)")
    # The fleet: one quota for every medops of a Groq organisation
    store_url: str = _setting("", help="redis:// or rediss:// URL of the fleet's quota store (empty: this process "
                                       "keeps its own quota); password in the URL or MEDOPS_STORE_PASSWORD")
    store_wait: float = _setting(120.0, 1.0, 3_600.0, help="seconds a request (the console's, an agent's, `medops "
                                 "ask`) waits for a fleet store this member has never reached, then fails saying so "
                                 "(a member that never reached it admits nothing)")
    store_user: str = _setting("", help="the store's ACL user to connect as (member, reader or operator: see "
                                        "`medops fleet acl`; empty: the URL's, or Redis' default user)")
    store_namespace: str = _setting("", help="the store's namespace (empty: derived from a hash of the Groq key)")
    store_timeout: float = _setting(0.25, 0.01, 10.0, help="seconds a store call may take before the store "
                                                            "counts as down and a local share applies")
    store_flight_bound: float = _setting(180.0, 10.0, 86_400.0,
                                         help="seconds a dead member's in-flight reservations still count")
    metrics_port: int = _setting(0, 0, 65_535, help="port of /metrics for Prometheus (0: off)")
    metrics_host: str = _setting("127.0.0.1", help="address /metrics listens on (loopback unless "
                                                   "metrics_allow_remote)")
    metrics_allow_remote: bool = _setting(False, help="let metrics_host be an address other machines reach "
                                                      "(/metrics has no authentication)")
    # Memory
    max_cases_in_memory: int = _setting(1_000, 1, 1_000_000, help="case slots in shared memory")
    case_memory_mb: int = _setting(10, 1, 65_536, help="MiB of shared memory for all case slots")
    agent_context_pool_size: int = _setting(100, 0, 100_000, help="agent contexts kept ready")
    context_leak_seconds: float = _setting(300.0, 1.0, 86_400.0, help="a context held longer is reported as a leak")
    # Database
    db_connection_pool_size: int = _setting(10, 1, 256, help="DuckDB worker cursors")
    query_cache_size: int = _setting(1_000, 0, 10_000_000, help="query results cached")
    query_cache_ttl: float = _setting(3_600.0, 0.0, 10_000_000.0, help="seconds a cached result lives")
    db_query_timeout: float = _setting(10.0, 0.1, 3_600.0, help="seconds before a query is interrupted")
    metrics_retention_days: float = _setting(7.0, 0.01, 3_650.0, help="days of metric history kept in the ledger")
    ledger_flush_interval: float = _setting(1.0, 0.05, 60.0, help="seconds between ledger writes")
    # Threading
    cpu_threads: int = _setting(CPUS, 1, 1_024, help="CPU thread pool size")
    io_threads: int = _setting(CPUS * 4, 1, 4_096, help="I/O thread pool size")
    process_pool_size: int = _setting(CPUS, 1, 256, help="worker processes for documents")
    # Network
    http_max_connections: int = _setting(100, 1, 10_000, help="HTTP connections in the pool")
    http_max_per_host: int = _setting(10, 1, 10_000, help="keep-alive connections per host")
    # File I/O
    file_chunk_size: int = _setting(8_192, 512, 64 * MIB, help="bytes read at a time")
    max_file_size_mb: float = _setting(10.0, 0.001, 10_240.0, help="largest document accepted")
    intake_dirs: tuple[str, ...] = _setting((), help="folders documents are read from (empty: <data>/intake)")
    ocr_language: str = _setting("eng", help="Tesseract language")
    ocr_page_timeout: float = _setting(60.0, 1.0, 3_600.0, help="seconds of OCR per page")
    document_timeout: float = _setting(300.0, 1.0, 86_400.0, help="seconds per document before its worker is killed")
    # Monitor, alerts, tuner
    monitor_interval: float = _setting(1.0, 0.1, 60.0, help="seconds between resource samples")
    history_seconds: int = _setting(3_600, 60, 604_800, help="seconds of samples kept for graphs")
    alert_cpu_percent: float = _setting(90.0, 1.0, 100.0, help="CPU alert threshold")
    alert_memory_percent: float = _setting(80.0, 1.0, 100.0, help="memory alert threshold")
    alert_quota_remaining_percent: float = _setting(10.0, 0.0, 100.0, help="quota-low alert threshold")
    alert_slots_percent: float = _setting(90.0, 1.0, 100.0, help="case-slot alert threshold")
    alert_loop_lag_ms: float = _setting(100.0, 1.0, 60_000.0, help="event-loop lag alert threshold")
    alert_open_after: float = _setting(5.0, 0.0, 3_600.0, help="seconds a condition must hold before its alert opens")
    alert_repeat_interval: float = _setting(300.0, 1.0, 86_400.0, help="seconds before an open alert is repeated")
    tuner_enabled: bool = _setting(True, help="let the auto-tuner resize pools and caches")
    tuner_interval: float = _setting(10.0, 1.0, 3_600.0, help="seconds between tuner decisions")
    io_threads_min: int = _setting(CPUS, 1, 4_096, help="tuner's lower bound for I/O threads")
    io_threads_max: int = _setting(CPUS * 8, 1, 4_096, help="tuner's upper bound for I/O threads")
    # Console
    refresh_interval: float = _setting(1.0, 0.1, 60.0, help="seconds between console refreshes")
    theme: str = _setting("medops-dark", help="console theme name (a file in themes/)")
    # Per-model limits: a TOML table [models."name"] with rpm, rpd, tpm, tpd, context_window.
    models: Mapping[str, ModelLimits] = field(default_factory=lambda: DEFAULT_MODELS,
                                              metadata={"help": "per-model Groq limits"})

    @property
    def case_slot_bytes(self) -> int:
        """Size of one case slot, derived as the reference does (10 MiB / 1000)."""
        return self.case_memory_mb * MIB // self.max_cases_in_memory

    def model_limits(self, model: str) -> ModelLimits:
        """Limits of a known model; an unknown one is refused with the list."""
        try:
            return self.models[model]
        except KeyError:
            known = ", ".join(sorted(self.models))
            raise ConfigError(f"unknown model {model!r}; known models: {known}") from None


@dataclass(frozen=True)
class LoadedSettings:
    """Settings plus where each value came from, for `medops config show`."""

    settings: Settings
    sources: Mapping[str, str]
    config_file: Path | None


SCALAR_KEYS = tuple(f.name for f in fields(Settings) if f.name != "models")
# Environment variables with the MEDOPS_ prefix that are not settings: where things are
# (the console's themes too), what a document worker is handed by the core, and the store's
# password (a secret, read where the store is opened so it never sits in Settings or `config show`), and
# the passwords `medops fleet acl` gives the ACL users it creates (`medops serve` hands viewers the reader's), and
# the token `medops serve` asks of browsers.
RESERVED_ENV = {"MEDOPS_CONFIG", "MEDOPS_CONFIG_DIR", "MEDOPS_DATA_DIR", "MEDOPS_THEMES_DIR", "MEDOPS_WORKER_CHANNEL",
                "MEDOPS_WORKER_MEMORY", "MEDOPS_STORE_PASSWORD", "MEDOPS_ACL_MEMBER_PASSWORD",
                "MEDOPS_ACL_READER_PASSWORD", "MEDOPS_ACL_OPERATOR_PASSWORD", "MEDOPS_ACL_ONCALL_PASSWORD",
                "MEDOPS_SERVE_TOKEN"}
MIN_SLOT_BYTES = 1_024
STORE_USER_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # an ACL user name, one word on any line


def load_settings(locations: Locations, config_path: Path | None = None,
                  env: Mapping[str, str] | None = None) -> LoadedSettings:
    """Read defaults, then the TOML file, then the environment; validate all."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    raw_models: dict[str, dict[str, int]] | None = None
    sources: dict[str, str] = {key: "default" for key in SCALAR_KEYS}
    sources["models"] = "default"

    path = _config_file(locations, config_path, env)
    if path is not None:
        origin = f"file {path}"
        for key, raw in _read_toml(path).items():
            if key == "models":
                raw_models = _parse_models(raw, origin)
            else:
                values[key] = validate_setting(key, raw, origin)
            sources[key] = origin

    for name, raw in env.items():
        if not name.startswith("MEDOPS_") or name in RESERVED_ENV:
            continue
        key = name.removeprefix("MEDOPS_").lower()
        origin = f"env {name}"
        values[key] = validate_setting(key, raw, origin)
        sources[key] = origin

    settings = Settings(**values)
    if raw_models is not None:
        settings = replace(settings, models=_fill_model_defaults(raw_models, settings))
    check_settings(settings, sources)
    if settings.store_user and settings.store_url:
        # Every store connection is opened from the URL: the user goes into it (the password stays apart).
        settings = replace(settings, store_url=_with_user(settings.store_url, settings.store_user, sources))
    return LoadedSettings(settings, MappingProxyType(sources), path)


def _config_file(locations: Locations, explicit: Path | None, env: Mapping[str, str]) -> Path | None:
    if explicit is None and env.get("MEDOPS_CONFIG"):
        explicit = Path(env["MEDOPS_CONFIG"])
    if explicit is not None:
        explicit = explicit.expanduser()
        if not explicit.is_file():
            raise ConfigError(f"config file {explicit} does not exist; create it or drop --config/MEDOPS_CONFIG")
        return explicit
    return locations.config_file if locations.config_file.is_file() else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML ({exc}); fix the file") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read ({exc.strerror})") from None


def validate_setting(key: str, raw: Any, origin: str) -> Any:
    """One setting's value in its type and range, or a ConfigError naming key, value, what is allowed and origin.

    The single rule for a key/value pair, used by the config file, the environment and the console.
    Text (from the environment or the console) is parsed; a TOML value must already have the right type.
    """
    f = _field(key, origin)
    value = _coerce(f, raw, origin)
    _check_range(f, value, origin)
    return value


def range_text(low: float, high: float) -> str:
    """An allowed range as a value is typed: `1 to 1000000`, `0.5 to 99.5` (never `1e+06`)."""
    def plain(x: float) -> str:
        return str(int(x)) if float(x).is_integer() else f"{x:g}"
    return f"{plain(low)} to {plain(high)}"


def _check_range(f: Any, value: Any, origin: str) -> None:
    low, high, choices = f.metadata["low"], f.metadata["high"], f.metadata["choices"]
    if low is not None and not low <= value <= high:
        raise ConfigError(f"setting {f.name} = {value!r} (from {origin}) is out of range: "
                          f"allowed {range_text(low, high)}")
    if choices and value not in choices:
        raise ConfigError(f"setting {f.name} = {value!r} (from {origin}) is not one of {', '.join(choices)}")


def _field(key: str, origin: str) -> Any:
    for f in fields(Settings):
        if f.name == key and key != "models":
            return f
    raise ConfigError(f"unknown setting {key!r} (from {origin}); `medops config show` lists the known keys")


def _coerce(f: Any, raw: Any, origin: str) -> Any:
    """Turn a TOML or environment value into the field's type, or refuse it."""
    kind = type(f.default)
    from_env = isinstance(raw, str) and not origin.startswith("file")  # env or console: text to parse
    try:
        if kind is bool:
            if from_env:
                lowered = raw.strip().lower()
                if lowered not in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
                    raise ValueError
                return lowered in {"1", "true", "yes", "on"}
            if not isinstance(raw, bool):
                raise ValueError
            return raw
        if kind is tuple:
            if from_env:
                return tuple(part for part in raw.split(":") if part)
            if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
                raise ValueError
            return tuple(raw)
        if kind is int:
            if isinstance(raw, (bool, float)):
                raise ValueError
            return int(raw)
        if kind is float:
            if isinstance(raw, bool):
                raise ValueError
            return float(raw)
        if not isinstance(raw, str):
            raise ValueError
        return raw
    except ValueError:
        wanted = {bool: "true or false", tuple: "a list of paths (env: colon-separated)",
                  int: "a whole number", float: "a number", str: "a string"}[kind]
        low, high = f.metadata["low"], f.metadata["high"]
        allowed = f" (allowed {range_text(low, high)})" if low is not None else ""
        raise ConfigError(f"setting {f.name} = {raw!r} (from {origin}) is not {wanted}{allowed}") from None


def _parse_models(raw: Any, origin: str) -> dict[str, dict[str, int]]:
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"setting models (from {origin}) must be tables like [models.\"llama-3.1-8b-instant\"]")
    parsed: dict[str, dict[str, int]] = {}
    for name, table in raw.items():
        if not isinstance(table, dict):
            raise ConfigError(f"setting models.{name} (from {origin}) must be a table of rpm, rpd, tpm, tpd")
        entry: dict[str, int] = {}
        for key, value in table.items():
            if key in MODEL_FEATURES:
                if not isinstance(value, bool):
                    raise ConfigError(f"setting models.{name}.{key} = {value!r} (from {origin}) must be true or false")
                entry[key] = value
                continue
            if key not in MODEL_LIMIT_RANGE:
                raise ConfigError(f"unknown setting models.{name}.{key} (from {origin}); "
                                  f"allowed: {', '.join((*MODEL_LIMIT_RANGE, *MODEL_FEATURES))}")
            low, high = MODEL_LIMIT_RANGE[key]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigError(f"setting models.{name}.{key} = {value!r} (from {origin}) is out of range: "
                                  f"allowed a whole number from {low:,} to {high:,}")
            entry[key] = value
        for key in ("tpm", "tpd"):
            if key not in entry and name not in DEFAULT_MODELS:
                raise ConfigError(f"setting models.{name} (from {origin}) lacks {key}; a model medops does not "
                                  "know needs tpm and tpd (rpm, rpd default to groq_rpm, groq_rpd)")
        parsed[name] = entry
    return parsed


def _fill_model_defaults(raw: dict[str, dict[str, int]], settings: Settings) -> Mapping[str, ModelLimits]:
    """Each [models] entry in full: a built-in model keeps every figure the file does not give; a model medops
    does not know takes groq_rpm and groq_rpd when it omits rpm and rpd."""
    models = {}
    for name, e in raw.items():
        # tpm and tpd are in every entry for a model medops does not know (_parse_models insists).
        base = DEFAULT_MODELS.get(name) or ModelLimits(settings.groq_rpm, settings.groq_rpd, 0, 0)
        models[name] = ModelLimits(rpm=e.get("rpm", base.rpm), rpd=e.get("rpd", base.rpd),
                                   tpm=e.get("tpm", base.tpm), tpd=e.get("tpd", base.tpd),
                                   context_window=e.get("context_window", base.context_window),
                                   vision=bool(e.get("vision", base.vision)),
                                   reasoning=bool(e.get("reasoning", base.reasoning)))
    return MappingProxyType(models)


def check_settings(settings: Settings, sources: Mapping[str, str]) -> None:
    """Every value in range (defaults too) and the rules that tie keys together; ConfigError otherwise."""
    for f in fields(Settings):
        if f.name != "models":
            _check_range(f, getattr(settings, f.name), sources[f.name])
    if settings.default_model not in settings.models:
        raise ConfigError(f"setting default_model = {settings.default_model!r} (from {sources['default_model']}) "
                          f"names no configured model; known: {', '.join(sorted(settings.models))}")
    if settings.case_slot_bytes < MIN_SLOT_BYTES:
        raise ConfigError(f"settings case_memory_mb = {settings.case_memory_mb} and max_cases_in_memory = "
                          f"{settings.max_cases_in_memory} give {settings.case_slot_bytes} bytes a case slot; "
                          f"at least {MIN_SLOT_BYTES} are needed: raise case_memory_mb or lower max_cases_in_memory")
    if settings.store_url:
        check_store_url(settings.store_url, sources["store_url"])
    if settings.store_user and not STORE_USER_PATTERN.fullmatch(settings.store_user):
        raise ConfigError(f"setting store_user = {settings.store_user!r} (from {sources['store_user']}) is not an "
                          "ACL user name: use 1 to 64 of A-Z a-z 0-9 _ . -")
    if settings.io_threads_min > settings.io_threads_max:
        raise ConfigError(f"setting io_threads_min = {settings.io_threads_min} ({sources['io_threads_min']}) "
                          f"exceeds io_threads_max = {settings.io_threads_max} ({sources['io_threads_max']})")
    if settings.io_threads < settings.io_threads_min:
        raise ConfigError(f"setting io_threads = {settings.io_threads} ({sources['io_threads']}) is below "
                          f"io_threads_min = {settings.io_threads_min} ({sources['io_threads_min']}), the tuner's "
                          "floor: raise io_threads or lower io_threads_min")


def _with_user(url: str, user: str, sources: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    if parts.username and parts.username != user:
        raise ConfigError(f"setting store_user = {user!r} (from {sources['store_user']}) differs from the user in "
                          f"store_url ({parts.username!r}, from {sources['store_url']}): give the user in one place")
    host = parts.netloc.rpartition("@")[2]
    secret = f":{parts.password}" if parts.password is not None else ""
    return urlunsplit((parts.scheme, f"{quote(user, safe='')}{secret}@{host}", parts.path, parts.query,
                       parts.fragment))


def describe(loaded: LoadedSettings) -> list[tuple[str, str, str]]:
    """(key, value, source) rows for every setting, models last."""
    rows = [(key, show_value(getattr(loaded.settings, key)), loaded.sources[key]) for key in SCALAR_KEYS]
    rows = [(key, redact_url(value) if key in ("groq_base_url", "store_url") else value, source)
            for key, value, source in rows]
    for name, m in sorted(loaded.settings.models.items()):
        rows.append((f"models.{name}", f"rpm={m.rpm} rpd={m.rpd} tpm={m.tpm} tpd={m.tpd} "
                     f"context_window={m.context_window}", loaded.sources["models"]))
    return rows


def show_value(value: Any) -> str:
    """A setting's value as `medops config show` prints it."""
    if isinstance(value, tuple):
        return ":".join(value) if value else "(default)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)

