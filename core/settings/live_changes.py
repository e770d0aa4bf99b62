"""Changing a limit while the core runs: which keys can change live, how each is applied, and the record.

Every key is either live (applied to its part at once) or restart-only (the part
sized it once, at start: a shared-memory segment, a connection pool, a listening
port). A test checks that the two lists together cover every setting.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping
from dataclasses import fields, replace
from types import MappingProxyType
from typing import Any, Literal, Protocol

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


LivePart = Literal["groq", "executors", "documents", "tuner", "tick"]
"""Who takes a live change: a part's own `apply(settings)`; "tuner": a knob the auto-tuner sizes, set
through the operator's pin; "tick": nothing to push, the tick (alerts, tuner) and the console read
the settings anew every time."""


class Applies(Protocol):
    """A part that takes changed settings while running (each applies the keys it holds)."""

    def apply(self, settings: Settings) -> None:
        """Take `settings`' values for the live keys this part holds."""
        ...


# The knobs the auto-tuner sizes, so the ones an operator can pin.
TUNED_KNOBS = ("io_threads", "query_cache_size")

# Live keys and which part takes each.
LIVE: Mapping[str, LivePart] = MappingProxyType({
    "groq_concurrent": "groq", "batch_interval": "groq", "queue_limit": "groq", "starvation_bound": "groq",
    "request_timeout": "groq", "max_retries": "groq", "default_model": "groq",
    "cpu_threads": "executors",
    "io_threads": "tuner", "query_cache_size": "tuner",
    "process_pool_size": "documents", "ocr_language": "documents", "ocr_page_timeout": "documents",
    "document_timeout": "documents",
    "alert_cpu_percent": "tick", "alert_memory_percent": "tick",
    "alert_quota_remaining_percent": "tick", "alert_slots_percent": "tick",
    "alert_loop_lag_ms": "tick", "alert_open_after": "tick",
    "alert_repeat_interval": "tick", "tuner_enabled": "tick", "tuner_interval": "tick",
    "io_threads_min": "tick", "io_threads_max": "tick", "refresh_interval": "tick",
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
    "store_url": "a member joins the fleet's store at start",
    "store_wait": "read when a command starts",
    "store_user": "a member connects to the fleet's store as this user at start",
    "store_namespace": "a member joins the fleet's store at start",
    "store_timeout": "the store's connection pool is built at start",
    "store_flight_bound": "every member's reservations were made with it",
    "metrics_port": "/metrics is served from start",
    "metrics_host": "/metrics is served from start",
    "metrics_allow_remote": "/metrics is served from start",
})


def restart_message(key: str) -> str:
    """Why `key` cannot change while running, and where to set it."""
    return (f"setting {key} cannot change while medops runs ({RESTART_ONLY[key]}): restart needed: "
            f"set it in the config file or MEDOPS_{key.upper()}")


def checked_value(key: str, value: Any, by: str) -> Any:
    """`value` in `key`'s type if `key` may change while running and `value` is in its range; else ConfigError
    (`RestartNeeded` for a key sized at start). The rule a member applies, so a sender can check first."""
    if key in RESTART_ONLY:
        raise RestartNeeded(restart_message(key))
    if key not in LIVE:
        raise ConfigError(f"unknown setting {key!r} (from {by}); `medops config show` lists the known keys")
    return validate_setting(key, value, by)


def validated_change(settings: Settings, key: str, value: Any, by: str) -> Settings:
    """The settings with `key` set to `value`, checked by the config loader's rules; ConfigError if refused."""
    changed = replace(settings, **{key: checked_value(key, value, by)})
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

    def record_request_action(self, at: float, request_id: str, old: str, new: str, by: str) -> LimitChange:
        """Remember an operator's action on one held Groq request (cancel, priority): its id and states only."""
        change = LimitChange(at=at, key=f"request:{request_id}", old=old, new=new, by=by)
        self._changes.appendleft(change)
        return change

    def changes(self) -> tuple[LimitChange, ...]:
        return tuple(self._changes)


def setting_help(key: str) -> str:
    """The one-line meaning and allowed range of a key, for completion hints."""
    for f in fields(Settings):
        if f.name == key:
            low, high = f.metadata.get("low"), f.metadata.get("high")
            allowed = f" ({range_text(low, high)})" if low is not None and high is not None else ""
            return f"{f.metadata.get('help', '')}{allowed}"
    return ""
