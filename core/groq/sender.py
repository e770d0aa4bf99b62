"""The sender: one HTTP attempt at a request to Groq through the official `groq` SDK.

`AsyncGroq` with the SDK's own retries off, over one pooled `httpx.AsyncClient`.
Every answer is read raw so its `x-ratelimit-*` headers reach the quota. The
sender never retries: every attempt may be counted by Groq, so each must be
admitted by the quota first, and the scheduler retries. It classifies how an
attempt ended: 5xx, timeouts and connection errors as `UpstreamUnavailable`
(worth another attempt; `NeverSent` when the request cannot have reached Groq,
so its quota is given back), 498 as `CapacityExceeded` (hold off, then retry), 429
as `RateLimited` (wait as the quota says), and 400/401/403/404/413 as
`RequestRejected` (never retried), said plainly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import groq
import httpx
import orjson

from medops.core.clock import Clock, SystemClock
from medops.core.errors import ConfigError
from medops.core.groq.answers import StreamAssembly, completion_from_body
from medops.core.groq.errors import (
    CapacityExceeded,
    NeverSent,
    RateLimited,
    RequestRejected,
    StreamBrokeOff,
    TimedOut,
    UpstreamUnavailable,
)
from medops.core.groq.http_pool_waits import PoolWaits
from medops.core.groq.rate_headers import parse_rate_limit_headers, parse_rate_limit_message
from medops.core.groq.requests import Attempt, Completion, PromptRequest
from medops.core.listener import is_loopback_host
from medops.core.settings.config import Settings
from medops.core.settings.redact import redact_url
from medops.core.snapshot import PoolSnapshot

# The SDK logs each request's options, the prompt among them, at DEBUG when GROQ_LOG=debug is set:
# patient data must never reach a log, whatever the environment says.
logging.getLogger("groq").setLevel(logging.WARNING)

LOCAL_PLACEHOLDER_KEY = "medops-local-endpoint"  # the SDK insists on a key; the local endpoint takes any
MAX_REASON_CHARS = 300
# What each refusal means for the on-call engineer, and what to do.
REJECTION_HINTS = {
    400: "the request is malformed or too long for the model; check the prompt and max_completion_tokens",
    401: "the Groq API key was refused; set GROQ_API_KEY to a valid key (console.groq.com/keys)",
    403: "this key may not use this model or endpoint; check the key's organization and permissions",
    404: "no such model or URL; check the model name and GROQ_BASE_URL",
    413: "the request asks more tokens than the model's per-minute limit; shorten it or lower max_completion_tokens",
    422: "Groq could not process the request; check its contents",
}


FIRST_ATTEMPT = Attempt(1, 0.0)
CHAT_COMPLETIONS = "/openai/v1/chat/completions"
# The SDK's own switch for a response body left unread (what its with_streaming_response sends).
RAW_STREAM_HEADER = "X-Stainless-Raw-Response"  # for a caller that sends once, outside the scheduler


class ConnectTimeout(TimedOut, NeverSent):
    """One attempt got no connection within its time (to Groq, or from the pool): nothing was sent."""


# httpx's errors raised before a request's first byte is written: refused, no such name, TLS failed (all
# ConnectError), no connection in time, or none free in the pool. The SDK wraps them (as __cause__).
_BEFORE_SENDING = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def _never_sent(error: BaseException) -> bool:
    """Whether an attempt's error, or what it wraps, says the request never left this machine."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, _BEFORE_SENDING):
            return True
        seen = seen.__cause__
    return False


@dataclass(frozen=True)
class GroqTarget:
    """Where the sender sends requests: Groq itself or a local endpoint."""

    kind: Literal["groq", "local"]
    base_url: str
    api_key: str  # never shown; LOCAL_PLACEHOLDER_KEY for a keyless local endpoint
    in_process: bool  # True: the core must start its own local endpoint at base_url

    @property
    def shown_url(self) -> str:
        """`base_url` as it may be shown: any user name and password in it replaced by ***."""
        return redact_url(self.base_url)

    def __repr__(self) -> str:  # keep the key and any URL credentials out of reprs, logs and tracebacks
        return f"GroqTarget(kind={self.kind!r}, base_url={self.shown_url!r}, in_process={self.in_process})"


