"""A tmux server of a test's own, running `medops` in a real terminal the test reads and types into."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path

from medops.core.settings.paths import Locations

MEDOPS = Path(sys.executable).parent / "medops"


class Tmux:
    """One tmux server on its own socket, so the test never touches a user's sessions."""

    def __init__(self, locations: Locations) -> None:
        self.socket = f"medops-test-{uuid.uuid4().hex[:8]}"
        self.session = "medops"
        self.locations = locations

    def run(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True)
        return done.stdout

    def start(self, width: int, height: int, *args: str, raw: Path | None = None, **extra_env: str) -> int:
        """`medops --no-mouse ARGS` in a new session; `raw`: every byte it writes to the terminal goes there too
        (pipe-pane, in place before medops starts)."""
        # COLUMNS and LINES as the session's size: a tmux server started without a terminal (under pytest) puts
        # 80 and 24 in its environment, and Textual takes them over the pane's real size.
        env = {"MEDOPS_DATA_DIR": str(self.locations.data_dir), "MEDOPS_CONFIG_DIR": str(self.locations.config_dir),
               "MEDOPS_REFRESH_INTERVAL": "0.5", "TERM": "xterm-256color", "COLUMNS": str(width),
               "LINES": str(height), **extra_env}
        flags = [item for key, value in env.items() for item in ("-e", f"{key}={value}")]
        command = f"exec {MEDOPS} --no-mouse {' '.join(args)}"
        if raw is not None:
            command = f"sleep 1; {command}"
        self.run("new-session", "-d", "-s", self.session, "-x", str(width), "-y", str(height), *flags, command)
        if raw is not None:
            self.run("pipe-pane", "-O", "-t", self.session, f"cat >> {raw}")
        return int(self.run("display-message", "-p", "-t", self.session, "#{pane_pid}").strip())

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.session)

    def colours(self) -> set[str]:
        """Every colour the screen is drawn in, as SGR codes ("31", "38;5;16"); the terminal's defaults excluded."""
        found: set[str] = set()
        for params in re.findall(r"\x1b\[([0-9;]*)m", self.run("capture-pane", "-p", "-e", "-t", self.session)):
            codes = params.split(";")
            while codes:
                code = codes.pop(0)
                if code in ("38", "48"):  # extended: 5;n or 2;r;g;b
                    size = 2 if codes[:1] == ["5"] else 4
                    found.add(";".join([code, *codes[:size]]))
                    del codes[:size]
                elif code.isdigit() and (30 <= int(code) <= 37 or 40 <= int(code) <= 47
                                         or 90 <= int(code) <= 97 or 100 <= int(code) <= 107):
                    found.add(code)
        return found

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", self.session, *keys)

    def shows(self, *texts: str) -> bool:
        screen = self.screen()
        return all(text in screen for text in texts)

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)
