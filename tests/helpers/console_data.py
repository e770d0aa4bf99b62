"""Fixed data for console tests: a full `CoreSnapshot`, a core that serves it, and fleets and requests
as the console's tabs show them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from medops.core.documents.intake import Intake
from medops.core.documents.results import DocumentResult, ProgressCallback
from medops.core.errors import MedopsError
from medops.core.fleet.view import FleetView, FleetWindow, MemberRow, MemberState
from medops.core.groq.requests import PromptRequest, PromptResult
from medops.core.knowledge.entries import CodeEntry, SearchHit
from medops.core.ledger.history import AlertHistory, Before, RequestHistory
from medops.core.ledger.limit_history import LimitChangeHistory
from medops.core.ledger.metric_history import MetricHistory
from medops.core.settings.config import DEFAULT_MODELS, Settings
from medops.core.settings.paths import locate
from medops.core.snapshot import (
    Alert,
    CacheSnapshot,
    ContextPoolSnapshot,
    CoreSnapshot,
    DocumentJob,
    DocumentsSnapshot,
    EndpointInfo,
    KnowledgeSnapshot,
    LedgerSnapshot,
    ModelQuota,
    PoolSnapshot,
    PriorityQueue,
    QuotaSnapshot,
    RequestRow,
    SchedulerSnapshot,
    ServerReport,
    SlotsSnapshot,
    SystemSnapshot,
    TunerChange,
    TunerSnapshot,
    WindowUsage,
)

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def busy_snapshot(paused: bool = False) -> CoreSnapshot:
    """A core under load: quota nearly spent on one model, pools busy, two alerts."""
    windows = (WindowUsage("rpm", 27, 30, 41.5), WindowUsage("rpd", 980, 1_000, 30_512.0),
               WindowUsage("tpm", 9_100, 12_000, 12.0), WindowUsage("tpd", 97_050, 100_000, 30_512.0, 578.0))
    small = (WindowUsage("rpm", 3, 30, 55.0), WindowUsage("rpd", 120, 14_400, 70_000.0),
             WindowUsage("tpm", 800, 6_000, 55.0), WindowUsage("tpd", 41_000, 500_000, 70_000.0))
    quota = QuotaSnapshot(models=(
        ModelQuota("llama-3.3-70b-versatile", windows,
                   ServerReport(1_000, 20, 179.56, 12_000, 2_900, 7.66, NOW - 4), rate_limited=3, refused_too_large=1,
                   waiting=4),
        ModelQuota("llama-3.1-8b-instant", small),
    ), default_model="llama-3.1-8b-instant")
    scheduler = SchedulerSnapshot(queues=(PriorityQueue("critical", 0), PriorityQueue("high", 2, 0.3, 1.1),
                                          PriorityQueue("normal", 7, 2.0, 9.5)),
                                  in_flight=4, concurrency=10, completed=1_234, failed=5, rejected=2, paused=paused)
    slots = SlotsSnapshot(total=1_000, used=412, slot_bytes=10_485, bytes_used=2_811_000, largest_case=10_100,
                          overwrites=17, rejections=(("too large", 3), ("full", 0)),
                          occupied=tuple(range(0, 824, 2)), segment="medops-cases")
    contexts = ContextPoolSnapshot(pool_size=100, idle=61, active=39, created_beyond_pool=0, acquisitions=5_000,
                                   reuses=4_900, leaked=1)
    pools = (PoolSnapshot("duckdb", 10, 7, 1, 9_000, 0, 0, 0.002, 0.015),
             PoolSnapshot("cpu", 2, 2, 5, 300, 1, 0, 0.120, 0.900),
             PoolSnapshot("io", 8, 1, 0, 4_000),
             PoolSnapshot("process", 2, 1, 0, 12, 0, 1, 0.0, 0.0),
             PoolSnapshot("http", 100, 4, 0, 1_239))
    cache = CacheSnapshot("query", 640, 1_000, 7_700, 2_300, 12)
    history = tuple((NOW - 300 + i * 5, 20 + (i * 7) % 50) for i in range(61))
    memory = tuple((NOW - 300 + i * 5, 40 + i * 0.2) for i in range(61))
    system = SystemSnapshot(process_cpu=37.0, process_cpu_machine=18.5, rss_bytes=210 * 1024 * 1024, threads=23,
                            open_files=41, cpu_limit_cores=2.0, memory_used=3 << 30, memory_limit=8 << 30,
                            memory_percent=52.0, memory_source="cgroup v2", loop_lag_ms=3.2, loop_lag_p50_ms=0.4,
                            loop_lag_max_ms=7.9, cpu_percent=31.0, cpu_source="cgroup v2", sampled_at=NOW,
                            cpu_history=history, memory_history=memory)
    alerts = (Alert("loop_lag", "warning", "event-loop lag 140 ms over 100 ms", NOW - 600, 140.0, NOW - 500),
              Alert("quota_low:llama-3.3-70b-versatile", "critical", "tpd at 97% of 100k", NOW - 60, 97.0,
                    rule="quota_low", repeats=2, updated_at=NOW - 30))
    tuner = TunerSnapshot(True, (TunerChange(NOW - 120, "io_threads", 8, 12, "io queue above 4 for 30 s"),))
    documents = DocumentsSnapshot(queued=1, running=1, done=9, failed=1, pages=57,
                                  recent=(DocumentJob("d-10", "scan-0042.pdf", "running", 3, 8),
                                          DocumentJob("d-09", "broken.pdf", "failed", 0, 0, "not a PDF")))
    return CoreSnapshot(taken_at=NOW, uptime=3_725.0, endpoint=EndpointInfo("local", "http://127.0.0.1:40123", True),
                        quota=quota, scheduler=scheduler, slots=slots, contexts=contexts, pools=pools, cache=cache,
                        knowledge=KnowledgeSnapshot("ready", codes=74_719),
                        documents=documents, system=system, alerts=alerts, tuner=tuner,
                        ledger=LedgerSnapshot("read-write", rows_written=1_240), paused=paused)


def before_any_request_snapshot() -> CoreSnapshot:
    """The busy snapshot's other parts, but the Groq path as a fresh start finds it: no request sent yet."""
    models = tuple(ModelQuota(name, tuple(WindowUsage(window, 0, getattr(limits, window), 0.0)
                                          for window in ("rpm", "rpd", "tpm", "tpd")))
                   for name, limits in DEFAULT_MODELS.items())
    scheduler = SchedulerSnapshot(queues=tuple(PriorityQueue(p) for p in ("critical", "high", "normal")),
                                  concurrency=10)
    return replace(busy_snapshot(), quota=QuotaSnapshot(models, default_model="llama-3.1-8b-instant"),
                   scheduler=scheduler, alerts=())


