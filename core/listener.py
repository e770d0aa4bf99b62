"""A bounded HTTP listener: loopback unless asked, a connection cap with a clear 503, damped accept errors.

What every medops HTTP server that other processes reach (the local endpoint,
the gateway) needs so a hostile or broken neighbour cannot wear it down. The
head timeout is aiohttp's keep-alive timeout (set by the server's runner); the
body timeout and size are each server's, since each words its own refusals.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable

from aiohttp import web

from medops.core.clock import Clock

LOG_INTERVAL = 60.0  # seconds between two log lines about refused connections


def is_loopback_host(host: str) -> bool:
    """Whether a listening address is this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refusal_bytes(body: bytes) -> bytes:
    """A whole 503 answer (JSON `body`) for a connection past the cap, written before closing it."""
    return (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Retry-After: 1\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


class AcceptErrorDamper(logging.Filter):
    """Lets asyncio's "socket.accept() out of system resource" through once per LOG_INTERVAL, with a count.

    Out of descriptors, asyncio logs it, with a traceback, on every retry of every listener: a
    minute of that once filled 98 MB of log and buried what mattered.
    """

    MESSAGE = "socket.accept() out of system resource"

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self._clock = clock
        self._last: float | None = None
        self._held = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(self.MESSAGE):
            return True
        now = self._clock.monotonic()
        if self._last is not None and now - self._last < LOG_INTERVAL:
            self._held += 1
            return False
        record.msg = f"{record.msg} ({self._held} more like it since the last report; out of file descriptors?)"
        record.args = ()
        record.exc_info = None  # the same traceback every time says nothing new
        self._last, self._held = now, 0
        return True


def damp_accept_errors(clock: Clock) -> None:
    """Install one `AcceptErrorDamper` on asyncio's logger (once per process)."""
    asyncio_log = logging.getLogger("asyncio")
    if not any(isinstance(f, AcceptErrorDamper) for f in asyncio_log.filters):
        asyncio_log.addFilter(AcceptErrorDamper(clock))


class _Refusal(asyncio.Protocol):
    """A connection past the cap: told so in one 503 and closed, never parsed."""

    def __init__(self, answer: bytes) -> None:
        self._answer = answer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(self._answer)
        transport.close()


class CappedSite(web.TCPSite):
    """A TCP site that serves at most `max_connections` at once; past that a new one gets `refusal` and is closed.

    Refusals are counted (`refused`) and logged at most once per LOG_INTERVAL on `log`, as `label`.
    """

    def __init__(self, runner: web.AppRunner, host: str, port: int, *, max_connections: int, refusal: bytes,
                 clock: Clock, log: logging.Logger, label: str,
                 on_refused: Callable[[], None] | None = None) -> None:
        super().__init__(runner, host, port)
        self._app_runner = runner
        self._max_connections = max_connections
        self._refusal = refusal
        self._clock = clock
        self._log = log
        self._label = label
        self._on_refused = on_refused
        self._refused_since_log = 0
        self._last_refusal_log: float | None = None
        self.refused = 0

    async def start(self) -> None:
        await web.BaseSite.start(self)
        self._server = await asyncio.get_running_loop().create_server(
            self._connection, self._host, self._port, backlog=self._backlog)
        self._bound_port = self._server.sockets[0].getsockname()[1]

    @property
    def open_connections(self) -> int:
        """Connections being served now (refused ones not counted)."""
        server = self._app_runner.server
        return len(server.connections) if server is not None else 0

    def _connection(self) -> asyncio.BaseProtocol:
        """The protocol for a new connection: aiohttp's, or a refusal past `max_connections`."""
        server = self._app_runner.server
        assert server is not None
        if len(server.connections) < self._max_connections:
            return server()
        self.refused += 1
        if self._on_refused is not None:
            self._on_refused()
        self._refused_since_log += 1
        now = self._clock.monotonic()
        if self._last_refusal_log is None or now - self._last_refusal_log >= LOG_INTERVAL:
            self._log.warning("%s: %d connections open (the cap); refused %d new ones since the last report",
                              self._label, len(server.connections), self._refused_since_log)
            self._last_refusal_log, self._refused_since_log = now, 0
        return _Refusal(self._refusal)
