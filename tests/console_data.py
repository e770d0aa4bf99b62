"""Fixed data for console tests: a full `CoreSnapshot` and a core that serves it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from medops.core.documents.intake import Intake
from medops.core.documents.results import DocumentResult, ProgressCallback
from medops.core.errors import MedopsError
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
