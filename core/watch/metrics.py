"""OpenMetrics at /metrics: the snapshot's figures and every finished request, named as Prometheus expects.

prometheus-client does the exposition (text and OpenMetrics formats, escaping,
`_total`/`_bucket` suffixes); this module decides what to expose. Gauges and
the counters the core already keeps are read from one `CoreSnapshot` at each
scrape, on the core's own event loop (served by aiohttp there, so a scrape never
races the parts); latency and queue-wait histograms and the request counter are
fed by each finished request. Labels are bounded sets (model, dimension,
priority, outcome, pool, level, and client: the gateway key a request came
through, the first `CLIENTS_NAMED` names and then "other"); nothing per
request, nothing from a prompt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from medops.core.errors import ConfigError
from medops.core.ledger.records import RequestRecord
from medops.core.listener import is_loopback_host
from medops.core.snapshot import CoreSnapshot

log = logging.getLogger(__name__)

WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
DIMENSIONS = {"rpm": "requests_per_minute", "rpd": "requests_per_day", "tpm": "tokens_per_minute",
              "tpd": "tokens_per_day"}
CLIENTS_NAMED = 50  # gateway keys named in the client label; requests of any later key count as "other"
OTHER_CLIENTS = "other"


class SnapshotCollector(Collector):
    """Every gauge and kept counter, from the snapshot taken at this scrape."""

    def __init__(self, snapshot: Callable[[], CoreSnapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        s = self._snapshot()
        used = GaugeMetricFamily("medops_quota_used", "Groq quota in use: requests or tokens counted in the window "
                                 "(the fleet's, when a store is set)", labels=["model", "dimension"])
        limit = GaugeMetricFamily("medops_quota_limit", "Groq quota limit of the window",
                                  labels=["model", "dimension"])
        own = GaugeMetricFamily("medops_quota_instance_used", "This instance's part of the window's use (fleet)",
                                labels=["model", "dimension"])
        blocked = GaugeMetricFamily("medops_quota_blocked_seconds", "Seconds a 429 still blocks the dimension",
                                    labels=["model", "dimension"])
        limited = CounterMetricFamily("medops_rate_limited", "429 answers from Groq", labels=["model"])
        over = CounterMetricFamily("medops_capacity_exceeded", "498 answers (Groq over capacity)", labels=["model"])
        for model in s.quota.models:
            for window in model.windows:
                labels = [model.model, DIMENSIONS.get(window.name, window.name)]
                used.add_metric(labels, window.used)
                limit.add_metric(labels, window.limit)
                blocked.add_metric(labels, window.blocked_for)
                if window.own is not None:
                    own.add_metric(labels, window.own)
            limited.add_metric([model.model], model.rate_limited)
            over.add_metric([model.model], model.capacity_exceeded)
        yield from (used, limit, own, blocked, limited, over)

        depth = GaugeMetricFamily("medops_queue_depth", "Requests waiting, by priority", labels=["priority"])
        for queue in s.scheduler.queues:
            depth.add_metric([queue.priority], queue.depth)
        yield depth
        yield GaugeMetricFamily("medops_requests_in_flight", "Groq requests in flight", value=s.scheduler.in_flight)
        yield GaugeMetricFamily("medops_requests_concurrency_limit", "Groq requests allowed in flight at once",
                                value=s.scheduler.concurrency)
        yield CounterMetricFamily("medops_retries", "Attempts after a 5xx, timeout, connection error or 498",
                                  value=s.scheduler.retried)
        yield GaugeMetricFamily("medops_intake_paused", "1 while the core's intake is paused", value=int(s.paused))

        pools = {name: GaugeMetricFamily(f"medops_pool_{name}", text, labels=["pool"]) for name, text in (
            ("active", "Workers busy"), ("capacity", "Workers available in all"), ("queued", "Jobs waiting"))}
        for pool in s.pools:
            pools["active"].add_metric([pool.name], pool.active)
            pools["capacity"].add_metric([pool.name], pool.capacity)
            pools["queued"].add_metric([pool.name], pool.queued)
        yield from pools.values()

        system = s.system
        yield GaugeMetricFamily("medops_event_loop_lag_p99_seconds", "Event-loop lag, 99th percentile of the "
                                "recent window", value=system.loop_lag_ms / 1000)
        yield GaugeMetricFamily("medops_cpu_usage_ratio", "Busy share of the machine's (or cgroup's) CPU",
                                value=system.cpu_percent / 100)
        yield GaugeMetricFamily("medops_memory_usage_ratio", "Memory in use of the host's (or cgroup's) limit",
                                value=system.memory_percent / 100)
        yield GaugeMetricFamily("medops_case_slots_used", "Case memory slots in use", value=s.slots.used)
        yield GaugeMetricFamily("medops_case_slots", "Case memory slots in all", value=s.slots.total)

        alerts = GaugeMetricFamily("medops_alerts_open", "Open alerts, by level", labels=["level"])
        for level in ("warning", "critical"):
            alerts.add_metric([level], sum(1 for a in s.alerts if a.cleared_at is None and a.level == level))
        yield alerts

        store = s.quota.store
        if store is not None:
            yield GaugeMetricFamily("medops_quota_store_up", "1 while the fleet's quota store answers",
                                    value=int(store.state != "down"))
            yield GaugeMetricFamily("medops_quota_store_members", "Fleet members alive, as last seen",
                                    value=store.members_alive)
            yield GaugeMetricFamily("medops_quota_store_round_trip_p99_seconds", "Store round trip, p99",
                                    value=store.rtt_p99_ms / 1000)
            yield GaugeMetricFamily("medops_quota_store_clock_skew_seconds", "Store clock minus ours",
                                    value=store.clock_skew)


class ClientLabels:
    """The `client` label of a request: its gateway key's name while at most `named` names are in use, else
    "other", so however many keys are made a scrape's series stay bounded ("": not through a gateway)."""

    def __init__(self, named: int = CLIENTS_NAMED) -> None:
        self._named = named
        self._seen: set[str] = set()

    def __call__(self, client: str) -> str:
        if not client or client in self._seen:
            return client
        if len(self._seen) >= self._named:
            return OTHER_CLIENTS
        self._seen.add(client)
        return client


