"""`CoreSnapshot`: the one immutable value the console (and `status --json`) reads.

Each part of the core fills its own section; a section's defaults describe a
part that is not running, so a snapshot is always complete.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from medops.core.inert_text import visible

EndpointKind = Literal["groq", "local", "none"]
"""Which Groq the core talks to: the real one, a local endpoint, or none yet."""
ResourceSource = Literal["host", "cgroup v1", "cgroup v2"]
"""Where a CPU or memory figure's limit comes from."""
JobState = Literal["queued", "running", "done", "failed", "cancelled"]
"""A document job's state."""
AlertLevel = Literal["warning", "critical"]
KnowledgeState = Literal["off", "building", "ready", "failed"]
LedgerMode = Literal["read-write", "read-only", "off"]
RequestState = Literal["batching", "waiting", "admitting", "sending", "backoff"]
"""Where a held Groq request is: gathered for its batch, queued, asking its quota (the fleet's store), at Groq, backing
off."""


@dataclass(frozen=True)
class WindowUsage:
    """One rolling Groq limit (rpm, rpd, tpm or tpd) as we account it."""

    name: str
    used: int
    limit: int
    reset_in: float  # seconds until the oldest admission leaves the window
    blocked_for: float = 0.0  # seconds a 429 still blocks this dimension
    own: int | None = None  # this instance's part of `used` when a fleet shares the window (None: no fleet)
    parts: tuple[tuple[str, int], ...] = ()  # (member, its part of `used`): filled by an attached view only
    last_hour: int | None = None  # day windows: what entered it in the last hour, in flight included (None: unknown)
    held: int = 0  # counted against the limit beside `used`, but nobody's use (an emptied store's carry, ...)
    held_until: float = 0.0  # wall time the hold ends
    held_why: str = ""

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.counted)

    @property
    def counted(self) -> int:
        """What the window counts against its limit: the use and what is held beside it (a window 10 used + 20
        held of 30 has no room, though its use reads a third)."""
        return self.used + self.held


@dataclass(frozen=True)
class ServerReport:
    """What Groq's `x-ratelimit-*` headers said last (day's requests, minute's tokens)."""

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests: float | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens: float | None = None
    observed_at: float | None = None  # wall time


@dataclass(frozen=True)
class ModelQuota:
    """One model's four windows, the server's last word, its 429 and 498 counts and any capacity hold."""

    model: str
    windows: tuple[WindowUsage, ...]
    server: ServerReport = ServerReport()
    rate_limited: int = 0
    refused_too_large: int = 0
    capacity_exceeded: int = 0  # 498s received (Groq over capacity for this model)
    capacity_hold: float = 0.0  # seconds sends to this model are still held after a 498
    waiting: int = 0  # requests queued for this model, ready to send (filled by the Groq path)


@dataclass(frozen=True)
class StoreSnapshot:
    """The fleet's quota store as this instance sees it (no password, no patient data)."""

    url: str  # redacted
    instance: str
    state: Literal["up", "down", "seeding"]
    down_since: float | None  # wall time, while down
    rtt_p50_ms: float
    rtt_p99_ms: float
    members_alive: int
    share: int  # while down, each window's limit is divided by this
    clock_skew: float  # store clock minus ours, seconds
    pending: int  # admissions not yet written to the store
    last_error: str = ""
    attached: bool = False  # True: a view attached to the fleet (medops --attach), holding no quota itself

    @property
    def never_reached(self) -> bool:
        """A member whose store has not answered once since it started: no share learnt, nothing admitted."""
        return self.state == "down" and self.share == 0 and not self.attached


@dataclass(frozen=True)
class QuotaSnapshot:
    models: tuple[ModelQuota, ...] = ()
    default_model: str = ""  # the model a request naming none uses
    store: StoreSnapshot | None = None  # None: this instance's quota is its own (no store_url)

    def of(self, model: str | None) -> ModelQuota | None:
        """The windows of `model` (the default model's when None), if there are limits for it."""
        wanted = model or self.default_model
        return next((m for m in self.models if m.model == wanted), None)


@dataclass(frozen=True)
class PriorityQueue:
    """Requests waiting at one priority and how long they have waited."""

    priority: str
    depth: int = 0  # by the priority each request was submitted with
    wait_p50: float = 0.0  # seconds
    wait_p95: float = 0.0
    promoted: int = 0  # lower-priority requests waiting now that have waited their way up to this one


