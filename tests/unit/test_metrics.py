"""/metrics: what a Prometheus scrape gets, checked with the official parsers (text and OpenMetrics)."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from medops.core.errors import ConfigError
from medops.core.groq.requests import Priority, PromptRequest
from medops.core.ledger.records import RequestRecord
from medops.core.resource_core import ResourceCore
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations
from medops.core.watch.metrics import CLIENTS_NAMED, RequestMetrics
from tests.helpers.redis_server import free_port

SECRET = "zq-marker-4471 patient Jane Roe MRN 0098812"


@pytest.mark.usefixtures("knowledge_ready")
async def test_a_scrape_names_every_figure_by_prometheus_conventions(locations: Locations) -> None:
    core = ResourceCore(Settings(metrics_port=free_port()), locations)
    await core.start()
    try:
        await core.ask(PromptRequest(SECRET, "triage", Priority.CRITICAL, max_completion_tokens=20))
        assert core.metrics_url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient() as client:
            text = (await client.get(core.metrics_url)).text
            openmetrics = (await client.get(core.metrics_url,
                                            headers={"Accept": "application/openmetrics-text"})).text
    finally:
        await core.stop()
    families = {f.name: f for f in parse_text(text)}
    strict = {f.name: f for f in parse_openmetrics(openmetrics)}  # the strict parser: raises on any fault
    assert set(strict) <= set(families)  # the text format lists _created samples as families of their own
    assert families["medops_requests"].type == "counter"
    assert [(s.name, s.labels["outcome"], s.value) for s in families["medops_requests"].samples
            if s.name.endswith("_total")] == [("medops_requests_total", "ok", 1.0)]
    assert families["medops_request_latency_seconds"].type == "histogram"
    quota = {(s.labels["model"], s.labels["dimension"]): s.value for s in families["medops_quota_used"].samples}
    assert quota[("llama-3.1-8b-instant", "requests_per_minute")] == 1
    for name in ("medops_queue_depth", "medops_requests_in_flight", "medops_rate_limited", "medops_retries",
                 "medops_pool_active", "medops_event_loop_lag_p99_seconds", "medops_case_slots_used",
                 "medops_alerts_open", "medops_capacity_exceeded"):
        assert name in families, name
    assert "Jane Roe" not in text and "zq-marker" not in text


async def test_a_metrics_port_taken_is_refused_with_what_to_do(locations: Locations) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        core = ResourceCore(Settings(metrics_port=taken.getsockname()[1]), locations)
        with pytest.raises(ConfigError, match=r"metrics_port \d+ on 127\.0\.0\.1 cannot be opened"):
            await core.start()
        await core.stop()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7"])
async def test_a_metrics_host_other_machines_reach_is_refused_unless_allowed(locations: Locations,
                                                                              host: str) -> None:
    core = ResourceCore(Settings(metrics_port=free_port(), metrics_host=host), locations)
    with pytest.raises(ConfigError, match=rf"metrics_host = '{host}' lets other machines read /metrics.*"
                                          "metrics_allow_remote = true"):
        await core.start()
    await core.stop()


@pytest.mark.usefixtures("knowledge_ready")
async def test_metrics_allow_remote_serves_on_every_address(locations: Locations) -> None:
    port = free_port()
    core = ResourceCore(Settings(metrics_port=port, metrics_host="0.0.0.0", metrics_allow_remote=True), locations)
    await core.start()
    try:
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{port}/metrics")).status_code == 200
    finally:
        await core.stop()


def test_the_gateway_key_is_the_client_label_bounded_to_the_first_names_then_other() -> None:
    registry = CollectorRegistry()
    metrics = RequestMetrics(registry)
    keys = [f"agent-{n}" for n in range(CLIENTS_NAMED + 10)]
    for client in ["", *keys, keys[0]]:
        metrics.record_request(RequestRecord(at_wall=0.0, agent="triage", priority="normal", model="m",
                                             prompt_tokens=1, completion_tokens=1, latency=0.1, queue_wait=0.0,
                                             outcome="ok", client=client))
    counts = {s.labels["client"]: s.value for f in parse_text(generate_latest(registry).decode())
              if f.name == "medops_requests" for s in f.samples if s.name == "medops_requests_total"}
    assert len(counts) == CLIENTS_NAMED + 2  # the named keys, "other", and "" for requests not via a gateway
    assert (counts["agent-0"], counts["other"], counts[""]) == (2, 10, 1)
    assert f"agent-{CLIENTS_NAMED}" not in counts
