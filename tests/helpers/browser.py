"""Headless Chromium driven over the Chrome DevTools Protocol: a page's terminal text, and key presses.

A few CDP calls over aiohttp's websocket client are all the tests need (navigate, evaluate, press a key),
so no driver binary or browser bundle comes with them: Debian's `chromium` (scripts/ensure-chromium).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import aiohttp
import pytest

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
         "--window-size=1280,900", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0")

# Before the page's own scripts: textual.js keeps its xterm.js Terminal in a closure; this keeps a handle on it
# (the object that sets `fitAddon` holds `terminal`), so a test reads the rows xterm.js drew, as text.
CATCH_TERMINAL = """
Object.defineProperty(Object.prototype, "fitAddon", {configurable: true, set(value) {
  Object.defineProperty(this, "fitAddon", {value, writable: true, configurable: true, enumerable: true});
  if (this.terminal) { window.__medopsTerminal = this.terminal; }
}});
"""
SCREEN_TEXT = """(() => {
  const t = window.__medopsTerminal;
  if (!t) { return null; }
  const b = t.buffer.active, rows = [];
  for (let i = 0; i < t.rows; i++) {
    const line = b.getLine(b.viewportY + i);
    rows.push(line ? line.translateToString(true) : "");
  }
  return rows.join("\\n");
})()"""
KEYS = {str(n): {"code": f"Digit{n}", "windowsVirtualKeyCode": 48 + n} for n in range(10)}


def chromium_or_skip() -> str:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.skip("chromium is not installed and could not be installed here: `make test` installs it "
                    "(scripts/ensure-chromium, as root or with sudo), or `apt-get install chromium`")
    return binary


class Page:
    """One tab's DevTools session."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self._socket = socket
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and wait for its answer (events in between are passed over)."""
        call_id = next(self._ids)
        await self._socket.send_str(json.dumps({"id": call_id, "method": method, "params": params}))
        async with asyncio.timeout(30):
            while True:
                message = json.loads((await self._socket.receive()).data)
                if message.get("id") == call_id:
                    if "error" in message:
                        raise RuntimeError(f"{method}: {message['error']}")
                    return dict(message.get("result", {}))

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    async def open(self, url: str) -> None:
        await self.call("Page.enable")
        await self.call("Page.addScriptToEvaluateOnNewDocument", source=CATCH_TERMINAL)
        await self.call("Page.navigate", url=url)

    async def screen_text(self) -> str:
        """The rows the page's terminal shows now ('' before it has drawn)."""
        return str(await self.evaluate(SCREEN_TEXT) or "")

    async def press(self, key: str) -> None:
        """A real key press on the terminal (keyDown with its text, keyUp), as a user's keyboard sends it."""
        await self.evaluate("document.querySelector('.xterm-helper-textarea').focus()")
        codes = KEYS[key]
        await self.call("Input.dispatchKeyEvent", type="keyDown", key=key, text=key, **codes)
        await self.call("Input.dispatchKeyEvent", type="keyUp", key=key, **codes)


@asynccontextmanager
async def chromium(profile: Path) -> AsyncIterator[Page]:
    """One headless Chromium with a blank tab; it and every process it started are killed on leaving."""
    binary = chromium_or_skip()
    process = await asyncio.create_subprocess_exec(
        binary, *FLAGS, f"--user-data-dir={profile}", "about:blank", stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(300):
            if (port := await asyncio.to_thread(_devtools_port, profile)) is not None:
                break
            if process.returncode is not None:
                raise RuntimeError(f"chromium exited with {process.returncode} before it listened")
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError("chromium did not open its DevTools port within 30 s")
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as answer:
                targets = await answer.json()
            page_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
            async with session.ws_connect(page_url, max_msg_size=64 * 1024 * 1024) as socket:
                yield Page(socket)
    finally:
        # Chromium's renderers and helpers share its session: the group goes with it.
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await asyncio.wait_for(process.wait(), 30)


def _devtools_port(profile: Path) -> int | None:
    """The port Chromium wrote once it listens (--remote-debugging-port=0 picks a free one)."""
    try:
        return int((profile / "DevToolsActivePort").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return None
