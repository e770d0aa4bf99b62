"""Changing a limit while the core runs: which keys can change live, how each is applied, and the record.

Every key is either live (applied to its part at once) or restart-only (the part
sized it once, at start: a shared-memory segment, a connection pool, a listening
port). A test checks that the two lists together cover every setting.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Mapping
from dataclasses import fields, replace
from types import MappingProxyType
from typing import Any, Protocol

from medops.core.errors import ConfigError
from medops.core.settings.config import (
    SCALAR_KEYS,
    Settings,
    check_settings,
    range_text,
    show_value,
    validate_setting,
)
from medops.core.snapshot import LimitChange

MAX_CHANGES = 100  # changes kept for the snapshot


class RestartNeeded(ConfigError):
    """A setting the core sizes once, at start: it takes a restart with a new config file or env value."""


class _Pool(Protocol):
    def resize(self, size: int) -> None: ...


class _Executors(Protocol):
    @property
    def cpu(self) -> _Pool: ...

    @property
    def io(self) -> _Pool: ...


class _Documents(Protocol):
    timeout: float
    options: Any

    def resize(self, size: int) -> None: ...


class _Knowledge(Protocol):
    @property
    def cache(self) -> _Pool: ...


class _Groq(Protocol):
    def apply(self, settings: Settings) -> None: ...


class LiveParts(Protocol):
    """The parts a live change reaches (`ResourceCore` is one)."""

    @property
    def executors(self) -> _Executors: ...

    @property
    def documents(self) -> _Documents: ...

    @property
    def knowledge(self) -> _Knowledge: ...

    @property
    def groq(self) -> _Groq: ...


def _groq(parts: LiveParts, s: Settings) -> None:
    parts.groq.apply(s)


def _documents_options(parts: LiveParts, s: Settings) -> None:
    parts.documents.options = replace(parts.documents.options, ocr_language=s.ocr_language,
                                      ocr_page_timeout=s.ocr_page_timeout)


def _document_timeout(parts: LiveParts, s: Settings) -> None:
    parts.documents.timeout = s.document_timeout


def _read_each_tick(parts: LiveParts, s: Settings) -> None:
    """Nothing to push: the tick (alerts, tuner) and the console read the settings anew every time."""


Applier = Callable[[LiveParts, Settings], None]

# Live keys and how each reaches its part.
LIVE: Mapping[str, Applier] = MappingProxyType({
    "groq_concurrent": _groq, "batch_interval": _groq, "queue_limit": _groq, "starvation_bound": _groq,
    "request_timeout": _groq, "max_retries": _groq, "default_model": _groq,
    "cpu_threads": lambda parts, s: parts.executors.cpu.resize(s.cpu_threads),
    "io_threads": lambda parts, s: parts.executors.io.resize(s.io_threads),
    "process_pool_size": lambda parts, s: parts.documents.resize(s.process_pool_size),
    "query_cache_size": lambda parts, s: parts.knowledge.cache.resize(s.query_cache_size),
    "ocr_language": _documents_options, "ocr_page_timeout": _documents_options,
    "document_timeout": _document_timeout,
    "alert_cpu_percent": _read_each_tick, "alert_memory_percent": _read_each_tick,
    "alert_quota_remaining_percent": _read_each_tick, "alert_slots_percent": _read_each_tick,
    "alert_loop_lag_ms": _read_each_tick, "alert_open_after": _read_each_tick,
    "alert_repeat_interval": _read_each_tick, "tuner_enabled": _read_each_tick, "tuner_interval": _read_each_tick,
    "io_threads_min": _read_each_tick, "io_threads_max": _read_each_tick, "refresh_interval": _read_each_tick,
})

# Restart-only keys and why they cannot change while running.
RESTART_ONLY: Mapping[str, str] = MappingProxyType({
    "groq_rpm": "it fills in per-model limits once, at start",
    "groq_rpd": "it fills in per-model limits once, at start",
    "groq_base_url": "the HTTP client is bound to it at start",
    "endpoint_host": "the local endpoint listens on it from start",
    "endpoint_port": "the local endpoint listens on it from start",
    "max_cases_in_memory": "case memory is one shared-memory segment sized at start",
    "case_memory_mb": "case memory is one shared-memory segment sized at start",
    "agent_context_pool_size": "the agent context pool is built at start",
    "context_leak_seconds": "the agent context pool is built at start",
    "db_connection_pool_size": "the DuckDB cursors are opened at start",
    "query_cache_ttl": "cached results carry the expiry they were stored with",
    "db_query_timeout": "the DuckDB pool takes it at start",
    "metrics_retention_days": "the ledger takes it at start",
    "ledger_flush_interval": "the ledger takes it at start",
    "http_max_connections": "the HTTP connection pool is built at start",
    "http_max_per_host": "the HTTP connection pool is built at start",
    "file_chunk_size": "it is read only at start",
    "max_file_size_mb": "the intake check takes it at start",
    "intake_dirs": "the intake folders are resolved at start",
    "monitor_interval": "the sample history is sized from it at start",
    "history_seconds": "the sample history is sized from it at start",
    "theme": "the console loads its theme at start",
    "models": "the quota windows are built per model at start",
})


def restart_message(key: str) -> str:
    """Why `key` cannot change while running, and where to set it."""
    return (f"setting {key} cannot change while medops runs ({RESTART_ONLY[key]}): restart needed: "
            f"set it in the config file or MEDOPS_{key.upper()}")


def validated_change(settings: Settings, key: str, value: Any, by: str) -> Settings:
    """The settings with `key` set to `value`, checked by the config loader's rules; ConfigError if refused."""
    if key in RESTART_ONLY:
        raise RestartNeeded(restart_message(key))
    if key not in LIVE:
        raise ConfigError(f"unknown setting {key!r} (from {by}); `medops config show` lists the known keys")
    changed = replace(settings, **{key: validate_setting(key, value, by)})
    sources = {name: "running value" for name in SCALAR_KEYS}
    sources[key] = by
    check_settings(changed, sources)
    return changed


class LimitHistory:
    """The operator's changes, newest first, for the snapshot."""

    def __init__(self) -> None:
        self._changes: collections.deque[LimitChange] = collections.deque(maxlen=MAX_CHANGES)

    def record(self, at: float, key: str, old: Settings, new: Settings, by: str) -> LimitChange:
        """Remember one applied change."""
        change = LimitChange(at=at, key=key, old=show_value(getattr(old, key)),
                             new=show_value(getattr(new, key)), by=by)
        self._changes.appendleft(change)
        return change

    def record_handback(self, at: float, key: str, current: Settings, by: str) -> LimitChange:
        """Remember that the operator handed `key` back to the tuner ("auto")."""
        change = LimitChange(at=at, key=key, old=show_value(getattr(current, key)), new="auto", by=by)
        self._changes.appendleft(change)
        return change

    def changes(self) -> tuple[LimitChange, ...]:
        return tuple(self._changes)


def apply_live(parts: LiveParts, key: str, settings: Settings) -> None:
    """Push the new value of a live key to the part that holds it."""
    LIVE[key](parts, settings)


def live_keys() -> tuple[str, ...]:
    """Keys the console offers for a live change, sorted."""
    return tuple(sorted(LIVE))


def setting_help(key: str) -> str:
    """The one-line meaning and allowed range of a key, for completion hints."""
    for f in fields(Settings):
        if f.name == key:
            low, high = f.metadata.get("low"), f.metadata.get("high")
            allowed = f" ({range_text(low, high)})" if low is not None and high is not None else ""
            return f"{f.metadata.get('help', '')}{allowed}"
    return ""
