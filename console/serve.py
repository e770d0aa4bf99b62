"""The console in a browser: one `medops --attach` process per tab, none of them with a core of its own.

textual-serve's `AppService` runs each viewer behind its xterm.js page; this module is the HTTP side
around it: the page (which fetches nothing from elsewhere), the token a non-loopback bind needs, a cap
on viewers with a page that says why, and each viewer's environment (secrets go there, never in argv).
"""

from __future__ import annotations

import asyncio
import hmac
import html
import logging
import os
import secrets
import shlex
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import urlsplit

import textual_serve
from aiohttp import WSMsgType, web
from textual_serve.app_service import AppService
from textual_serve.download_manager import DownloadManager

log = logging.getLogger(__name__)

TOKEN_ENV = "MEDOPS_SERVE_TOKEN"
TOKEN_HEADER = "X-Medops-Token"
SESSION_COOKIE = "medops_viewer"
STOP_WAIT = 5.0  # seconds a viewer has to quit once its tab has gone
STATIC = Path(textual_serve.__file__).parent / "static"
PAGE = Template(files("medops.console").joinpath("serve_page.html").read_text(encoding="utf-8"))
REFUSAL = Template(files("medops.console").joinpath("serve_refusal.html").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Access:
    """Who may open a viewer: anyone who reaches the port (`token` None, loopback only), or holders of `token`."""

    token: str | None

    def admits(self, request: web.Request, session: str) -> bool:
        """Whether `request` carries the token (`?token=`, a header) or this server's session cookie."""
        if self.token is None:
            return True
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        offered = [request.query.get("token", ""), request.headers.get(TOKEN_HEADER, ""), bearer]
        # Every candidate is compared, each in constant time: how far a guess matched is not told by timing.
        matches = [hmac.compare_digest(o.encode(), self.token.encode()) for o in offered if o]
        cookie = request.cookies.get(SESSION_COOKIE, "")
        matches.append(bool(cookie) and hmac.compare_digest(cookie.encode(), session.encode()))
        return any(matches)


def refusal(status: int, title: str, why: str, what_to_do: str) -> web.Response:
    """A whole HTML page saying why nothing is shown and what to do (every value escaped)."""
    body = REFUSAL.substitute(title=html.escape(title), why=html.escape(why), what_to_do=html.escape(what_to_do))
    headers = {"Retry-After": "10"} if status == 503 else {}
    return web.Response(status=status, text=body, content_type="text/html", headers=headers)


class Viewer(AppService):
    """One browser tab's `medops --attach` process, started with the viewers' environment, not the server's own."""

    def __init__(self, command: str, environment: Mapping[str, str], *,
                 write_bytes: Callable[[bytes], Awaitable[None]], write_str: Callable[[str], Awaitable[None]],
                 close: Callable[[], Awaitable[object]], download_manager: DownloadManager) -> None:
        async def close_page() -> None:
            await close()

        super().__init__(command, write_bytes=write_bytes, write_str=write_str, close=close_page,
                         download_manager=download_manager)
        self._environment = dict(environment)

    def _build_environment(self, width: int = 80, height: int = 24) -> dict[str, str]:
        # What textual-serve adds for its web driver (TEXTUAL_DRIVER, the size...), over the viewers' own.
        web_driver = super()._build_environment(width, height)
        added = {k: v for k, v in web_driver.items() if os.environ.get(k) != v}
        return {**self._environment, **added}

    async def stop(self) -> None:
        """Ask the viewer to quit; one that has not within STOP_WAIT seconds is killed (no viewer outlives its tab)."""
        try:
            await asyncio.wait_for(super().stop(), STOP_WAIT)
        except TimeoutError:
            if self._process is not None and self._process.returncode is None:
                log.warning("viewer pid %d did not quit within %g s: killed", self._process.pid, STOP_WAIT)
                self._process.kill()
                await self._process.wait()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None


def viewer_environment(env: Mapping[str, str], store_url: str, user: str | None, password: str | None
                       ) -> dict[str, str]:
    """The environment every viewer starts with: `env` without the serve token, as `user` of the store if given.

    `store_url` is the settings' own; with a user, its user and password are dropped from it (the viewer's go
    in MEDOPS_STORE_USER and MEDOPS_STORE_PASSWORD, which an environment holds and a process listing does not)."""
    viewer = {k: v for k, v in env.items() if k != TOKEN_ENV}
    if user is not None:
        parts = urlsplit(store_url)
        viewer["MEDOPS_STORE_URL"] = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
        viewer["MEDOPS_STORE_USER"] = user
        viewer.pop("MEDOPS_STORE_PASSWORD", None)
        if password:
            viewer["MEDOPS_STORE_PASSWORD"] = password
    return viewer


class ViewerServer:
    """The page, the viewers' websocket and xterm.js' files on `host:port`; at most `max_viewers` at once."""

    def __init__(self, argv: Sequence[str], environment: Mapping[str, str], *, host: str, port: int,
                 max_viewers: int, access: Access, title: str = "medops") -> None:
        # `exec`: the shell textual-serve starts gives way to the viewer, so its pid is the viewer's.
        self._command = "exec " + shlex.join(argv)
        self._environment = dict(environment)
        self._host, self._port = host, port
        self._max_viewers = max_viewers
        self._access = access
        self._title = title
        self._session = secrets.token_urlsafe(32)  # the cookie a tab holds once its token was checked
        self._viewers: dict[web.WebSocketResponse, Viewer | None] = {}
        self._downloads = DownloadManager()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    @property
    def viewers(self) -> int:
        return len(self._viewers)

    def viewer_pids(self) -> list[int]:
        """The viewers' process ids, for whoever counts them."""
        return [pid for v in self._viewers.values() if v is not None and (pid := v.pid) is not None]

    async def start(self) -> None:
        app = web.Application(middlewares=[self._guard])
        app.add_routes([web.get("/", self._page), web.get("/ws", self._websocket),
                        web.static("/static", STATIC)])
        app.on_shutdown.append(self._close_viewers)
        # No access log: a URL may carry the token (`?token=`), and nothing of it may reach a log.
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        self._port = int(self._runner.addresses[0][1])  # the one chosen when asked for 0

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _guard(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> web.StreamResponse:
        if not self._access.admits(request, self._session):
            log.info("refused %s %s from %s: no valid token", request.method, request.path, request.remote)
            return refusal(401, "This console needs its token",
                           "medops serve listens beyond loopback here, so only holders of its token may watch.",
                           "Open this address with ?token= and the token (MEDOPS_SERVE_TOKEN where medops serve "
                           f"runs), or send it in the {TOKEN_HEADER} header; ask whoever started it for the token.")
        if self._access.token is not None and "token" in request.query and request.path == "/":
            # The token leaves the address bar (and the browser's history) at once; the cookie stands in for it.
            response = web.HTTPSeeOther("/")
            response.set_cookie(SESSION_COOKIE, self._session, httponly=True, samesite="Strict", path="/")
            return response
        return await handler(request)

    def _full(self) -> web.Response | None:
        if len(self._viewers) < self._max_viewers:
            return None
        return refusal(503, "Every viewer is taken",
                       f"{len(self._viewers)} of {self._max_viewers} viewers are open, the most this medops serve "
                       "allows (each tab runs a console process on the server).",
                       "Close a tab that watches this fleet, or ask whoever started medops serve to raise "
                       "--max-viewers; then reload this page.")

    async def _page(self, request: web.Request) -> web.Response:
        if (full := self._full()) is not None:
            return full
        font_size = request.query.get("fontsize", "16")
        body = PAGE.substitute(title=html.escape(self._title), font_size=html.escape(font_size),
                               websocket_url=html.escape(f"ws://{request.host}/ws"))
        return web.Response(text=body, content_type="text/html")

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != request.host:
            # Another site's page in the user's browser may not open (and drive) a viewer.
            return refusal(403, "Not from this page", f"a viewer opens from {request.host}'s own page only.",
                           "Open the console's address itself.")
        if (full := self._full()) is not None:
            return full
        websocket = web.WebSocketResponse(heartbeat=15)
        self._viewers[websocket] = None  # the place is taken before anything is awaited
        try:
            await websocket.prepare(request)
            viewer = Viewer(self._command, self._environment, write_bytes=websocket.send_bytes,
                            write_str=websocket.send_str, close=websocket.close, download_manager=self._downloads)
            self._viewers[websocket] = viewer
            await viewer.start(_int(request.query.get("width"), 80), _int(request.query.get("height"), 24))
            log.info("viewer %d of %d opened (pid %s)", len(self._viewers), self._max_viewers, viewer.pid)
            try:
                await self._relay(websocket, viewer)
            finally:
                await viewer.stop()
        finally:
            del self._viewers[websocket]
            log.info("a viewer closed; %d open", len(self._viewers))
        return websocket

    @staticmethod
    async def _relay(websocket: web.WebSocketResponse, viewer: Viewer) -> None:
        """What the page sends (keys, its size, focus) to the viewer, as textual-serve's page speaks it."""
        async for message in websocket:
            if message.type != WSMsgType.TEXT:
                continue
            envelope: Any = message.json()
            if not isinstance(envelope, list) or not envelope:
                continue
            kind, data = envelope[0], envelope[1] if len(envelope) > 1 else None
            if kind == "stdin" and isinstance(data, str):
                await viewer.send_bytes(data.encode("utf-8"))
            elif kind == "resize" and isinstance(data, dict):
                await viewer.set_terminal_size(_int(data.get("width"), 80), _int(data.get("height"), 24))
            elif kind == "ping":
                await websocket.send_json(["pong", data])
            elif kind == "blur":
                await viewer.blur()
            elif kind == "focus":
                await viewer.focus()

    async def _close_viewers(self, app: web.Application) -> None:
        await asyncio.gather(*(ws.close() for ws in list(self._viewers)), return_exceptions=True)


def _int(value: object, default: int) -> int:
    try:
        return max(1, min(int(str(value)), 1_000))
    except ValueError:
        return default