@dataclass(frozen=True)
class RequestRow:
    """One Groq request the scheduler holds, queued or in flight: ids, figures and why it waits, never its text."""

    request_id: str
    agent: str
    client: str  # the gateway key's name ("": not through the gateway)
    priority: str  # as submitted, or as an operator set it
    effective: str  # the class it competes in now, aging included
    max_priority: str  # the most it may be raised to (its gateway key's bound)
    model: str
    tokens: int  # reserved per attempt: prompt estimate + max_completion_tokens
    age: float  # seconds since submitted
    deadline_left: float | None  # seconds (None: no deadline)
    state: RequestState
    reason: str  # why it waits, in words ("tpm full until 14:02:11"); "at Groq" in flight
    until: float | None = None  # wall time the wait ends, when known
    attempt: int = 0  # HTTP attempts so far (the one in flight included)
    at_groq: float = 0.0  # seconds the attempt in flight has been at Groq
    member: str = ""  # the member holding it, on an attached view ("": this core's own)
    deferred: bool = False  # the fleet's store put it off though the windows have room: others' requests go first

    @property
    def promoted(self) -> bool:
        """Aging raised it above the priority it holds."""
        return self.effective != self.priority


@dataclass(frozen=True)
class SchedulerSnapshot:
    queues: tuple[PriorityQueue, ...] = ()
    in_flight: int = 0
    concurrency: int = 0
    completed: int = 0
    failed: int = 0
    rejected: int = 0
    paused: bool = False
    retried: int = 0  # attempts after a 5xx, timeout, connection error or 498
    requests: tuple[RequestRow, ...] = ()  # the most urgent `REQUEST_ROWS` held, in the order they would go
    requests_held: int = 0  # every request held, of which `requests` lists the first


@dataclass(frozen=True)
class EndpointInfo:
    """Which Groq the core talks to: the real one or the local endpoint."""

    kind: EndpointKind = "none"
    base_url: str = ""
    healthy: bool = False
    detail: str = ""


@dataclass(frozen=True)
class SlotsSnapshot:
    """Shared case memory."""

    total: int = 0
    used: int = 0
    slot_bytes: int = 0
    bytes_used: int = 0
    largest_case: int = 0
    overwrites: int = 0
    rejections: tuple[tuple[str, int], ...] = ()  # (reason, count)
    occupied: tuple[int, ...] = ()  # slot numbers in use, for the grid
    segment: str = ""

    @property
    def free(self) -> int:
        return self.total - self.used


@dataclass(frozen=True)
class ContextPoolSnapshot:
    pool_size: int = 0
    idle: int = 0
    active: int = 0
    created_beyond_pool: int = 0
    acquisitions: int = 0
    reuses: int = 0
    leaked: int = 0  # held longer than the leak threshold

    @property
    def reuse_ratio(self) -> float:
        return self.reuses / self.acquisitions if self.acquisitions else 0.0


@dataclass(frozen=True)
class PoolSnapshot:
    """A worker pool's saturation: threads, processes, DuckDB cursors, HTTP."""

    name: str
    capacity: int = 0
    active: int = 0
    queued: int = 0
    completed: int = 0
    errors: int = 0
    timeouts: int = 0
    wait_p50: float = 0.0  # seconds spent queued before running
    wait_p95: float = 0.0

    @property
    def saturation(self) -> float:
        return self.active / self.capacity if self.capacity else 0.0


@dataclass(frozen=True)
class CacheSnapshot:
    name: str = "query"
    size: int = 0
    capacity: int = 0
    hits: int = 0
    misses: int = 0
    evictions: int = 0

    @property
    def hit_rate(self) -> float:
        looks = self.hits + self.misses
        return self.hits / looks if looks else 0.0


@dataclass(frozen=True)
class DocumentJob:
    """One document in the pipeline (no text: that is patient data)."""

    job_id: str
    name: str
    state: JobState
    pages_done: int = 0
    pages_total: int = 0
    error: str = ""  # for this member's own console: may name the file, so never published
    error_code: str = ""  # what went wrong, as a short code (e.g. "timeout", "encrypted"): the fleet sees this
    size_bytes: int = 0  # the file's size, once intake has read it


@dataclass(frozen=True)
class DocumentsSnapshot:
    queued: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0
    pages: int = 0
    recent: tuple[DocumentJob, ...] = ()  # newest first
    cancelled: int = 0


