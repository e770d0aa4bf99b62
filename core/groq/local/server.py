"""The local endpoint: a Groq-compatible HTTP server on loopback.

medops' offline default and its test double. `POST /openai/v1/chat/completions`
(plain and `stream: true`) and `GET /openai/v1/models` in Groq's wire format,
with per-model limits, `x-ratelimit-*` headers on every completion answer,
429/413/401/404/400 as Groq words them, and fault modes. An injected 5xx or 498
comes after the limits admitted the request and counts against rpm and rpd (not
the tokens), as Groq counts every request that reaches it. It runs inside the
caller's event loop (`start()`/`stop()`): the core's, or `medops endpoint`'s own.

It cannot be worn down: a connection that has not sent a whole request head
within `HEAD_TIMEOUT` of connecting (or of its last answer) is closed, a body
must arrive within `BODY_TIMEOUT`, past `max_connections` open connections a
new one gets a 503 and is closed, and refusals are logged at most once a
minute. It listens on loopback unless another address is asked for explicitly
(`allow_remote`), and then only with a key.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web

from medops.core.clock import Clock, SystemClock
from medops.core.errors import GroqError
from medops.core.groq.chat import OWN_FIELDS, Chat, ChatRefused, check_model_features, parse_chat
from medops.core.groq.local.faults import FaultDice, FaultModes
from medops.core.groq.local.prompt_cache import PromptCache
from medops.core.groq.local.replies import reply_to
from medops.core.groq.local.windows import Admission, EndpointLimiter, Refusal
from medops.core.groq.rate_headers import format_go_duration
from medops.core.groq.wire import (
    Answer,
    completion_body,
    count_prompt_tokens,
    error_body,
    models_body,
    rate_limit_body,
    stream_chunks,
    too_large_body,
)
from medops.core.listener import CappedSite, damp_accept_errors, is_loopback_host, refusal_bytes
from medops.core.settings.config import ModelLimits

CHAT_PATH = "/openai/v1/chat/completions"
MODELS_PATH = "/openai/v1/models"
OWNER = "medops local endpoint"  # /models' owned_by: these models are served by no real provider
SHUTDOWN_GRACE = 1.0  # seconds in-flight answers get when the endpoint stops
HEAD_TIMEOUT = 10.0  # seconds a connection has to send a whole request head (also the keep-alive timeout)
BODY_TIMEOUT = 10.0  # seconds a request has to send its body once its head is in
# Well under the usual 1,024-descriptor limit, so the endpoint cannot starve the core it runs in.
MAX_CONNECTIONS = 256
_REFUSAL = refusal_bytes(json.dumps(error_body(
    "Too many open connections to the local endpoint; retry shortly.", "server_busy", "server_busy")).encode())
log = logging.getLogger("medops.endpoint")
_ERROR_TEXT = {
    500: ("Internal Server Error", "internal_server_error"),
    502: ("Bad Gateway", "internal_server_error"),
    503: ("Service Unavailable", "internal_server_error"),
    498: ("Flex tier capacity exceeded. This is a known issue and we're working on a fix.", "capacity_exceeded"),
}


class EndpointError(GroqError):
    """The local endpoint could not start (port taken, bad address...)."""


@dataclass(frozen=True)
class EndpointStats:
    """What the endpoint has answered so far, by kind."""

    requests: int = 0
    answered: int = 0
    streamed: int = 0
    rate_limited: int = 0  # 429s sent
    too_large: int = 0  # 413s sent
    unauthorized: int = 0
    bad_requests: int = 0  # 400s and 404s
    injected_errors: int = 0  # 5xx and 498 from the fault modes
    dropped: int = 0  # connections closed while refusing
    hung_up: int = 0  # streams whose client left before the end
    in_flight: int = 0
    refused_connections: int = 0  # turned away past max_connections


class _BadRequest(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body


class LocalEndpoint:
    """A Groq-compatible server on loopback with its own limits and fault modes.

    `api_key` None accepts any key; a key makes every other one a 401.
    """

    def __init__(self, models: Mapping[str, ModelLimits], *, host: str = "127.0.0.1", port: int = 0,
                 api_key: str | None = None, clock: Clock | None = None, faults: FaultModes | None = None,
                 seed: int = 0, allow_remote: bool = False, max_connections: int = MAX_CONNECTIONS,
                 head_timeout: float = HEAD_TIMEOUT) -> None:
        if not is_loopback_host(host):
            if not allow_remote:
                raise EndpointError(f"the local endpoint listens on loopback only, not {host}; use 127.0.0.1 "
                                    "(endpoint_host, --host), or ask for other machines to reach it explicitly "
                                    "with medops endpoint --allow-remote --require-key")
            if not api_key:
                raise EndpointError(f"listening on {host} (beyond this machine) needs a key: set GROQ_API_KEY "
                                    "and pass --require-key, so only clients with it are answered")
        self._max_connections = max_connections
        self._head_timeout = head_timeout
        self._clock = clock or SystemClock()
        self._host = host
        self._port = port
        self._api_key = api_key
        self._limiter = EndpointLimiter(models, self._clock)
        self._faults = faults or FaultModes()
        self._dice = FaultDice(seed)
        self._stats = EndpointStats()
        self._prompt_cache = PromptCache(self._clock)
        self._forced: list[int] = []  # statuses the next chat requests get, in order
        self._runner: web.AppRunner | None = None
        self._site: CappedSite | None = None

    # -- lifecycle -----------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._runner is not None

    @property
    def port(self) -> int:
        """The bound port (the chosen one once started with port 0)."""
        return self._port

    @property
    def url(self) -> str:
        """Base URL for the groq SDK (it appends /openai/v1/...)."""
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        """Listen on host:port inside the running event loop; idempotent."""
        if self._runner is not None:
            return
        damp_accept_errors(self._clock)
        app = web.Application()
        app.router.add_post(CHAT_PATH, self._chat)
        app.router.add_get(MODELS_PATH, self._models)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        # aiohttp's keep-alive timer runs from connect (and from each answer) until a whole request
        # head is in: set to HEAD_TIMEOUT it is the read timeout for heads, a half-open connection's end.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_GRACE,
                               keepalive_timeout=self._head_timeout)
        await runner.setup()
        self._runner = runner
        try:
            await self._listen()
        except BaseException:
            self._runner = None
            await runner.cleanup()
            raise

    async def _listen(self) -> None:
        assert self._runner is not None
        site = CappedSite(self._runner, self._host, self._port, max_connections=self._max_connections,
                          refusal=_REFUSAL, clock=self._clock, log=log, label="local endpoint",
                          on_refused=lambda: self._count(refused_connections=1))
        try:
            await site.start()
        except OSError as exc:
            raise EndpointError(f"the local endpoint cannot listen on {self._host}:{self._port} "
                                f"({exc.strerror or exc}); pick another port or stop what uses it") from None
        self._site = site
        self._port = self._runner.addresses[0][1]

    @property
    def open_connections(self) -> int:
        """Connections being served now (refused ones not counted)."""
        server = self._runner.server if self._runner is not None else None
        return len(server.connections) if server is not None else 0

    async def stop(self) -> None:
        """Stop listening and close connections; in-flight answers get a short grace."""
        runner, self._runner, self._site = self._runner, None, None
        if runner is not None:
            await runner.cleanup()

    # -- controls ------------------------------------------------------------------

    @property
    def faults(self) -> FaultModes:
        return self._faults

    async def set_faults(self, faults: FaultModes) -> None:
        """Change the fault modes; refusing connections closes or reopens the listener."""
        was_refusing = self._faults.refuse_connections
        self._faults = faults
        if self._runner is None or was_refusing == faults.refuse_connections:
            return
        if faults.refuse_connections and self._site is not None:
            await self._site.stop()
            self._site = None
        elif not faults.refuse_connections:
            await self._listen()

    def fail_next(self, count: int, status: int = 503) -> None:
        """Answer the next `count` admitted chat requests with `status` (a 5xx or 498), then recover.

        A request refused first (429, 413, 400...) does not use one up: limits are checked on arrival.
        """
        if status not in _ERROR_TEXT:
            raise ValueError(f"status {status} is not one the endpoint injects; use one of {sorted(_ERROR_TEXT)}")
        self._forced.extend([status] * count)

    def set_limits(self, model: str, limits: ModelLimits) -> None:
        """Change one model's limits (or serve a new model)."""
        self._limiter.set_limits(model, limits)

    @property
    def models(self) -> Mapping[str, ModelLimits]:
        return self._limiter.models

    @property
    def stats(self) -> EndpointStats:
        return self._stats

    def _count(self, **changes: int) -> None:
        self._stats = replace(self._stats, **{k: getattr(self._stats, k) + v for k, v in changes.items()})

    # -- handlers ------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        self._count(requests=1, in_flight=1)
        try:
            return await self._answer_chat(request)
        except _BadRequest as bad:
            counter = "unauthorized" if bad.status == 401 else "bad_requests"
            self._count(**{counter: 1})
            return web.json_response(bad.body, status=bad.status)
        except RecursionError:  # a body nested past what checking it can walk: still the client's fault
            self._count(bad_requests=1)
            return web.json_response(error_body("The request body is nested too deeply.", code="json_invalid"),
                                     status=400)
        finally:
            self._count(in_flight=-1)

    async def _answer_chat(self, request: web.Request) -> web.StreamResponse:
        if self._faults.refuse_connections:
            return self._drop(request)
        self._check_key(request)
        body = await self._json_body(request)
        model, chat, max_tokens, stream = self._parse_chat(body)
        limits = self._limiter.limits(model)
        assert limits is not None
        try:
            check_model_features(chat, model, vision=limits.vision, reasoning=limits.reasoning)
        except ChatRefused as refused:
            raise _BadRequest(refused.status, refused.body) from None
        prompt_tokens = count_prompt_tokens(chat.messages, chat.params)
        if prompt_tokens + (max_tokens or 0) > limits.context_window:
            raise _BadRequest(400, error_body(
                f"Please reduce the length of the messages or completion: {prompt_tokens} prompt tokens plus "
                f"max_completion_tokens {max_tokens or 0} exceed the context window of {limits.context_window} "
                f"tokens for model `{model}`.", param="messages", code="context_length_exceeded"))

        reply = reply_to(model, chat, max_tokens or limits.context_window - prompt_tokens, limits.reasoning)
        completion_tokens = reply.completion_tokens
        fate = self._dice.draw(self._faults, prompt_tokens, completion_tokens)

        reserved = prompt_tokens + (max_tokens or completion_tokens)
        if reserved > limits.tpm:
            self._count(too_large=1)
            return web.json_response(too_large_body(model, limits.tpm, reserved), status=413,
                                     headers=self._limiter.headers(model))
        admitted = self._limiter.admit(model, reserved)
        if isinstance(admitted, Refusal):
            return self._rate_limited(model, admitted)
        if self._forced:
            fate = replace(fate, status=self._forced.pop(0))
        if fate.status is not None:
            return await self._inject_failure(model, admitted, fate.status, fate.timing.queue_time)
        return await self._reply(request, admitted, Answer(
            completion_id=f"chatcmpl-{uuid.uuid4()}",
            request_id=f"req_{uuid.uuid4().hex[:26]}",
            created=int(self._clock.wall()),
            model=model,
            text=reply.content or "",
            finish_reason=reply.finish_reason,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            timing=fate.timing,
            cached_tokens=self._prompt_cache.cached(model, list(chat.messages), prompt_tokens),
            tool_calls=reply.tool_calls,
            reasoning=reply.reasoning,
            reasoning_tokens=reply.reasoning_tokens,
            service_tier=chat.tier,
        ), fate.delay, stream)

    async def _inject_failure(self, model: str, admission: Admission, status: int, delay: float) -> web.Response:
        """A 5xx or 498 from the fault modes, for a request already admitted.

        Groq stamps a request on arrival, so a failed one stays counted in the request windows (rpm, rpd),
        as medops' quota counts every attempt; it used no tokens, so its reservation is given back.
        """
        await self._clock.sleep(delay)
        self._limiter.settle(admission, 0)
        self._count(injected_errors=1)
        message, code = _ERROR_TEXT[status]
        return web.json_response(error_body(message, code, code), status=status, headers=self._limiter.headers(model))

    async def _reply(self, request: web.Request, admission: Admission, answer: Answer, delay: float,
                     stream: bool) -> web.StreamResponse:
        # A stream starts once the prompt is read and spreads the completion time over its pieces, as Groq's does.
        generating = min(delay, answer.timing.completion_time) if stream else 0.0
        await self._clock.sleep(delay - generating)
        # As Groq does: cached prompt tokens do not count against the token limits once processed.
        self._limiter.settle(admission, answer.prompt_tokens + answer.completion_tokens - answer.cached_tokens)
        headers = {**self._limiter.headers(answer.model), "x-request-id": answer.request_id}
        if not stream:
            self._count(answered=1)
            return web.json_response(completion_body(answer), headers=headers)
        response = web.StreamResponse(status=200, headers={**headers, "Cache-Control": "no-cache"})
        response.content_type = "text/event-stream"
        await response.prepare(request)
        chunks = list(stream_chunks(answer))
        try:
            for chunk in chunks:
                if generating:
                    await self._clock.sleep(generating / len(chunks))
                await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except ConnectionError:  # the client hung up mid-stream: its answer ends here, quietly (Groq's does too)
            self._count(hung_up=1)
            return response
        self._count(answered=1, streamed=1)
        return response

    def _rate_limited(self, model: str, refusal: Refusal) -> web.Response:
        self._count(rate_limited=1)
        retry_after = max(1, math.ceil(refusal.retry_in))
        body = rate_limit_body(model, refusal.dimension, refusal.limit, refusal.used, refusal.requested,
                               format_go_duration(round(refusal.retry_in, 3)))
        headers = {**self._limiter.headers(model), "retry-after": str(retry_after)}
        return web.json_response(body, status=429, headers=headers)

    def _drop(self, request: web.Request) -> web.Response:
        """Close the connection without answering, as a refusing server would."""
        self._count(dropped=1)
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=503)

    async def _models(self, request: web.Request) -> web.StreamResponse:
        if self._faults.refuse_connections:
            return self._drop(request)
        try:
            self._check_key(request)
        except _BadRequest as bad:
            self._count(unauthorized=1)
            return web.json_response(bad.body, status=bad.status)
        return web.json_response(models_body(self._limiter.models, int(self._clock.wall()), OWNER))

    async def _unknown(self, request: web.Request) -> web.Response:
        return web.json_response(error_body(
            f"Unknown request URL: {request.method} {request.path}. Please check the URL for typos, "
            "or see the docs at https://console.groq.com/docs/", code="unknown_url"), status=404)

    # -- request checks ------------------------------------------------------------

    def _check_key(self, request: web.Request) -> None:
        if self._api_key is None:
            return
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), self._api_key.encode()):
            raise _BadRequest(401, error_body("Invalid API Key", code="invalid_api_key"))

    async def _json_body(self, request: web.Request) -> dict[str, Any]:
        try:
            async with asyncio.timeout(BODY_TIMEOUT):
                raw = await request.read()
        except TimeoutError:
            raise _BadRequest(408, error_body(f"The request body did not arrive within {BODY_TIMEOUT:g} s.",
                                              code="request_timeout")) from None
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise _BadRequest(400, error_body("The request body is not valid JSON. Send a JSON object.",
                                              code="json_invalid")) from None
        except RecursionError:  # nested deeper than the parser goes: the client's fault, not a 500
            raise _BadRequest(400, error_body("The request body is nested too deeply. Send a flat JSON object.",
                                              code="json_invalid")) from None
        if not isinstance(body, dict):
            raise _BadRequest(400, error_body("The request body must be a JSON object.", code="json_invalid"))
        return body

    def _parse_chat(self, body: dict[str, Any]) -> tuple[str, Chat, int | None, bool]:
        """Model, the checked chat (the core's own checks: Groq's 400s), token cap and whether to stream."""
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _BadRequest(400, error_body("'model' : property 'model' is missing", param="model"))
        if self._limiter.limits(model) is None:
            raise _BadRequest(404, error_body(
                f"The model `{model}` does not exist or you do not have access to it.", code="model_not_found"))
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)
                                       or max_tokens < 1):
            raise _BadRequest(400, error_body("'max_completion_tokens' : must be an integer of at least 1",
                                              param="max_completion_tokens"))
        try:
            chat = parse_chat(body.get("messages"), {k: v for k, v in body.items() if k not in OWN_FIELDS})
        except ChatRefused as refused:
            raise _BadRequest(refused.status, refused.body) from None
        return model, chat, max_tokens, body.get("stream") is True