def choose_target(settings: Settings, env: Mapping[str, str]) -> GroqTarget:
    """Groq when GROQ_API_KEY is set; else a local endpoint (GROQ_BASE_URL's, or an in-process one).

    For the in-process case `base_url` is empty until the endpoint has a port. A key that
    cannot be sent, or a URL that is not https (or http to this machine), is a ConfigError.
    """
    key = env.get("GROQ_API_KEY", "").strip()
    base_url = env.get("GROQ_BASE_URL", "").strip()
    if base_url:
        check_base_url(base_url, "GROQ_BASE_URL")
    if key:
        check_api_key(key)
        url = base_url or settings.groq_base_url
        if not base_url:
            check_base_url(url, "setting groq_base_url")
        return GroqTarget("local" if is_loopback(url) else "groq", url, key, in_process=False)
    if base_url:
        return GroqTarget("local", base_url, LOCAL_PLACEHOLDER_KEY, in_process=False)
    return GroqTarget("local", "", LOCAL_PLACEHOLDER_KEY, in_process=True)


def url_in_effect(settings: Settings, env: Mapping[str, str]) -> tuple[str, str]:
    """The base URL prompts go to, and why, as `medops config show` prints them (nothing is started)."""
    target = choose_target(settings, env)
    if target.in_process:
        port = settings.endpoint_port or "<a free port at start>"
        return (f"http://{settings.endpoint_host}:{port}",
                f"in-process local endpoint: GROQ_API_KEY unset (with a key: {settings.groq_base_url})")
    if env.get("GROQ_BASE_URL", "").strip():
        why = "env GROQ_BASE_URL" + ("" if target.api_key != LOCAL_PLACEHOLDER_KEY else ", GROQ_API_KEY unset")
        return target.base_url, why
    return target.base_url, ""  # the setting itself, from where it came


def check_base_url(url: str, origin: str) -> None:
    """Refuse a Groq base URL that is not https, or http to this machine (the key would travel in clear)."""
    parts = urlsplit(url)
    shown = redact_url(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"{origin} = {shown!r} is not an http(s) URL with a host; use https://api.groq.com, or "
                          "http://127.0.0.1:PORT for a local endpoint")
    if parts.scheme == "http" and not is_loopback(url):
        raise ConfigError(f"{origin} = {shown!r} uses plain http to another machine: prompts and the key would "
                          "cross the network unencrypted; use https, or http only to 127.0.0.1/localhost")


def check_api_key(key: str) -> None:
    """Refuse a key an HTTP header cannot carry; the message never shows the key, nor where it goes wrong."""
    if not all("!" <= ch <= "~" for ch in key):
        raise ConfigError("GROQ_API_KEY holds characters a Groq key never has (non-ASCII, spaces or control "
                          "characters; it is not shown here); copy it again from console.groq.com/keys, "
                          "or unset it to use the local endpoint")


def is_loopback(url: str) -> bool:
    """Whether a URL points at this machine."""
    return is_loopback_host(urlsplit(url).hostname or "")


@dataclass(frozen=True)
class SenderStats:
    """HTTP attempts and what they came back with."""

    in_flight: int = 0
    attempts: int = 0
    answered: int = 0
    rate_limited: int = 0  # 429s received
    capacity_exceeded: int = 0  # 498s received
    rejected: int = 0  # 4xx refusals
    server_errors: int = 0  # 5xx received
    connection_errors: int = 0
    timeouts: int = 0
    failed: int = 0  # attempts that ended without an answer, or refused


