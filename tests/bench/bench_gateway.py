"""medops gateway beside direct calls and LiteLLM's proxy, in one run, to one endpoint. Run with `make bench`.

One local endpoint (LocalEndpoint: no simulated latency, limits no request reaches, connections uncapped for
the bench) runs in a process of its own. Three ways reach it, each with the openai SDK and the same client
settings (only base_url and the key differ):

- direct: http://127.0.0.1:E/openai/v1;
- medops gateway, run as a user runs it: `medops gateway --port G` as a subprocess, with GROQ_BASE_URL at the
  endpoint (so no endpoint runs inside it) and a key made by `medops gateway key add --priority critical`
  (critical requests skip the batch window; batch_interval is 0 besides), in its own config and data folders
  with a quota no request reaches (medops.toml);
- LiteLLM's proxy 1.80.5, `litellm --config C --port L --num_workers 1`, its `openai/` provider's api_base at
  the same endpoint, with a master key; installed by the bench into .venv/bench-litellm (kept for the next
  run). Where it cannot be installed or started its rows are skipped with the reason, and medops' still print.

Figures: non-streamed latency p50 and p99 (and each proxy's overhead over direct), time to the first streamed
chunk the SDK hands over (p50), and requests/s with 200 concurrent callers on one aiohttp session (the
SDK's transport, httpx, would measure itself at that width). Rounds alternate
between the three and rotate their order; throughput is the best round. Everything is on loopback, bounded in
count and time, and every process the bench starts is stopped, failure or not. The machine is shared, so the
figures are noisy: compare the rows of one run, not runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import secrets
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import aiohttp
import httpx
import openai
import orjson
import psutil

from medops.core.groq.local.faults import FaultModes
from medops.core.groq.local.server import LocalEndpoint
from medops.core.settings.config import ModelLimits

MODEL = "llama-3.1-8b-instant"
ROOMY = ModelLimits(rpm=1_000_000, rpd=100_000_000, tpm=1_000_000_000, tpd=10_000_000_000)
MESSAGES = [{"role": "user", "content": "bench"}]
MAX_TOKENS = 64
WARM = 30  # requests per way before anything is measured (connections, imports, caches)
ROUNDS = 6
SINGLE = 600  # non-streamed requests per way, over ROUNDS rounds
STREAMS = 240  # streamed requests per way, over ROUNDS rounds
CONCURRENCY = 200
BURST = 1_000  # requests per throughput round
BURST_ROUNDS = 2
BURST_SECONDS = 30.0  # a round stops taking requests after this long (a slow proxy)
CLIENT_TIMEOUT = 60.0
START_SECONDS = 90.0  # a server not ready by then is given up
GOAL_OVERHEAD_MS = 1.0
GOAL_SHARE_OF_LITELLM = 1 / 5

LITELLM_VERSION = "1.80.5"
LITELLM_VENV = Path(__file__).resolve().parents[2] / ".venv" / "bench-litellm"
INSTALL_SECONDS = 900.0

MEDOPS_TOML = f"""\
default_model = "{MODEL}"
batch_interval = 0.0
groq_concurrent = 1000
queue_limit = 100000
http_max_connections = 1000
http_max_per_host = 1000

[models."{MODEL}"]
rpm = {ROOMY.rpm}
rpd = {ROOMY.rpd}
tpm = {ROOMY.tpm}
tpd = {ROOMY.tpd}
"""

LITELLM_YAML = """\
model_list:
  - model_name: {model}
    litellm_params:
      model: openai/{model}
      api_base: {api_base}
      api_key: bench-placeholder
general_settings:
  master_key: {master_key}
litellm_settings:
  telemetry: false
