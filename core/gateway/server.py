"""The gateway's HTTP server: Groq's chat API for agents, each request through a core's scheduler and quota.

`POST /openai/v1/chat/completions` (plain and streamed) and `GET /openai/v1/models`
need an agent key (`Authorization: Bearer mdk_...`); `GET /healthz` does not;
anything else is a Groq-shaped 404. The key picks the agent, the default
priority and the models; `X-Medops-Priority` may raise the priority up to the
key's maximum; the deadline is `X-Medops-Deadline`, else the SDK's own read
timeout less a margin, else `request_timeout`. Bounded like the local endpoint
(core/listener.py, bounds.py). Bodies and keys are never logged; the key's name
is the client label everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from medops.core.clock import Clock, SystemClock
from medops.core.contract import CoreCommands
from medops.core.errors import MedopsError
from medops.core.gateway.bounds import Bounds, GatewayRefusal, read_json
from medops.core.gateway.headers import day_spent, frees_in, rate_limit_headers, retry_headers
from medops.core.gateway.keys import (
    LAST_USED_INTERVAL,
    AgentKey,
    KeyBook,
    KeyBookUnavailable,
    digest,
    looks_like_key,
)
from medops.core.gateway.stats import GatewayStats
from medops.core.groq.errors import CapacityExceeded, RequestRejected, UpstreamUnavailable
from medops.core.groq.quota import QuotaExhausted, RequestTooLarge, UnknownModel
from medops.core.groq.requests import Attempt, InvalidRequest, OnChunk, Priority, PromptRequest, PromptResult
from medops.core.groq.scheduler import DeadlineExceeded, QueueFull, SchedulerStopped
from medops.core.groq.wire import error_body, models_body
from medops.core.listener import CappedSite, damp_accept_errors, is_loopback_host, refusal_bytes
from medops.core.tasks import end_tasks

CHAT_PATH = "/openai/v1/chat/completions"
MODELS_PATH = "/openai/v1/models"
HEALTH_PATH = "/healthz"
MAX_CONNECTIONS = 512
MAX_DEADLINE = 3_600.0  # seconds: the longest X-Medops-Deadline taken
LOG_INTERVAL = 60.0  # seconds between two log lines about wrong keys
SHUTDOWN_GRACE = 5.0  # seconds in-flight requests get to finish when the gateway stops
_BUSY = refusal_bytes(orjson.dumps(error_body(
    "Too many open connections to this medops gateway; retry shortly, or spread agents over more gateways.",
    "server_busy", "server_busy")))
_INVALID_KEY = error_body("Invalid API Key", code="invalid_api_key")
_STOPPING = GatewayRefusal(503, error_body(
    "This medops gateway is stopping; retry, through another gateway or this one once it is back.",
    "internal_server_error", "server_stopping"), {"retry-after": "1"})
# /models' owned_by, by where the core sends requests: the models are Groq's, or the local endpoint's stand-ins.
_OWNERS = {"groq": "Groq", "local": "medops local endpoint"}
log = logging.getLogger("medops.gateway")


class GatewayError(MedopsError):
    """The gateway could not start (port taken, an address beyond loopback not asked for)."""


@dataclass(frozen=True)
class _Call:
    """One authorised chat request, as the handler carries it between its steps."""

    key: AgentKey
    model: str | None
    stream: bool


def deadline_from(headers: Mapping[str, str], default: float) -> float:
    """Seconds the request may wait and run: `X-Medops-Deadline`, else the SDK's read timeout less a margin (the
    answer must reach the SDK before it gives up), else `default` (request_timeout)."""
    asked = headers.get("X-Medops-Deadline")
    if asked is not None:
        seconds = _seconds(asked)
        if seconds is None or seconds > MAX_DEADLINE:
            raise GatewayRefusal(400, error_body(
                f"X-Medops-Deadline must be seconds, more than 0 and at most {MAX_DEADLINE:g}.",
                param="X-Medops-Deadline", code="invalid_deadline"))
        return seconds
    sdk = _seconds(headers.get("x-stainless-read-timeout", ""))
    if sdk is not None:
        margin = min(5.0, max(0.5, sdk * 0.1))
        return min(MAX_DEADLINE, sdk - margin if sdk > 2 * margin else sdk / 2)
    return default


def _seconds(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


def priority_from(headers: Mapping[str, str], key: AgentKey) -> Priority:
    """The key's default, or `X-Medops-Priority` capped at the key's maximum."""
    asked = headers.get("X-Medops-Priority")
    if asked is None:
        return key.priority
    try:
        priority = Priority.parse(asked)
    except InvalidRequest:
        raise GatewayRefusal(400, error_body("X-Medops-Priority must be critical, high or normal.",
                                             param="X-Medops-Priority", code="invalid_priority")) from None
    return min(priority, key.max_priority)


class GatewayServer:
    """Serves Groq's chat API on host:port through `core` (a started core), with keys from `keys`."""

    def __init__(self, core: CoreCommands, keys: KeyBook, *, host: str = "127.0.0.1", port: int = 8787,
                 allow_remote: bool = False, clock: Clock | None = None, bounds: Bounds | None = None,
                 max_connections: int = MAX_CONNECTIONS, key_in_flight: int | None = None,
                 stats: GatewayStats | None = None) -> None:
        if not is_loopback_host(host) and not allow_remote:
            raise GatewayError(f"the gateway listens on loopback only, not {host}; use 127.0.0.1, or let other "
                               "machines reach it explicitly with medops gateway --allow-remote (agent keys are "
                               "required either way)")
        self._core = core
        self._keys = keys
        self._host = host
        self._port = port
        self._clock = clock or SystemClock()
        self._bounds = bounds or Bounds()
        self._max_connections = max_connections
        self._key_in_flight = key_in_flight
        self.stats = stats or GatewayStats()
        self._runner: web.AppRunner | None = None
        self._site: CappedSite | None = None
        self._flush_task: asyncio.Task[None] | None = None
        self._asking: set[asyncio.Future[PromptResult]] = set()  # core.ask of each request being answered
        self._wrong_keys_since_log = 0
        self._last_wrong_key_log: float | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """Base URL for the groq SDK (the openai SDK's is this plus /openai/v1)."""
        return f"http://{self._host}:{self._port}"

    @property
    def open_connections(self) -> int:
        server = self._runner.server if self._runner is not None else None
        return len(server.connections) if server is not None else 0

    async def start(self) -> None:
        """Listen on host:port inside the running event loop; idempotent."""
        if self._runner is not None:
            return
        damp_accept_errors(self._clock)
        app = web.Application(client_max_size=self._bounds.max_body)
        app.router.add_post(CHAT_PATH, self._chat)
        app.router.add_get(MODELS_PATH, self._models)
        app.router.add_get(HEALTH_PATH, self._health)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        # A client that hangs up cancels its handler, so its request leaves the queue (or its send is
        # cancelled) at once instead of spending quota on an answer nobody reads.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_GRACE,
                               keepalive_timeout=self._bounds.head_timeout, handler_cancellation=True)
        await runner.setup()
        site = CappedSite(runner, self._host, self._port, max_connections=self._max_connections, refusal=_BUSY,
                          clock=self._clock, log=log, label="gateway")
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise GatewayError(f"the gateway cannot listen on {self._host}:{self._port} ({exc.strerror or exc}); "
                               "pick another --port or stop what uses it") from None
        self._runner, self._site = runner, site
        self._port = runner.addresses[0][1]
        self.stats.url = self.url
        self.stats.clients = lambda: self.open_connections
        self.stats.refused_connections = lambda: site.refused
        self._flush_task = asyncio.create_task(self._flush_uses(), name="medops-gateway-key-uses")

    async def stop(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Stop accepting, give requests in flight up to `grace` seconds, answer those still waiting with a
        503 (a stream ends with Groq's error event), then close every connection."""
        runner, site, self._runner, self._site = self._runner, self._site, None, None
        if runner is None:
            return
        if site is not None:
            await site.stop()
        waited = 0.0
        while self.stats.in_flight and waited < grace:
            await asyncio.sleep(0.05)
            waited += 0.05
        for asking in list(self._asking):  # out of the queue (or its send cancelled): each handler answers 503
            asking.cancel()
        await runner.cleanup()
        if self._flush_task is not None:
            await end_tasks([self._flush_task])
        await self._keys.flush()

    async def _flush_uses(self) -> None:
        # Until `stop` clears the runner, not only until the cancel: a flush keeps a store error for later, and
        # redis-py can turn a cancel landing inside its command into one; the loop would go round for ever.
        while self._runner is not None:
            await self._clock.sleep(LAST_USED_INTERVAL)
            await self._keys.flush()

    # -- handlers --------------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        running = self._core.running
        return web.json_response({"status": "ok" if running else "starting", "in_flight": self.stats.in_flight},
                                 status=200 if running else 503)

    async def _unknown(self, request: web.Request) -> web.Response:
        return _json(404, error_body(
            f"Unknown request URL: {request.method} {request.path}. Please check the URL for typos, or see the "
            "docs at https://console.groq.com/docs/", code="unknown_url"))

    async def _models(self, request: web.Request) -> web.Response:
        try:
            key = await self._authorise(request)
        except GatewayRefusal as refusal:
            return _json(refusal.status, refusal.body, refusal.headers)
        models = {name: limits for name, limits in self._core.settings.models.items() if key.allows(name)}
        owner = _OWNERS.get(self._core.snapshot().endpoint.kind, "medops")
        return _json(200, models_body(models, int(self._clock.wall()), owner))

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        try:
            key = await self._authorise(request)
        except GatewayRefusal as refusal:
            return _json(refusal.status, refusal.body, refusal.headers)
        if self._key_in_flight is not None and self.stats.in_flight_of(key.name) >= self._key_in_flight:
            return _json(429, error_body(
                f"Key {key.name!r} has {self._key_in_flight} requests in flight, its cap on this gateway; wait for "
                "one to finish (or ask the operator for a higher cap).", "requests", "key_in_flight_cap"))
        self.stats.started(key.name, key.agent)
        try:
            return await self._answer(request, key)
        finally:
            self.stats.ended(key.name)

    async def _answer(self, request: web.Request, key: AgentKey) -> web.StreamResponse:
        stream = _Stream(request)
        call: _Call | None = None
        try:
            body = await read_json(request, self._bounds)
            model = body.get("model") if isinstance(body.get("model"), str) else None
            call = _Call(key, model, body.get("stream") is True)
            stream.limits = lambda: self._headers(model)  # read when the first chunk goes out
            if model is not None and not key.allows(model):
                raise GatewayRefusal(403, error_body(
                    f"The model `{model}` is not allowed for key {key.name!r}; it may use {', '.join(key.models)}. "
                    "Ask the operator for a key with that model (medops gateway key add --models).",
                    code="model_not_allowed"))
            prompt = _prompt_request(body, key, priority_from(request.headers, key),
                                     deadline_from(request.headers, self._core.settings.request_timeout),
                                     stream.chunk if call.stream else None)
            stream.request_id = prompt.request_id
            result = await self._ask(prompt)
        except GatewayRefusal as refusal:
            return await stream.fail(refusal)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # the client hung up: aiohttp cancelled this handler
                raise
            return await stream.fail(_STOPPING)  # only the ask was cancelled: the gateway is stopping
        except ConnectionError:  # the client went away mid-stream: the core has settled; nothing to answer
            return stream.response or web.Response(status=499)
        except MedopsError as exc:
            return await stream.fail(self._refusal(exc, key, call.model if call else None))
        except Exception as exc:  # never a traceback with a body in it, never a bare 500 page
            log.error("gateway: request of key %s failed unexpectedly (%s)", key.name, type(exc).__name__)
            return await stream.fail(GatewayRefusal(500, error_body(
                "The gateway failed to answer this request; retry, and tell the operator if it persists.",
                "internal_server_error", "internal_server_error")))
        # Critical requests skip the batching window; the others spend up to batch_interval in it by design.
        gathered = 0.0 if prompt.priority is Priority.CRITICAL else self._core.settings.batch_interval
        self.stats.waited(key.name, result.queue_wait, gathered)
        self._keys.touch(key.name, self._clock.wall())
        headers = {**self._headers(call.model), **_medops_headers(prompt.request_id, result.queue_wait,
                                                                   result.attempts)}
        if result.completion.request_id:
            headers["x-request-id"] = result.completion.request_id
        if stream.response is not None:
            return await stream.finish()
        return _json(200, _completion_body(result), headers)

    async def _ask(self, prompt: PromptRequest) -> PromptResult:
        """core.ask as a task of its own, so `stop` can end what still waits once its grace is over."""
        asking = asyncio.ensure_future(self._core.ask(prompt))
        self._asking.add(asking)
        try:
            return await asking
        finally:
            self._asking.discard(asking)

    # -- keys and refusals ------------------------------------------------------------------

    async def _authorise(self, request: web.Request) -> AgentKey:
        given = request.headers.get("Authorization", "")
        secret = given[7:].strip() if given[:7].lower() == "bearer " else ""
        key: AgentKey | None = None
        if looks_like_key(secret):
            try:
                key = await self._keys.find(digest(secret))
            except KeyBookUnavailable as exc:
                raise GatewayRefusal(503, error_body(str(exc), "internal_server_error", "key_store_unavailable"),
                                     {"retry-after": "1"}) from None
        if key is None:
            self.stats.unauthorized += 1
            self._note_wrong_key(request)
            raise GatewayRefusal(401, _INVALID_KEY)
        return key

    def _note_wrong_key(self, request: web.Request) -> None:
        """Log wrong keys at most once a minute, with a count and where from (never what was sent)."""
        self._wrong_keys_since_log += 1
        now = self._clock.monotonic()
        if self._last_wrong_key_log is None or now - self._last_wrong_key_log >= LOG_INTERVAL:
            log.warning("gateway: %d requests with no key or a wrong one since the last report (latest from %s)",
                        self._wrong_keys_since_log, request.remote or "?")
            self._last_wrong_key_log, self._wrong_keys_since_log = now, 0

    def _headers(self, model: str | None) -> dict[str, str]:
        return rate_limit_headers(self._core.model_quota(model))

    def _refusal(self, exc: MedopsError, key: AgentKey, model: str | None) -> GatewayRefusal:
        """The Groq-shaped answer to an error out of the core."""
        message = str(exc)
        limits = self._headers(model)
        if isinstance(exc, DeadlineExceeded):
            self.stats.refused_at_deadline(key.name)
            quota = self._core.model_quota(model)
            wait = getattr(exc, "retry_after", None) or frees_in(quota) or self._queue_wait()
            return GatewayRefusal(429, error_body(
                f"{message}. The request waited in medops' fleet-wide queue until its deadline; retry after the "
                "time in retry-after, or send a longer X-Medops-Deadline.", "requests", "rate_limit_exceeded"),
                {**limits, **retry_headers(wait, day_window_spent=day_spent(quota))})
        if isinstance(exc, QuotaExhausted):
            quota = self._core.model_quota(model)
            return GatewayRefusal(429, error_body(message, "requests", "rate_limit_exceeded"),
                                  {**limits, **retry_headers(exc.retry_in, day_window_spent=day_spent(quota))})
        if isinstance(exc, InvalidRequest):
            return GatewayRefusal(int(getattr(exc, "status", 400)), _body(exc) or error_body(message), limits)
        if isinstance(exc, RequestRejected):
            return GatewayRefusal(exc.status, _body(exc) or error_body(exc.reason), limits)
        if isinstance(exc, RequestTooLarge):
            return GatewayRefusal(413, error_body(message, "tokens", "request_too_large"), limits)
        if isinstance(exc, UnknownModel):
            return GatewayRefusal(404, error_body(message, code="model_not_found"))
        if isinstance(exc, CapacityExceeded):
            return GatewayRefusal(498, error_body(message, "capacity_exceeded", "capacity_exceeded"), limits)
        if isinstance(exc, UpstreamUnavailable):
            status = 502 if exc.status is not None else 503
            return GatewayRefusal(status, error_body(message, "internal_server_error", "upstream_unavailable"))
        if isinstance(exc, (SchedulerStopped, QueueFull)):
            return GatewayRefusal(503, error_body(message, "internal_server_error", "server_busy"),
                                  {"retry-after": "1"})
        return GatewayRefusal(500, error_body(message, "internal_server_error", "internal_server_error"))

    def _queue_wait(self) -> float:
        """How long requests wait in this member's queue now: a retry-after when no window is spent."""
        queues = self._core.snapshot().scheduler.queues
        return max((q.wait_p50 for q in queues), default=0.0)


class _Stream:
    """A streamed answer: the SSE response starts with the first chunk, and each chunk goes out as it comes."""

    def __init__(self, request: web.Request) -> None:
        self._request = request
        self.response: web.StreamResponse | None = None
        self.request_id = ""
        self.limits: Callable[[], Mapping[str, str]] = dict  # Groq's x-ratelimit-* for the model, when known

    async def chunk(self, data: bytes, start: Attempt) -> None:
        if self.response is None:
            response = web.StreamResponse(status=200, headers={
                "Cache-Control": "no-cache", "Content-Type": "text/event-stream", **self.limits(),
                **_medops_headers(self.request_id, start.queue_wait, start.number)})
            await response.prepare(self._request)
            self.response = response
        await self.response.write(b"data: " + data + b"\n\n")

    async def finish(self) -> web.StreamResponse:
        assert self.response is not None
        await self.response.write(b"data: [DONE]\n\n")
        await self.response.write_eof()
        return self.response

    async def fail(self, refusal: GatewayRefusal) -> web.StreamResponse:
        """A JSON error if nothing was sent yet; else Groq's error event ends the stream."""
        if self.response is None:
            return _json(refusal.status, refusal.body, refusal.headers)
        with contextlib.suppress(ConnectionError):
            await self.response.write(b"data: " + orjson.dumps(refusal.body) + b"\n\n")
            await self.response.write_eof()
        return self.response


def _prompt_request(body: dict[str, Any], key: AgentKey, priority: Priority, deadline: float,
                    on_chunk: OnChunk | None) -> PromptRequest:
    """The core's request for a client's chat body, checked by the core as Groq would (issue 24)."""
    return PromptRequest.from_body(body, agent=key.agent, priority=priority, deadline=deadline, client=key.name,
                                   on_chunk=on_chunk, max_priority=key.max_priority)


def _completion_body(result: PromptResult) -> Any:
    return result.completion.body


def _body(exc: Exception) -> dict[str, Any] | None:
    """Groq's own error body an error carries (Groq's 4xx, the core's refusals shaped as Groq's), if any."""
    body = getattr(exc, "body", None)
    return body if isinstance(body, dict) else None


def _medops_headers(request_id: str, queue_wait: float, attempts: int) -> dict[str, str]:
    return {"x-medops-request-id": request_id, "x-medops-queue-wait": f"{queue_wait:.3f}",
            "x-medops-attempts": str(attempts)}


def _frozen(value: Any) -> Any:
    """The core hands answers on read-only (MappingProxyType): written as the dicts they are."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body, default=_frozen), content_type="application/json",
                        headers=dict(headers or {}))