@dataclass(frozen=True)
class SystemSnapshot:
    """Process and machine resources, cgroup-aware, with history for graphs."""

    process_cpu: float = 0.0  # percent of one core
    process_cpu_machine: float = 0.0  # percent of the whole machine (or cgroup quota)
    rss_bytes: int = 0
    threads: int = 0
    open_files: int = 0
    cpu_per_core: tuple[float, ...] = ()
    cpu_limit_cores: float = 0.0
    memory_used: int = 0
    memory_limit: int = 0
    memory_percent: float = 0.0
    memory_source: ResourceSource = "host"
    disk_free: int = 0
    loop_lag_ms: float = 0.0  # p99 over the recent window
    sample_cost_ms: float = 0.0
    cpu_history: tuple[tuple[float, float], ...] = ()  # (wall time, cpu_percent)
    memory_history: tuple[tuple[float, float], ...] = ()  # (wall time, memory_percent)
    cpu_percent: float = 0.0  # busy share of the machine's cores, or of the cgroup's CPU quota
    cpu_source: ResourceSource = "host"
    memory_available: int = 0
    disk_total: int = 0
    loop_lag_p50_ms: float = 0.0
    loop_lag_max_ms: float = 0.0
    sampled_at: float = 0.0  # wall time of the sample (0: never sampled)


@dataclass(frozen=True)
class Alert:
    name: str  # rule plus subject, e.g. "cpu", "pool_saturated:io"
    level: AlertLevel
    message: str
    opened_at: float  # wall time
    value: float = 0.0
    cleared_at: float | None = None
    rule: str = ""
    repeats: int = 0  # times re-announced while open, or opened again soon after clearing (a flapping metric)
    updated_at: float = 0.0  # wall time of the latest open, repeat, escalation or clear
    acknowledged: bool = False  # an operator has seen it: it stays listed, but no longer counts as news
    silenced_until: float | None = None  # wall time until which the operator silenced it (not announced)


@dataclass(frozen=True)
class TunerChange:
    at: float  # wall time
    knob: str
    old: float
    new: float
    reason: str
    applied: bool = True  # False: advice only (a knob that cannot change while running), or skipped
    skipped: bool = False  # True: the operator pinned the knob, so the tuner left it alone (old == new)


@dataclass(frozen=True)
class TunerSnapshot:
    enabled: bool = False
    changes: tuple[TunerChange, ...] = ()
    pinned: tuple[str, ...] = ()  # knobs the operator set, which the tuner leaves alone until handed back


@dataclass(frozen=True)
class LimitChange:
    """A limit changed while running by someone other than the tuner (the operator at the console)."""

    at: float  # wall time
    key: str
    old: str  # as `medops config show` prints it
    new: str
    by: str  # who: "console", ...


@dataclass(frozen=True)
class SettingValue:
    """One live setting's value in force, as `medops config show` prints it (members publish theirs so
    `medops fleet settings` can list who runs other than the fleet-wide value)."""

    key: str
    value: str


@dataclass(frozen=True)
class KnowledgeSnapshot:
    """The ICD-10-CM knowledge base: being built (with progress), ready, or failed."""

    state: KnowledgeState = "off"
    detail: str = ""
    stage: str = ""
    progress: float = 0.0  # fraction of the build done
    codes: int = 0


@dataclass(frozen=True)
class LedgerSnapshot:
    mode: LedgerMode = "off"
    detail: str = ""
    rows_written: int = 0
    pending: int = 0


@dataclass(frozen=True)
class GatewayKeyStats:
    """One agent key's requests through this gateway (its name is the client label; never the key)."""

    name: str
    agent: str
    requests: int = 0
    in_flight: int = 0
    queued: int = 0  # requests that waited in the fleet's queue (for quota or a slot) before being sent
    refused_at_deadline: int = 0  # 429s: the deadline passed while waiting
    queue_wait_p50: float = 0.0  # seconds, over its recent requests


@dataclass(frozen=True)
class GatewaySnapshot:
    """A gateway member (`medops gateway`): its listener and each key's figures."""

    url: str = ""
    clients: int = 0  # connections open now
    in_flight: int = 0  # chat requests being answered now
    requests: int = 0
    unauthorized: int = 0  # 401s: no key or a wrong one
    refused_connections: int = 0  # turned away past the connection cap
    keys: tuple[GatewayKeyStats, ...] = ()


