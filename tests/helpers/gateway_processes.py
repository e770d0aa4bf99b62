"""Real `medops gateway` processes for the end-to-end tests: a config, keys made by the CLI, started and stopped.

Each gateway is its own process (`python -m medops gateway --port 0`) with its own data folder, pointed at a
local endpoint by GROQ_BASE_URL (no GROQ_API_KEY), and at a store when one is given. Its output goes to files,
so a gateway that fails to start says why in the test's failure.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from medops.core.settings.config import ModelLimits

MODEL = "llama-3.1-8b-instant"
START_WITHIN = 60.0  # seconds a gateway has to start on a loaded machine
LISTENING = re.compile(r"medops gateway listening on (http://\S+)")


@dataclass(frozen=True)
class Medops:
    """How to run medops commands as one gateway would: its config file and environment."""

    config: Path
    env: Mapping[str, str]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "medops", "--config", str(self.config), *args],
                              env=dict(self.env), capture_output=True, text=True, timeout=60)

    def add_key(self, name: str, agent: str = "triage", priority: str = "normal",
                max_priority: str | None = None) -> str:
        """`medops gateway key add`: the key, as the last line of its output."""
        extra = ["--max-priority", max_priority] if max_priority else []
        done = self.run("gateway", "key", "add", name, "--agent", agent, "--priority", priority, *extra)
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()[-1]


def medops_for(folder: Path, endpoint_url: str, knowledge: Path, *, limits: ModelLimits, store_url: str = "",
               **settings: object) -> Medops:
    """A config (one model with `limits`, plus `settings`) and environment in `folder`."""
    data = folder / "data"
    data.mkdir(parents=True, mode=0o700)
    shutil.copyfile(knowledge, data / "knowledge.duckdb")
    lines = [f'default_model = "{MODEL}"']
    lines += [f"{name} = {value!r}" for name, value in settings.items()]
    lines += [f'[models."{MODEL}"]', f"rpm = {limits.rpm}", f"rpd = {limits.rpd}", f"tpm = {limits.tpm}",
              f"tpd = {limits.tpd}"]
    config = folder / "medops.toml"
    config.write_text("\n".join(lines) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDOPS_") and k != "GROQ_API_KEY"}
    env.update(GROQ_BASE_URL=endpoint_url, MEDOPS_DATA_DIR=str(data), MEDOPS_CONFIG_DIR=str(folder / "config"))
    if store_url:
        env["MEDOPS_STORE_URL"] = store_url
    return Medops(config, env)


@dataclass
class GatewayProcess:
    """One running `medops gateway`: its URL once it listens, and its output files."""

    process: subprocess.Popen[bytes]
    out: Path
    err: Path
    url: str = ""

    @property
    def openai_url(self) -> str:
        return f"{self.url}/openai/v1"

    def output(self) -> str:
        return f"stdout:\n{self.out.read_text()}\nstderr:\n{self.err.read_text()[-4000:]}"

    def wait_listening(self) -> None:
        deadline = time.monotonic() + START_WITHIN
        while time.monotonic() < deadline:
            found = LISTENING.search(self.out.read_text())
            if found:
                self.url = found.group(1)
                return
            if self.process.poll() is not None:
                raise AssertionError(f"the gateway exited with {self.process.returncode}\n{self.output()}")
            time.sleep(0.05)
        raise AssertionError(f"the gateway did not listen within {START_WITHIN:g} s\n{self.output()}")

    def stop(self) -> None:
        """SIGTERM (it stops cleanly: settles, leaves the fleet), then SIGKILL if it hangs; and whatever it
        started (its own process group) goes with it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


@contextmanager
def gateway(medops: Medops, folder: Path, *args: str) -> Iterator[GatewayProcess]:
    """A started `medops gateway --port 0` (listening when entered), stopped on leaving whatever happened."""
    folder.mkdir(parents=True, exist_ok=True)
    out, err = folder / "gateway.out", folder / "gateway.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "medops", "--config", str(medops.config), "gateway", "--port", "0", *args],
            env=dict(medops.env), stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, start_new_session=True)
    running = GatewayProcess(process, out, err)
    try:
        running.wait_listening()
        yield running
    finally:
        running.stop()


@contextmanager
def gateways(medops: list[Medops], folder: Path) -> Iterator[list[GatewayProcess]]:
    """Several gateways, started one after another, all stopped on leaving whatever happened."""
    with ExitStack() as stack:
        yield [stack.enter_context(gateway(m, folder / f"gateway-{n}")) for n, m in enumerate(medops)]