class RequestMetrics:
    """Finished requests as a counter and two histograms (a `RequestRecorder` beside the ledger)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._clients = ClientLabels()
        self._requests = Counter("medops_requests", "Finished Groq requests",
                                 ["model", "priority", "outcome", "client"], registry=registry)
        self._latency = Histogram("medops_request_latency_seconds", "Submit to answer (or failure), queueing "
                                  "included", ["priority"], buckets=WAIT_BUCKETS, registry=registry)
        self._wait = Histogram("medops_request_queue_wait_seconds", "Submit to first send", ["priority"],
                               buckets=WAIT_BUCKETS, registry=registry)

    def record_request(self, record: RequestRecord) -> None:
        self._requests.labels(record.model, record.priority, record.outcome, self._clients(record.client)).inc()
        self._latency.labels(record.priority).observe(max(0.0, record.latency))
        self._wait.labels(record.priority).observe(max(0.0, record.queue_wait))


class MetricsServer:
    """/metrics on `host:port` (127.0.0.1 unless asked), in the core's event loop."""

    def __init__(self, snapshot: Callable[[], CoreSnapshot], host: str, port: int,
                 allow_remote: bool = False) -> None:
        """`allow_remote`: serve on a `host` other machines reach (else `start` refuses it: /metrics has no
        authentication, and shows the quota, queues and alerts to whoever reaches it)."""
        self._allow_remote = allow_remote
        self.registry = CollectorRegistry()
        self.registry.register(SnapshotCollector(snapshot))
        self.requests = RequestMetrics(self.registry)
        self._host, self._port = host, port
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        """Serve /metrics; `ConfigError` when the port cannot be opened or the host is not loopback unasked."""
        if not is_loopback_host(self._host) and not self._allow_remote:
            raise ConfigError(f"metrics_host = {self._host!r} lets other machines read /metrics, which has no "
                              "authentication: use 127.0.0.1 (the default), or set metrics_allow_remote = true "
                              "(MEDOPS_METRICS_ALLOW_REMOTE=1) to serve it on that address anyway")
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self._host, self._port).start()
        except OSError as exc:
            await self.stop()
            raise ConfigError(f"metrics_port {self._port} on {self._host} cannot be opened ({exc.strerror}); "
                              "choose a free port, or 0 to serve no metrics") from None
        port = self._runner.addresses[0][1]
        self.url = f"http://{self._host}:{port}/metrics"
        log.info("metrics at %s", self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encoder(self.registry), headers={"Content-Type": content_type})