"""


# --- the endpoint, in its own process ------------------------------------------------------------

def _serve_endpoint(conn: Connection) -> None:
    """A roomy LocalEndpoint on loopback: sends its port, serves until told (or the bench is gone), sends its
    counts."""
    async def serve() -> None:
        endpoint = LocalEndpoint({MODEL: ROOMY}, faults=FaultModes(latency_scale=0.0), max_connections=4_096,
                                 head_timeout=600.0)
        await endpoint.start()
        conn.send(endpoint.port)
        with contextlib.suppress(EOFError):  # EOF: the bench is gone
            await asyncio.to_thread(conn.recv)
        stats = endpoint.stats
        await endpoint.stop()
        with contextlib.suppress(OSError):
            conn.send((stats.answered, stats.rate_limited + stats.too_large + stats.refused_connections
                       + stats.bad_requests + stats.injected_errors + stats.unauthorized))

    asyncio.run(serve())


class Endpoint:
    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve_endpoint, args=(child,), daemon=True)
        self._process.start()
        child.close()
        if not self._conn.poll(START_SECONDS):
            self.stop()
            raise RuntimeError("the local endpoint did not start")
        self.port: int = self._conn.recv()
        self.pid = self._process.pid
        self.url = f"http://127.0.0.1:{self.port}"
        self.counts: tuple[int, int] | None = None

    def stop(self) -> None:
        if self._process.is_alive():
            with contextlib.suppress(OSError):
                self._conn.send("stop")
            if self._conn.poll(15):
                with contextlib.suppress(EOFError):
                    self.counts = self._conn.recv()
            self._process.join(timeout=15)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=5)
        self._conn.close()


# --- servers as subprocesses ---------------------------------------------------------------------

def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _clean_env(**extra: str) -> dict[str, str]:
    """This environment without medops', Groq's or LiteLLM's settings, nor a proxy: loopback only."""
    proxies = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("MEDOPS_", "GROQ_", "LITELLM_", "OPENAI_")) and name.lower() not in proxies}
    env["NO_PROXY"] = "127.0.0.1,localhost"
    env.update(extra)
    return env


