"""What a request to the gateway may be: a body of bounded size, sent in bounded time, nested to a bounded depth.

Each refusal is Groq-shaped (`GatewayRefusal`) and says what to change. Bodies
are patient data: a refusal names sizes and limits only, never content.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from medops.core.groq.wire import error_body

MAX_BODY = 4 * 1024 * 1024  # bytes: Groq's own request limit is far below what a chat with an image needs
MAX_DEPTH = 64  # nesting of objects and arrays: JSON schemas and tool arguments go deep, not this deep
BODY_TIMEOUT = 10.0  # seconds a request has to send its body once its head is in
HEAD_TIMEOUT = 10.0  # seconds a connection has to send a whole request head (also the keep-alive timeout)


class GatewayRefusal(Exception):
    """A request the gateway answers itself, with Groq's error shape: `status`, `body` and extra `headers`."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


@dataclass(frozen=True)
class Bounds:
    """The limits one gateway applies to every request."""

    max_body: int = MAX_BODY
    max_depth: int = MAX_DEPTH
    body_timeout: float = BODY_TIMEOUT
    head_timeout: float = HEAD_TIMEOUT


async def read_json(request: web.Request, bounds: Bounds) -> dict[str, Any]:
    """The request's body as a JSON object, or a `GatewayRefusal` (413, 408 or 400) saying what was wrong."""
    declared = request.content_length
    if declared is not None and declared > bounds.max_body:
        raise _too_large(declared, bounds)
    try:
        async with asyncio.timeout(bounds.body_timeout):
            raw = await request.read()
    except TimeoutError:
        raise GatewayRefusal(408, error_body(f"The request body did not arrive within {bounds.body_timeout:g} s; "
                                             "send it whole, promptly.", code="request_timeout")) from None
    except web.HTTPRequestEntityTooLarge:  # a chunked body that grew past client_max_size
        raise _too_large(None, bounds) from None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        deep = "depth" in str(exc) or "recursion" in str(exc)  # orjson stops at 1,024 levels
        raise GatewayRefusal(400, error_body(
            f"The request body is nested more than {bounds.max_depth} levels deep; flatten it." if deep else
            "The request body is not valid JSON. Send a JSON object.", code="json_invalid")) from None
    if not isinstance(body, dict):
        raise GatewayRefusal(400, error_body("The request body must be a JSON object.", code="json_invalid"))
    if _depth_over(body, bounds.max_depth):
        raise GatewayRefusal(400, error_body(
            f"The request body is nested more than {bounds.max_depth} levels deep; flatten it.", code="json_invalid"))
    return body


def _too_large(size: int | None, bounds: Bounds) -> GatewayRefusal:
    what = f"{size:,} bytes" if size is not None else "larger than that"
    return GatewayRefusal(413, error_body(
        f"The request body is {what}; this gateway takes at most {bounds.max_body:,} bytes. Send fewer or smaller "
        "messages (images as URLs rather than inline data).", code="request_too_large"))


def _depth_over(value: Any, limit: int) -> bool:
    """Whether objects and arrays nest deeper than `limit` (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item if isinstance(v, (dict, list)))
    return False