class GroqSender:
    """Sends prompts to Groq (implements the scheduler's `Sender`)."""

    def __init__(self, settings: Settings, target: GroqTarget, clock: Clock | None = None) -> None:
        if not target.base_url:
            raise ValueError("the sender needs a base URL; start the local endpoint first")
        self._settings = settings
        self._target = target
        self._pool_waits = PoolWaits(clock or SystemClock())
        self._http = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=settings.http_max_connections,
                                max_keepalive_connections=settings.http_max_per_host),
            timeout=settings.request_timeout,
            event_hooks={"request": [self._pool_waits.on_request]},
        )
        self._client = groq.AsyncGroq(api_key=target.api_key, base_url=target.base_url, max_retries=0,
                                      http_client=self._http, timeout=settings.request_timeout)
        self._counts: dict[str, int] = dict.fromkeys(SenderStats.__dataclass_fields__, 0)
        self._last_failure: str | None = None  # why the latest attempt got no HTTP answer; None once one did

    @property
    def target(self) -> GroqTarget:
        return self._target

    @property
    def healthy(self) -> bool:
        """False while the latest attempt got no HTTP answer (5xx, timeout, connection error)."""
        return self._last_failure is None

    @property
    def last_failure(self) -> str | None:
        return self._last_failure

    @property
    def stats(self) -> SenderStats:
        return SenderStats(**self._counts)

    def pool_snapshot(self) -> PoolSnapshot:
        """The HTTP pool as a PoolSnapshot named "http": attempts on a connection, waiting for one, wait p50/p95."""
        c = self._counts
        waiting = self._pool_waits.waiting
        p50, p95 = self._pool_waits.percentiles()
        return PoolSnapshot(name="http", capacity=self._settings.http_max_connections,
                            active=max(0, c["in_flight"] - waiting), queued=waiting, completed=c["answered"],
                            errors=c["failed"], timeouts=c["timeouts"], wait_p50=p50, wait_p95=p95)

    def apply(self, settings: Settings) -> None:
        """Take changed settings for the next sends (request_timeout, default_model).

        The HTTP pool's size and its client stay as built at start.
        """
        self._settings = settings

    async def close(self) -> None:
        """Close the pooled connections."""
        await self._client.close()
        await self._http.aclose()

    # The contract's timeout is this one attempt's.
    async def send(self, request: PromptRequest, timeout: float,  # noqa: ASYNC109
                   attempt: Attempt = FIRST_ATTEMPT) -> Completion:
        """One attempt within `timeout` seconds (at most `request_timeout`); never retried here."""
        model = request.model or self._settings.default_model
        timeout = max(0.0, min(timeout, self._settings.request_timeout))
        self._counts["attempts"] += 1
        self._counts["in_flight"] += 1
        try:
            if request.streamed:
                completion = await asyncio.wait_for(self._stream(request, model, attempt, http_timeout=timeout),
                                                    timeout)
            else:
                with self._pool_waits.attempt():
                    answer = await asyncio.wait_for(self._create(request, model, timeout, stream=False), timeout)
                completion = completion_from_body(_json_object(answer.content), request, model,
                                                  parse_rate_limit_headers(answer.headers))
        except (TimeoutError, groq.APITimeoutError, httpx.TimeoutException) as exc:  # the last: a stream gone quiet
            self._counts["timeouts"] += 1
            if _never_sent(exc):
                raise self._unavailable(f"no connection within {timeout:.3g}s", None, ConnectTimeout) from None
            raise self._unavailable(f"no answer within {timeout:.3g}s", None, TimedOut) from None
        except groq.APIConnectionError as exc:
            self._counts["connection_errors"] += 1
            cause = type(exc.__cause__).__name__ if exc.__cause__ else "error"
            kind = NeverSent if _never_sent(exc) else UpstreamUnavailable
            raise self._unavailable(f"cannot connect ({cause})", None, kind) from None
        except groq.APIStatusError as exc:
            if exc.status_code < 500 or exc.status_code == 498:
                self._last_failure = None  # Groq answered, even if it refused
            raise self._status_error(exc) from None
        except (httpx.HTTPError, groq.APIError, ValueError) as exc:  # a stream that broke off, a body not JSON
            self._counts["connection_errors"] += 1
            raise self._unavailable(f"the answer broke off ({type(exc).__name__})", None) from None
        finally:
            self._counts["in_flight"] -= 1
        self._counts["answered"] += 1
        self._last_failure = None
        return completion

    async def _create(self, request: PromptRequest, model: str, seconds: float, *, stream: bool) -> httpx.Response:
        """The SDK's POST of the request's Groq body as it is, its answer raw (read, or open for a stream).

        Through the client's own request path (auth, base URL, timeout, status errors), without its typed
        `create`, which walks and rebuilds the whole body a second time (0.5 ms a request, measured)."""
        headers = {RAW_STREAM_HEADER: "stream"} if stream else {}
        body = request.chat.body(model, request.max_completion_tokens, stream)
        response: httpx.Response = await self._client.post(
            CHAT_COMPLETIONS, cast_to=httpx.Response, body=body, options={"timeout": seconds, "headers": headers})
        return response

    async def _stream(self, request: PromptRequest, model: str, attempt: Attempt, *,
                      http_timeout: float) -> Completion:
        """One streamed attempt: `on_text` gets the text so far, `on_chunk` each chunk as Groq sent it."""
        on_text, on_chunk = request.on_text, request.on_chunk
        if on_text is not None:
            on_text("")  # a new attempt starts the text again
        with self._pool_waits.attempt():
            response = await self._create(request, model, http_timeout, stream=True)
        answer = StreamAssembly(model)
        handed_on = False
        try:
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                chunk = _json_object(data)
                x_groq = chunk.get("x_groq")
                if "error" in chunk or (isinstance(x_groq, Mapping) and x_groq.get("error")):
                    raise self._unavailable("the answer was stopped early by the server", None)  # Groq's word
                if answer.add(chunk) is not None and on_text is not None:
                    on_text("".join(answer.text))
                if on_chunk is not None:
                    handed_on = True
                    await on_chunk(data.encode(), attempt)
        except (UpstreamUnavailable, httpx.HTTPError, ValueError) as broke:
            if handed_on:  # the listener has part of this answer: another attempt would repeat it
                self._counts["failed"] += 1
                raise StreamBrokeOff(f"the streamed answer from {self._target.kind} broke off after it had begun "
                                     f"({type(broke).__name__}); it was not retried") from None
            raise
        finally:
            await response.aclose()
        if not answer.finished:  # ended without a finish reason: a cut-off answer must not pass for a whole one
            failure = self._unavailable("the answer ended before it was finished", None)
            if handed_on:
                raise StreamBrokeOff(f"{failure}; it was not retried, part of it was already handed on")
            raise failure
        return answer.completion(request, parse_rate_limit_headers(response.headers))

    def _unavailable(self, reason: str, status: int | None,
                     kind: type[UpstreamUnavailable] = UpstreamUnavailable) -> UpstreamUnavailable:
        """An attempt without a usable answer: remembered for health, counted, and said with where it went."""
        self._last_failure = reason
        self._counts["failed"] += 1
        return kind(f"{reason} from {self._target.kind} ({self._target.shown_url})", reason=reason, status=status)

    def _status_error(self, exc: groq.APIStatusError) -> Exception:
        status = exc.status_code
        headers = parse_rate_limit_headers(exc.response.headers)
        message = _error_message(exc.body)
        if status == 429:
            self._counts["rate_limited"] += 1
            limit = parse_rate_limit_message(message)
            retry_after = headers.retry_after if headers.retry_after is not None else (
                limit.retry_in if limit else None)
            return RateLimited(retry_after, limit, headers)
        if status == 498:
            self._counts["capacity_exceeded"] += 1
            return CapacityExceeded(f"{self._target.kind} is over capacity for this model (HTTP 498); "
                                    "try again shortly or use another model")
        if status >= 500:
            self._counts["server_errors"] += 1
            return self._unavailable(f"server error HTTP {status}", status)
        self._counts["rejected"] += 1
        hint = REJECTION_HINTS.get(status, "retrying will not help; check the request")
        # 401 bodies are Groq's stock text; never the key. Other messages are clipped, never prompts.
        detail = f" ({message[:MAX_REASON_CHARS]})" if message and status != 401 else ""
        self._counts["failed"] += 1
        return RequestRejected(status, f"{hint}{detail}", exc.body if isinstance(exc.body, Mapping) else None)


def _error_message(body: object) -> str:
    """Groq's `error.message`, or ''."""
    if isinstance(body, Mapping):
        error: Any = body.get("error", body)
        if isinstance(error, Mapping) and isinstance(error.get("message"), str):
            return str(error["message"])
    return ""


def _json_object(data: bytes | str) -> Mapping[str, Any]:
    """One JSON object from Groq; ValueError if it is not one (a broken answer)."""
    value = orjson.loads(data)
    if not isinstance(value, dict):
        raise ValueError("the answer is not a JSON object")
    return value