class FrozenCoreRefuses(MedopsError):
    """What the frozen core says to a command that needs a real part."""


class FrozenCore:
    """A core that serves fixed data: every command of the contract, none with a real part behind it.

    It starts no real parts, so a frozen screenshot never depends on this machine: prompts, documents
    and searches are refused with a `FrozenCoreRefuses`, histories are empty, and the intake follows
    the default settings' rules (a real `Intake` over this test's folders).
    """

    def __init__(self, snapshot: CoreSnapshot | None = None) -> None:
        self.frozen = snapshot or busy_snapshot()
        self.running = False
        self.paused = False
        self.snapshots_taken = 0
        self.acknowledged: list[str] = []
        self.silenced: list[tuple[str, float]] = []
        self.excused: list[float] = []
        self._settings = Settings()
        self._intake = Intake.from_settings(self._settings, locate())

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def attached(self) -> bool:
        return False

    async def start(self) -> None:
        self.running = True

    async def stop(self) -> None:
        self.running = False

    def snapshot(self) -> CoreSnapshot:
        self.snapshots_taken += 1
        return replace(self.frozen, paused=self.paused, scheduler=replace(self.frozen.scheduler, paused=self.paused))

    async def wait_for_first_sample(self) -> CoreSnapshot:
        return self.snapshot()

    def pause_intake(self) -> None:
        self.paused = True

    def resume_intake(self) -> None:
        self.paused = False

    def acknowledge_alert(self, name: str) -> bool:
        self.acknowledged.append(name)
        return True

    def silence_alert(self, name: str, seconds: float) -> float:
        self.silenced.append((name, seconds))
        return self.snapshot().taken_at + seconds

    def excuse_loop_lag(self, seconds: float) -> None:
        self.excused.append(seconds)

    async def ask(self, request: PromptRequest) -> PromptResult:
        raise FrozenCoreRefuses("the frozen test core answers no prompts")

    async def extract(self, path: str | Path, case_id: str | None = None,
                      on_progress: ProgressCallback | None = None) -> DocumentResult:
        raise FrozenCoreRefuses("the frozen test core extracts no documents")

    def cancel_document(self, job_id: str) -> bool:
        return False

    def intake_folders(self) -> tuple[Path, ...]:
        return self._intake.folders

    async def complete_intake_path(self, typed: str, limit: int = 50) -> list[str]:
        return await self._intake.complete_async(typed, limit)

    async def check_intake_path(self, typed: str) -> Path:
        return await self._intake.check_async(typed, relative_to_intake=True)

    async def knowledge_ready(self) -> None:
        raise FrozenCoreRefuses("the frozen test core has no knowledge base")

    async def kb_search(self, text: str, limit: int = 20) -> tuple[SearchHit, ...]:
        raise FrozenCoreRefuses("the frozen test core has no knowledge base")

    async def kb_code(self, code: str) -> CodeEntry | None:
        raise FrozenCoreRefuses("the frozen test core has no knowledge base")

    async def kb_children(self, code: str) -> tuple[CodeEntry, ...]:
        raise FrozenCoreRefuses("the frozen test core has no knowledge base")

    def set_limit(self, key: str, value: str | int | float, by: str = "console") -> Settings:
        raise FrozenCoreRefuses("the frozen test core changes no limits")

    def unpin(self, key: str, by: str = "console") -> bool:
        return False

    async def request_history(self, before: Before | None = None, limit: int = 100, *, model: str | None = None,
                              agent: str | None = None) -> RequestHistory:
        return RequestHistory((), None, earlier_runs=True)

    async def alert_history(self, before: Before | None = None, limit: int = 100) -> AlertHistory:
        return AlertHistory((), None, earlier_runs=True)

    async def limit_change_history(self, limit: int = 50, key: str | None = None) -> LimitChangeHistory:
        return LimitChangeHistory((), earlier_runs=True)

    async def metric_history(self, span: float, max_points: int = 400,
                             end_wall: float | None = None) -> MetricHistory:
        end = NOW if end_wall is None else end_wall
        return MetricHistory(end - span, end, (), 1, 0, earlier_runs=True)


