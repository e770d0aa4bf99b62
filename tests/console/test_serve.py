"""`medops serve`: the console in a browser (real headless Chromium), over a real store with fleet members.

Every server here is a real `medops serve` process on a loopback address; its viewers are real
`medops --attach` processes. Each test stops the server, any viewer left and the browser, however it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil
import pytest

from medops.console.cli import main
from medops.core.fleet.view import read_fleet
from medops.core.settings.config import ModelLimits
from medops.core.settings.paths import Locations
from tests.helpers.browser import chromium
from tests.helpers.fleet_helpers import member
from tests.helpers.redis_server import RedisServer

LIMITS = ModelLimits(rpm=30, rpd=14_400, tpm=6_000, tpd=500_000)
TOKEN = "serve-token-" + "k7Qp2Xw9" * 4
ESCAPES = re.compile(r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]")


@dataclass
class Served:
    """A running `medops serve`: its process and the address it printed."""

    process: subprocess.Popen[str]
    url: str

    def viewers(self) -> list[psutil.Process]:
        """The `medops` processes under the server (its viewers), by their command lines."""
        found: list[psutil.Process] = []
        if self.process.poll() is not None:
            return found
        for child in psutil.Process(self.process.pid).children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                if "medops" in " ".join(child.cmdline()):
                    found.append(child)
        return found


@contextmanager
def served(redis_server: RedisServer, *args: str, host: str = "127.0.0.1", token: str | None = None
           ) -> Iterator[Served]:
    """`medops serve --port 0 ARGS` on `host` over the test's store (namespace "test"); stopped with its viewers."""
    env = dict(os.environ, MEDOPS_STORE_URL=redis_server.url, MEDOPS_STORE_NAMESPACE="test",
               MEDOPS_REFRESH_INTERVAL="0.25")
    if token is not None:
        env["MEDOPS_SERVE_TOKEN"] = token
    process = subprocess.Popen([sys.executable, "-m", "medops", "serve", "--host", host, "--port", "0", *args],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    viewers: list[psutil.Process] = []
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the first line names the address, once it listens
        found = re.search(r"the console at (http://\S+):", line)
        assert found, f"medops serve did not start: {line!r} {process.stderr.read() if process.poll() else ''}"
        server = Served(process, found.group(1))
        yield server
        viewers = server.viewers()
    finally:
        with contextlib.suppress(psutil.NoSuchProcess):
            viewers += psutil.Process(process.pid).children(recursive=True)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate(timeout=10)
        for viewer in viewers:  # a viewer the server could not stop goes too
            with contextlib.suppress(psutil.NoSuchProcess):
                viewer.kill()


@asynccontextmanager
async def two_members(redis_server: RedisServer) -> AsyncIterator[None]:
    """Two fleet members in this process (beating, each its own store connection), as the viewers' fleet."""
    async with member(redis_server.url, LIMITS, "alpha"), member(redis_server.url, LIMITS, "bravo"):
        yield


def screen(data: bytes) -> str:
    """What a viewer drew, as text: its escape sequences taken out."""
    return ESCAPES.sub(" ", data.decode("utf-8", "replace"))


async def watch_fleet_tab(session: aiohttp.ClientSession, url: str) -> str:
    """Open a viewer as the page does, press 7 (the Fleet tab) once it has drawn, and return what it shows."""
    received = b""
    async with session.ws_connect(url.replace("http://", "ws://") + "/ws?width=120&height=40") as socket:
        async with asyncio.timeout(60):
            pressed = False
            while "bravo" not in screen(received) or "alpha" not in screen(received):
                message = await socket.receive()
                if message.type != aiohttp.WSMsgType.BINARY:
                    continue
                received += message.data
                if not pressed and "Overview" in screen(received):
                    await socket.send_json(["stdin", "7"])
                    pressed = True
    return screen(received)


def core_artefacts(process: psutil.Process, data_dir: Path) -> list[str]:
    """What a core would hold: case memory's /dev/shm segment, a ledger's DuckDB file, mapped or open."""
    held = [m.path for m in process.memory_maps() if m.path.startswith("/dev/shm") or m.path.endswith(".duckdb")]
    held += [f.path for f in process.open_files() if f.path.startswith("/dev/shm") or f.path.endswith(".duckdb")]
    return held + [str(p) for p in data_dir.rglob("ops*.duckdb")]


# -- refused before anything listens -------------------------------------------------------------------------

def test_a_non_loopback_host_is_refused_unless_asked_for(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "--host 0.0.0.0 is reachable beyond this machine: pass --allow-remote" in err and "ssh -L" in err


def test_allow_remote_without_a_token_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--host", "127.0.0.2", "--allow-remote"]) == 2
    assert "--allow-remote needs a token: set MEDOPS_SERVE_TOKEN" in capsys.readouterr().err


def test_a_store_the_viewers_cannot_read_ends_serve_before_it_listens(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "0"]) == 2
    assert "set store_url" in capsys.readouterr().err


def test_viewers_get_the_reader_user_and_its_password_in_their_environment_and_never_the_token() -> None:
    from medops.console.serve import viewer_environment

    env = {"MEDOPS_SERVE_TOKEN": TOKEN, "MEDOPS_STORE_PASSWORD": "admin-pass", "PATH": "/usr/bin"}
    viewer = viewer_environment(env, "redis://admin:admin-pass@127.0.0.1:6379/0", "medops-reader", "reader-pass")
    assert viewer == {"PATH": "/usr/bin", "MEDOPS_STORE_URL": "redis://127.0.0.1:6379/0",
                      "MEDOPS_STORE_USER": "medops-reader", "MEDOPS_STORE_PASSWORD": "reader-pass"}
    assert viewer_environment(env, "redis://127.0.0.1:6379/0", None, None) == {
        "MEDOPS_STORE_PASSWORD": "admin-pass", "PATH": "/usr/bin"}  # no roles: the server's own connection


# -- the token on a remote bind ------------------------------------------------------------------------------

async def test_on_a_remote_bind_a_request_without_the_token_is_refused_and_the_token_opens_it(
        redis_server: RedisServer) -> None:
    with served(redis_server, "--allow-remote", host="127.0.0.2", token=TOKEN) as server:
        assert server.url.startswith("http://127.0.0.2:")
        # As a browser keeps cookies for an address (aiohttp's default jar keeps them for names only).
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            for path in ("/", "/ws", "/static/js/textual.js", f"/?token={TOKEN[:-1]}x"):
                async with session.get(server.url + path) as answer:
                    assert answer.status == 401, path
                    page = await answer.text()
                    assert "This console needs its token" in page and TOKEN not in page
            async with session.get(server.url + "/", headers={"X-Medops-Token": TOKEN}) as answer:
                assert answer.status == 200 and "textual-terminal" in await answer.text()
            async with session.get(f"{server.url}/?token={TOKEN}", allow_redirects=False) as answer:
                assert answer.status == 303 and answer.headers["Location"] == "/"  # the token leaves the address
                assert TOKEN not in answer.headers["Set-Cookie"]
            async with session.get(server.url + "/") as answer:  # the cookie stands in for the token
                assert answer.status == 200
                page = await answer.text()
                assert "textual-terminal" in page and TOKEN not in page
        server.process.send_signal(signal.SIGTERM)
        out, err = server.process.communicate(timeout=20)
        assert TOKEN not in out + err and "no valid token" in err  # refusals logged, never the token


# -- the cap -------------------------------------------------------------------------------------------------

async def test_a_viewer_past_the_cap_gets_a_page_that_says_why(redis_server: RedisServer) -> None:
    with served(redis_server, "--max-viewers", "1") as server:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(server.url.replace("http://", "ws://") + "/ws") as first:
                await asyncio.wait_for(first.receive(), 30)  # the one viewer allowed has drawn
                for path in ("/", "/ws"):
                    async with session.get(server.url + path) as answer:
                        assert answer.status == 503, path
                        assert answer.content_type == "text/html"
                        page = await answer.text()
                        assert "Every viewer is taken" in page and "1 of 1 viewers are open" in page
                        assert "--max-viewers" in page
            for _ in range(100):  # the tab closed: its place is free again
                async with session.get(server.url + "/") as answer:
                    if answer.status == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                pytest.fail("the viewer's place was not given back")


# -- five viewers, no core -----------------------------------------------------------------------------------

async def test_five_viewers_show_the_same_members_and_start_no_core(redis_server: RedisServer,
                                                                    locations: Locations) -> None:
    async with two_members(redis_server):
        with served(redis_server) as server:
            async with aiohttp.ClientSession() as session:
                shown = await asyncio.gather(*(watch_fleet_tab(session, server.url) for _ in range(5)))
                viewers = server.viewers()
                assert len(viewers) == 5  # one process a tab, and nothing else under the server
                for viewer in viewers:
                    command = viewer.cmdline()
                    assert command[-3:] == ["medops", "--attach", "--read-only"]
                    assert core_artefacts(viewer, locations.data_dir) == []
                    assert "MEDOPS_SERVE_TOKEN" not in viewer.environ()
            members = (await read_fleet(redis_server.url, "test")).members
            assert sorted(m.instance for m in members) == ["alpha", "bravo"]  # no viewer joined the fleet
    assert all("alpha" in text and "bravo" in text for text in shown)


# -- in real headless Chromium -------------------------------------------------------------------------------

async def test_chromium_opens_the_console_and_a_key_switches_to_the_fleet_tab(
        redis_server: RedisServer, locations: Locations, tmp_path: Path) -> None:
    async with two_members(redis_server):
        with served(redis_server) as server:
            async with chromium(tmp_path / "chromium") as page:
                await page.open(server.url + "/")
                # The console drew: its tabs, and the Overview's fleet line counting both members.
                text = await until_shown(page, lambda t: "Overview" in t and "fleet 2 alive" in t)
                assert "alpha" not in text  # the Overview counts members; only the Fleet tab names them
                await page.press("7")
                text = await until_shown(page, lambda t: "alpha" in t and "bravo" in t)
                assert "2 alive, 0 stale, 0 gone, 0 left" in text and re.search(r"\binstance\s+host\s+pid", text)
                viewers = server.viewers()
                assert len(viewers) == 1 and viewers[0].cmdline()[-2:] == ["--attach", "--read-only"]
                assert core_artefacts(viewers[0], locations.data_dir) == []
            members = (await read_fleet(redis_server.url, "test")).members
            assert sorted(m.instance for m in members) == ["alpha", "bravo"]


async def until_shown(page: object, check: object, within: float = 60.0) -> str:
    from tests.helpers.browser import Page

    assert isinstance(page, Page) and callable(check)
    deadline = time.monotonic() + within
    text = ""
    while time.monotonic() < deadline:
        text = await page.screen_text()
        if check(text):
            return text
        await asyncio.sleep(0.25)
    pytest.fail(f"the page did not show what was expected within {within:g} s; it shows:\n{text}")