class Server:
    """A server subprocess in its own session, its output in a log file; stopped with SIGTERM, then killed."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        self.pid = -1
        with log.open("wb") as out:
            self._process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                             stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self._process.pid

    def wait_ready(self, url: str) -> None:
        deadline = time.monotonic() + START_SECONDS
        with httpx.Client(trust_env=False, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self._process.returncode}:\n{self.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(url).status_code == 200:
                        return
                time.sleep(0.2)
        raise RuntimeError(f"{self.name} was not ready within {START_SECONDS:g} s:\n{self.tail()}")

    def tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        if self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(timeout=5)


def _medops_gateway(endpoint: Endpoint, folder: Path) -> tuple[Server, str, str]:
    """`medops gateway` as a user runs it: a key from `medops gateway key add`, then the server."""
    config, data = folder / "config", folder / "data"
    config.mkdir(parents=True)
    data.mkdir(parents=True)
    (config / "medops.toml").write_text(MEDOPS_TOML)
    env = _clean_env(MEDOPS_CONFIG_DIR=str(config), MEDOPS_DATA_DIR=str(data), GROQ_BASE_URL=endpoint.url)
    medops = str(Path(sys.executable).with_name("medops"))
    added = subprocess.run([medops, "gateway", "key", "add", "bench", "--agent", "triage", "--priority", "critical"],
                           env=env, capture_output=True, text=True, timeout=60, check=False)
    if added.returncode != 0:
        raise RuntimeError(f"medops gateway key add failed:\n{added.stderr}")
    key = added.stdout.strip().splitlines()[-1]
    port = _free_port()
    server = Server("medops gateway", [medops, "gateway", "--port", str(port)], env, folder / "gateway.log")
    url = f"http://127.0.0.1:{port}"
    try:
        server.wait_ready(f"{url}/healthz")
    except BaseException:
        server.stop()
        raise
    return server, f"{url}/openai/v1", key


def _litellm_installed() -> Path:
    """LiteLLM's proxy in the bench's own venv, installed there once; RuntimeError saying why if it cannot be."""
    python = LITELLM_VENV / "bin" / "python"
    litellm = LITELLM_VENV / "bin" / "litellm"
    probe = [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        found = subprocess.run(probe, capture_output=True, text=True, timeout=60).stdout.strip()
        if found == LITELLM_VERSION and litellm.exists():
            return litellm
    print(f"\ninstalling litellm[proxy]=={LITELLM_VERSION} into {LITELLM_VENV} (once; kept for later runs)...",
          flush=True)
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True, capture_output=True,
                           timeout=120)
        installed = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                                    f"litellm[proxy]=={LITELLM_VERSION}"], capture_output=True, text=True,
                                   timeout=INSTALL_SECONDS, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise RuntimeError(f"cannot make its venv ({type(exc).__name__}: {exc})") from None
    if installed.returncode != 0 or not litellm.exists():
        last = [line for line in installed.stderr.splitlines() if "WARNING: Location" not in line][-3:]
        raise RuntimeError(f"pip install litellm[proxy]=={LITELLM_VERSION} failed: {' | '.join(last)}")
    return litellm


def _litellm_proxy(endpoint: Endpoint, folder: Path) -> tuple[Server, str, str]:
    litellm = _litellm_installed()
    master_key = "sk-bench-" + secrets.token_hex(16)
    config = folder / "litellm.yaml"
    config.write_text(LITELLM_YAML.format(model=MODEL, api_base=f"{endpoint.url}/openai/v1", master_key=master_key))
    port = _free_port()
    # The cost map from the package, not fetched from GitHub: loopback only.
    env = _clean_env(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_LOG="ERROR")
    server = Server("LiteLLM proxy", [str(litellm), "--config", str(config), "--host", "127.0.0.1", "--port",
                                      str(port), "--num_workers", "1", "--telemetry", "False"],
                    env, folder / "litellm.log")
    url = f"http://127.0.0.1:{port}"
    try:
        server.wait_ready(f"{url}/health/liveliness")
    except BaseException:
        server.stop()
        raise
    return server, f"{url}/v1", master_key


# --- the measuring -------------------------------------------------------------------------------

@dataclass
class Way:
    name: str
    base_url: str
    key: str
    pid: int  # the process it talks to: the endpoint (direct) or the proxy
    latencies: list[float] = field(default_factory=list)
    first_chunks: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)
    errors: int = 0
    cpu_seconds: float = 0.0  # the process's CPU time over its plain requests
    client: openai.OpenAI | None = None

    def sync_client(self) -> openai.OpenAI:
        if self.client is None:
            self.client = openai.OpenAI(base_url=self.base_url, api_key=self.key, max_retries=0,
                                        timeout=CLIENT_TIMEOUT, http_client=httpx.Client(trust_env=False))
        return self.client


def _ask(client: openai.OpenAI) -> float:
    started = time.perf_counter()
    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES,  # type: ignore[arg-type]
                                                max_completion_tokens=MAX_TOKENS)
    elapsed = time.perf_counter() - started
    assert completion.choices[0].message.content
    return elapsed


def _first_chunk(client: openai.OpenAI) -> float:
    started = time.perf_counter()
    stream = client.chat.completions.create(model=MODEL, messages=MESSAGES,  # type: ignore[arg-type]
                                            max_completion_tokens=MAX_TOKENS, stream=True)
    with stream:
        chunks = iter(stream)
        next(chunks)
        elapsed = time.perf_counter() - started
        assert sum(1 for _ in chunks) > 0
    return elapsed


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def _measure(ways: list[Way], action: Callable[[openai.OpenAI], float], total: int, into: str) -> None:
    """`total` calls per way in ROUNDS rounds, the order of the ways rotating each round; for the plain ones, the
    CPU time the process the way talks to spends on them (less noisy than wall time on a shared machine)."""
    for round_number in range(ROUNDS):
        shift = round_number % len(ways)
        for way in ways[shift:] + ways[:shift]:
            client = way.sync_client()
            cpu_before = _cpu(way.pid)
            for _ in range(total // ROUNDS):
                try:
                    getattr(way, into).append(action(client))
                except openai.OpenAIError:
                    way.errors += 1
            if into == "latencies":
                way.cpu_seconds += _cpu(way.pid) - cpu_before


async def _burst(way: Way) -> float:
    """Requests/s of CONCURRENCY callers sending BURST requests (or what they sent within BURST_SECONDS).

    An aiohttp client, not the SDK's: httpx (under the openai SDK) tops out near 60 requests/s at 200 in flight
    here, so the SDK would measure itself; aiohttp sends the SDK's request (body and key) at thousands a second.
    """
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    headers = {"Authorization": f"Bearer {way.key}", "Content-Type": "application/json"}
    body = orjson.dumps({"model": MODEL, "messages": MESSAGES, "max_completion_tokens": MAX_TOKENS})
    url = f"{way.base_url}/chat/completions"
    tickets = iter(range(CONCURRENCY))  # one request per caller first: the pool's connections open
    done = 0
    deadline = time.perf_counter() + BURST_SECONDS

    async def caller(session: aiohttp.ClientSession) -> None:
        nonlocal done
        for _ in tickets:
            if time.perf_counter() > deadline:
                return
            try:
                async with session.post(url, data=body, headers=headers) as answer:
                    completion = orjson.loads(await answer.read())
                    if answer.status != 200 or not completion["choices"][0]["message"]["content"]:
                        raise ValueError(f"HTTP {answer.status}")
                done += 1
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, IndexError, TypeError):
                way.errors += 1

    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False) as session:
        await asyncio.gather(*(caller(session) for _ in range(CONCURRENCY)))
        tickets = iter(range(BURST))
        done = 0
        started = time.perf_counter()
        deadline = started + BURST_SECONDS
        await asyncio.gather(*(caller(session) for _ in range(CONCURRENCY)))
        return done / (time.perf_counter() - started)


async def _throughput(ways: list[Way]) -> None:
    for round_number in range(BURST_ROUNDS):
        order = ways if round_number % 2 == 0 else ways[::-1]
        for way in order:
            way.rates.append(await _burst(way))


# --- the table -----------------------------------------------------------------------------------

def _pct(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:7.2f}"


def _table(ways: list[Way]) -> list[str]:
    direct = ways[0]
    base50, base99 = statistics.median(direct.latencies), _pct(direct.latencies, 99)
    lines = [f"{'':16} {'p50 ms':>8} {'p99 ms':>8} {'over p50':>9} {'over p99':>9} {'TTFB p50':>9} "
             f"{'req/s @' + str(CONCURRENCY):>11} {'CPU ms/req':>11} {'errors':>7}"]
    for way in ways:
        p50, p99 = statistics.median(way.latencies), _pct(way.latencies, 99)
        over = ("", "") if way is direct else (f"{(p50 - base50) * 1000:+8.2f}", f"{(p99 - base99) * 1000:+8.2f}")
        lines.append(f"{way.name:16} {_ms(p50):>8} {_ms(p99):>8} {over[0]:>9} {over[1]:>9} "
                     f"{_ms(statistics.median(way.first_chunks)):>9} {max(way.rates):11.0f} "
                     f"{_ms(way.cpu_seconds / len(way.latencies)):>11} {way.errors:7d}")
    return lines


def _goals(direct: Way, medops: Way, litellm: Way | None) -> list[str]:
    medops_over = statistics.median(medops.latencies) - statistics.median(direct.latencies)
    lines = [f"goal: medops gateway overhead p50 at most +{GOAL_OVERHEAD_MS:g} ms: {medops_over * 1000:+.2f} ms  "
             f"{'MET' if medops_over * 1000 <= GOAL_OVERHEAD_MS else 'NOT MET'}"]
    if litellm is None:
        lines.append("goal: medops overhead at most a fifth of LiteLLM's: not measured (LiteLLM skipped)")
    else:
        litellm_over = statistics.median(litellm.latencies) - statistics.median(direct.latencies)
        bound = litellm_over * GOAL_SHARE_OF_LITELLM
        lines.append(f"goal: medops overhead p50 at most a fifth of LiteLLM's ({litellm_over * 1000:+.2f} ms, "
                     f"a fifth {bound * 1000:+.2f} ms): {medops_over * 1000:+.2f} ms  "
                     f"{'MET' if medops_over <= bound else 'NOT MET'}")
    return lines


def test_bench_gateway_beside_direct_and_litellm(tmp_path: Path) -> None:
    notes: list[str] = []
    with contextlib.ExitStack() as stack:
        endpoint = Endpoint()
        stack.callback(endpoint.stop)
        gateway, gateway_url, gateway_key = _medops_gateway(endpoint, tmp_path / "medops")
        stack.callback(gateway.stop)
        ways = [Way("direct", f"{endpoint.url}/openai/v1", "bench-direct", endpoint.pid),
                Way("medops gateway", gateway_url, gateway_key, gateway.pid)]
        litellm_way: Way | None = None
        try:
            proxy, proxy_url, proxy_key = _litellm_proxy(endpoint, tmp_path)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            notes.append(f"LiteLLM proxy rows skipped: {exc}")
        else:
            stack.callback(proxy.stop)
            litellm_way = Way(f"LiteLLM {LITELLM_VERSION}", proxy_url, proxy_key, proxy.pid)
            ways.append(litellm_way)
        for way in ways:
            stack.callback(lambda way=way: way.client.close() if way.client is not None else None)

        for way in list(ways):  # warm every way, and check each answers before anything is timed
            try:
                for _ in range(WARM):
                    _ask(way.sync_client())
                    _first_chunk(way.sync_client())
            except openai.OpenAIError as exc:
                if way is not litellm_way:
                    raise
                notes.append(f"LiteLLM proxy rows skipped: it did not answer ({type(exc).__name__}: {exc})")
                ways.remove(way)
                litellm_way = None
        _measure(ways, _ask, SINGLE, "latencies")
        _measure(ways, _first_chunk, STREAMS, "first_chunks")
        asyncio.run(_throughput(ways))

    answered, refused = endpoint.counts or (0, 0)
    print()
    print(f"one local endpoint (own process, no simulated latency); openai SDK {openai.__version__}, same client "
          f"settings each way; {SINGLE} plain and {STREAMS} streamed requests per way in {ROUNDS} alternating "
          f"rounds; throughput: {CONCURRENCY} aiohttp callers, best of {BURST_ROUNDS} rounds of {BURST}")
    print("medops gateway: `medops gateway` subprocess (GROQ_BASE_URL at the endpoint, none in-process), key from "
          "`medops gateway key add --priority critical` (no batch wait), batch_interval 0, quota never binding, "
          "groq_concurrent and the HTTP pool 1,000 (the defaults, 10 in flight and 10 kept alive, would cap the "
          f"{CONCURRENCY}-caller figure)")
    if litellm_way is not None:
        print(f"LiteLLM proxy {LITELLM_VERSION}: `litellm --config --num_workers 1`, openai/ provider at the same "
              "endpoint, master key, its default logging")
    for note in notes:
        print(note)
    print("CPU ms/req: CPU time of the process each way talks to (direct: the endpoint; a proxy: itself alone) "
          "over its plain requests, core background work included")
    for line in _table(ways):
        print(line)
    for line in _goals(ways[0], ways[1], litellm_way):
        print(line)
    print(f"endpoint: {answered} answered, {refused} refused (must be 0); 2 shared cores: figures are noisy")
    assert refused == 0
    assert ways[0].errors == 0 and ways[1].errors == 0