def done_snapshot(done: int) -> CoreSnapshot:
    snapshot = busy_snapshot()
    return replace(snapshot, scheduler=replace(snapshot.scheduler, completed=done))


def requests_snapshot() -> CoreSnapshot:
    """A saturated core: two requests at Groq, the rest waiting for the minute, a slot, a retry or the batch."""
    base = busy_snapshot()
    at = base.taken_at
    rows = (
        RequestRow("7f3a9c01", "triage", "", "critical", "critical", "critical", "llama-3.1-8b-instant", 1_180,
                   4.2, 25.8, "sending", "at Groq, attempt 1", attempt=1, at_groq=1.4),
        RequestRow("gw-4410", "medication", "pharmacy-bot", "high", "high", "high", "llama-3.3-70b-versatile",
                   2_300, 3.1, None, "sending", "at Groq, attempt 2", attempt=2, at_groq=0.6),
        RequestRow("c81d0e55", "diagnosis", "", "normal", "critical", "critical", "llama-3.1-8b-instant", 1_124,
                   102.0, None, "waiting", "tpm full until 00:00:41", until=at + 41, attempt=0),
        RequestRow("0b77aa10", "triage", "", "high", "high", "critical", "llama-3.1-8b-instant", 1_090, 12.5,
                   47.5, "waiting", "tpm full until 00:00:41; behind 1 critical", until=at + 41),
        RequestRow("gw-4412", "documentation", "notes-svc", "normal", "normal", "high", "openai/gpt-oss-20b", 4_096,
                   2.0, 58.0, "backoff", "retry 1 after HTTP 503 in 2 s", until=at + 2, attempt=1),
        RequestRow("a4420f19", "oncall", "", "normal", "normal", "critical", "qwen/qwen3-32b", 800, 0.1, None,
                   "batching", "batch window closes in 1 s", until=at + 1),
    )
    return replace(base, scheduler=replace(base.scheduler, requests=rows, requests_held=214))


def fixed_fleet() -> FleetView:
    """Three members as a store would list them: one busy, one paused and stale, one gone."""


    def row(name: str, host: str, pid: int, role: str, age: float, state: str, queued: tuple[int, int, int],
            done: int, rpm: int, paused: bool = False) -> MemberRow:
        return MemberRow(name, host, pid, role, "0.9.0", FLEET_READ_AT - 3_725.0 - pid, age, FLEET_READ_AT - age,
                         MemberState(state), dict(zip(("critical", "high", "normal"), queued, strict=True)), 2, done,
                         1, 3, {"rpm": rpm, "rpd": rpm * 40}, 12.0, 31.0, 40.0, 1, paused)

    members = (row("console-ward7-4121", "ward7", 4121, "console", 0.4, "alive", (0, 2, 5), 1_240, 12),
               row("worker-lab-88", "lab", 88, "worker", 7.2, "stale", (1, 0, 9), 310, 6, paused=True),
               row("worker-lab-90", "lab", 90, "worker", 14.0, "gone", (0, 0, 0), 77, 0))
    windows = (FleetWindow("llama-3.1-8b-instant", "rpm", 18, 30, {"console-ward7-4121": 12, "worker-lab-88": 6}),
               FleetWindow("llama-3.1-8b-instant", "rpd", 720, 14_400,
                           {"console-ward7-4121": 480, "worker-lab-88": 240}),
               FleetWindow("llama-3.1-8b-instant", "tpm", 9_100, 12_000, {"console-ward7-4121": 9_100}),
               FleetWindow("llama-3.1-8b-instant", "tpd", 97_050, 100_000, {"console-ward7-4121": 97_050}))
    return FleetView("redis://127.0.0.1:6379/0", FLEET_READ_AT, members, windows,
                     {"console-ward7-4121": replace(busy_snapshot(), taken_at=FLEET_READ_AT - 1)})


FLEET_READ_AT = 1_780_000_000.0


class ExtractingCore(FrozenCore):
    """Extracts any admitted file as one page of known text."""

    async def extract(self, path: Path, *, case_id: str | None = None, on_progress: Any = None) -> DocumentResult:
        return DocumentResult(job_id="d-1", name=path.name, sha256="0" * 64, kind="pdf", size=9,
                              text="Previous patient's letter.", pages=1, page_methods=("text",), warnings=(),
                              repaired=False, queued_seconds=0.0, extract_seconds=0.1, seconds=0.1)