@dataclass(frozen=True)
class CoreSnapshot:
    """Everything the console shows, taken at one instant."""

    taken_at: float  # wall time
    uptime: float
    endpoint: EndpointInfo = EndpointInfo()
    quota: QuotaSnapshot = QuotaSnapshot()
    scheduler: SchedulerSnapshot = SchedulerSnapshot()
    slots: SlotsSnapshot = SlotsSnapshot()
    contexts: ContextPoolSnapshot = ContextPoolSnapshot()
    pools: tuple[PoolSnapshot, ...] = ()
    cache: CacheSnapshot = CacheSnapshot()
    knowledge: KnowledgeSnapshot = KnowledgeSnapshot()
    documents: DocumentsSnapshot = DocumentsSnapshot()
    system: SystemSnapshot = SystemSnapshot()
    alerts: tuple[Alert, ...] = ()
    tuner: TunerSnapshot = TunerSnapshot()
    limit_changes: tuple[LimitChange, ...] = ()  # set_limit's changes, newest first
    ledger: LedgerSnapshot = LedgerSnapshot()
    paused: bool = False
    gateway: GatewaySnapshot | None = None  # None: this member serves no gateway
    live_settings: tuple[SettingValue, ...] = ()  # every live key's value in force (a fixed, short list)


def snapshot_to_dict(snapshot: CoreSnapshot) -> dict[str, Any]:
    """A plain dict for JSON, with derived figures (free, hit rate...) included."""
    return _plain(snapshot)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        for name in dir(type(value)):
            if isinstance(getattr(type(value), name, None), property):
                out[name] = _plain(getattr(value, name))
        return out
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def snapshot_from_dict(data: Mapping[str, Any]) -> CoreSnapshot:
    """The `CoreSnapshot` back from `snapshot_to_dict`'s JSON (a fleet member's published one).

    Derived figures (free, hit rate...) are left out, since they are properties; a field missing from the
    dict keeps its default. What another member wrote is checked here, once: a field with no default
    missing, a value of the wrong type, a number out of range or a list longer than `LIST_ITEMS` raises
    `ValueError`; text has its control characters made visible and is cut at `TEXT_CHARS`."""
    built = _build(CoreSnapshot, data)
    assert isinstance(built, CoreSnapshot)
    return built


def alert_from_dict(data: Mapping[str, Any]) -> Alert:
    """An `Alert` back from its JSON (a fleet member's announcement), checked as `snapshot_from_dict` checks
    a snapshot's: `ValueError` on a missing field, a wrong type or a number out of range; text made visible."""
    built = _build(Alert, data)
    assert isinstance(built, Alert)
    return built


LIST_ITEMS = 1_000  # items of any one list a published snapshot may hold
TEXT_CHARS = 2_000  # characters of any one text kept
NUMBER_BOUND = 2**63  # beyond any figure a member counts


def _build(kind: Any, value: Any) -> Any:
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        if not isinstance(value, Mapping):
            raise ValueError(f"{kind.__name__}: expected an object, got {type(value).__name__}")
        hints = typing.get_type_hints(kind)
        fields = {f.name: _build(hints[f.name], value[f.name]) for f in dataclasses.fields(kind) if f.name in value}
        try:
            return kind(**fields)
        except TypeError as exc:
            raise ValueError(f"{kind.__name__}: {exc}") from None
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin is tuple:
        if not isinstance(value, list | tuple) or len(value) > LIST_ITEMS:
            raise ValueError(f"expected a list of at most {LIST_ITEMS} items")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_build(args[0], item) for item in value)
        try:
            return tuple(_build(arg, item) for arg, item in zip(args, value, strict=True))
        except ValueError as exc:
            raise ValueError(f"expected {len(args)} items: {exc}") from None
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        chosen = next(arg for arg in args if arg is not type(None))
        return _build(chosen, value)
    if origin is Literal:
        if value not in args:
            raise ValueError(f"expected one of {', '.join(map(str, args))}")
        return value
    return _scalar(kind, value)


def _scalar(kind: Any, value: Any) -> Any:
    if kind is bool:
        if not isinstance(value, bool):
            raise ValueError("expected true or false")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int) or abs(value) > NUMBER_BOUND:
            raise ValueError("expected a whole number in range")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not abs(value) <= NUMBER_BOUND:
            raise ValueError("expected a finite number in range")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ValueError("expected text")
        return visible(value[:TEXT_CHARS], keep_lines=True)
    return value
