"""The local endpoint against a hostile neighbour: deep JSON, half-open and piled-up connections, remote binds."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import httpx
import pytest

from medops.console.cli import main
from medops.core import listener
from medops.core.clock import FakeClock
from medops.core.groq.local import server
from medops.core.groq.local.faults import FaultModes
from medops.core.groq.local.server import EndpointError, LocalEndpoint
from medops.core.settings.config import DEFAULT_MODELS
from tests.helpers.endpoint_thread import EndpointThread
from tests.helpers.waiting import wait_for

CHAT = "/openai/v1/chat/completions"
MODEL = "llama-3.1-8b-instant"
INSTANT = FaultModes(latency_scale=0.0)


@pytest.fixture
def endpoint() -> Iterator[LocalEndpoint]:
    with EndpointThread(LocalEndpoint(DEFAULT_MODELS, faults=INSTANT, max_connections=3,
                                      head_timeout=1.0)) as running:
        yield running


def connect(endpoint: LocalEndpoint) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", endpoint.port), timeout=20)
    return sock


def test_deeply_nested_json_is_a_400_not_a_500(endpoint: LocalEndpoint) -> None:
    body = b'{"model": "' + MODEL.encode() + b'", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    answer = httpx.post(endpoint.url + CHAT, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert "nested too deeply" in answer.json()["error"]["message"]


def test_a_connection_that_never_finishes_its_request_head_is_closed(endpoint: LocalEndpoint) -> None:
    with connect(endpoint) as sock:
        sock.sendall(b"POST " + CHAT.encode() + b" HTTP/1.1\r\nHost: x\r\n")  # and nothing more
        assert sock.recv(1024) == b""  # closed by the endpoint (recv would time out after 20 s otherwise)


def test_a_request_whose_body_never_comes_is_answered_408(endpoint: LocalEndpoint,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "BODY_TIMEOUT", 0.5)
    with connect(endpoint) as sock:
        sock.sendall(b"POST " + CHAT.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        assert sock.recv(1024).startswith(b"HTTP/1.1 408")


def test_past_the_connection_cap_a_new_connection_is_refused_clearly_and_served_again_later(
        endpoint: LocalEndpoint, caplog: pytest.LogCaptureFixture) -> None:
    idle = [connect(endpoint) for _ in range(3)]
    assert wait_for(lambda: endpoint.open_connections == 3)
    with caplog.at_level(logging.WARNING, logger="medops.endpoint"):
        refusals = []
        for _ in range(20):
            with connect(endpoint) as extra:
                refusals.append(extra.recv(4096))
    assert all(r.startswith(b"HTTP/1.1 503") and b"Too many open connections" in r for r in refusals)
    assert endpoint.stats.refused_connections == 20
    assert len([r for r in caplog.records if "refused" in r.getMessage()]) == 1  # not one line per connection
    idle.pop().close()
    assert wait_for(lambda: endpoint.open_connections == 2)
    answer = httpx.post(endpoint.url + CHAT, json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 200
    for sock in idle:
        sock.close()


def test_listening_beyond_loopback_must_be_asked_for_and_needs_a_key() -> None:
    with pytest.raises(EndpointError, match=r"loopback only, not 0\.0\.0\.0"):
        LocalEndpoint(DEFAULT_MODELS, host="0.0.0.0")
    with pytest.raises(EndpointError, match="needs a key"):
        LocalEndpoint(DEFAULT_MODELS, host="0.0.0.0", allow_remote=True)
    assert LocalEndpoint(DEFAULT_MODELS, host="0.0.0.0", allow_remote=True, api_key="gsk_k").url.startswith("http")


def test_the_endpoint_command_refuses_a_remote_host_unless_asked_with_a_key(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["endpoint", "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "loopback only" in capsys.readouterr().err
    assert main(["endpoint", "--host", "0.0.0.0", "--port", "0", "--allow-remote"]) == 2
    assert "needs a key" in capsys.readouterr().err


async def test_accept_errors_out_of_descriptors_are_logged_once_a_minute_not_each_time(clock: FakeClock) -> None:
    damper = listener.AcceptErrorDamper(clock)
    accept_log = logging.getLogger("asyncio-under-test")
    accept_log.addFilter(damper)
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    accept_log.addHandler(handler)
    try:
        for _ in range(1000):  # what asyncio logs on each retry while descriptors are exhausted
            accept_log.error("socket.accept() out of system resource", exc_info=OSError(24, "Too many open files"))
            await clock.advance(0.1)
        accept_log.error("something else")
    finally:
        accept_log.removeHandler(handler)
    accept_errors = [r for r in seen if "out of system resource" in r.getMessage()]
    assert len(accept_errors) == 2  # at 0 s and after 60 s, of 1,000 over 100 s
    assert "more like it" in accept_errors[-1].getMessage() and accept_errors[-1].exc_info is None
    assert seen[-1].getMessage() == "something else"
