"""A fleet run on a real redis-server whose default user has a password, every process as its role's ACL user.

`medops fleet acl --apply` (as the store's admin) creates the users. Three `medops ask --file` members run as
the member user against a local endpoint that wants its own key; `medops --attach --read-only` runs in tmux as
the reader user; `medops fleet pause` runs as the operator user. The endpoint's own count, per member, says
who sent what.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from aiohttp import web
from redis.exceptions import AuthenticationError

from medops.core.fleet.commands import parsed_command
from medops.core.groq.local.faults import FaultModes
from medops.core.groq.local.server import LocalEndpoint
from medops.core.settings.config import ModelLimits
from medops.core.settings.paths import Locations
from tests.helpers.endpoint_thread import EndpointThread
from tests.helpers.redis_server import RedisServer
from tests.helpers.tmux import Tmux
from tests.helpers.waiting import wait_for

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
              pytest.mark.usefixtures("knowledge_ready")]

MODEL = "llama-3.1-8b-instant"
LIMITS = ModelLimits(rpm=1_000, rpd=14_400, tpm=1_000_000, tpd=10_000_000)  # room for all: only pause holds
PER_MEMBER = 30  # one at a time, a second each: a member runs about 30 s
GROQ_KEY = "gsk_e2e_only_this_key"
NAMESPACE = "ward"
ADMIN = "admin-secret"
PASSWORDS = {"member": "member-secret", "reader": "reader-secret", "operator": "operator-secret",
             "oncall": "oncall-secret"}
MEDOPS = [sys.executable, "-m", "medops"]


class CountingEndpoint(LocalEndpoint):
    """The local endpoint, counting each chat request on arrival by the member that sent it (from its prompt)."""

    def __init__(self) -> None:
        super().__init__({MODEL: LIMITS}, api_key=GROQ_KEY, faults=FaultModes(slow_rate=1.0, slow_seconds=1.0))
        self.by_member: Counter[int] = Counter()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        found = re.search(rb"e2e prompt (\d+)-", await request.read())  # read once; aiohttp keeps the body
        if found:
            self.by_member[int(found[1])] += 1
        return await super()._chat(request)


def _env(url: str, role: str | None, **extra: str) -> dict[str, str]:
    """The environment of a process connecting as `role`'s user (None: the store's admin)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDOPS_") and k not in ("GROQ_API_KEY",
                                                                                          "GROQ_BASE_URL")}
    env.update(MEDOPS_STORE_URL=url, MEDOPS_STORE_NAMESPACE=NAMESPACE,
               MEDOPS_STORE_PASSWORD=PASSWORDS[role] if role else ADMIN, **extra)
    if role:
        env["MEDOPS_STORE_USER"] = f"medops-{role}"
    return env


def _medops(url: str, role: str | None, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MEDOPS, *args], env=_env(url, role, **extra), capture_output=True, text=True,
                          timeout=60)


def _member(tmp_path: Path, n: int, url: str, endpoint_url: str, knowledge: Path) -> subprocess.Popen[str]:
    data = tmp_path / f"member-{n}"
    data.mkdir(mode=0o700)
    shutil.copyfile(knowledge, data / "knowledge.duckdb")
    config = tmp_path / f"member-{n}.toml"
    config.write_text(f'default_model = "{MODEL}"\n[models."{MODEL}"]\n'
                      f"rpm = {LIMITS.rpm}\nrpd = {LIMITS.rpd}\ntpm = {LIMITS.tpm}\ntpd = {LIMITS.tpd}\n")
    prompts = tmp_path / f"prompts-{n}.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"e2e prompt {n}-{i}", "agent": "triage"}) + "\n"
                               for i in range(PER_MEMBER)))
    env = _env(url, "member", GROQ_API_KEY=GROQ_KEY, GROQ_BASE_URL=endpoint_url, MEDOPS_DATA_DIR=str(data),
               MEDOPS_CONFIG_DIR=str(tmp_path / f"config-{n}"))
    return subprocess.Popen([*MEDOPS, "--config", str(config), "ask", "--file", str(prompts), "--concurrency", "1"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def admin_store(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server whose default user needs the admin's password: nothing connects as it by accident."""
    server = RedisServer(tmp_path / "redis", args=("--requirepass", ADMIN))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _row(screen: str, instance: str) -> str:
    return next((line for line in screen.splitlines() if instance in line and "alive" in line), "")


def test_three_members_a_read_only_console_and_an_operator_each_as_its_acl_user(
        tmp_path: Path, admin_store: RedisServer, built_knowledge: Path, locations: Locations) -> None:
    url = admin_store.url
    acl = _medops(url, None, "fleet", "acl", "--apply",
                  **{f"MEDOPS_ACL_{role.upper()}_PASSWORD": pw for role, pw in PASSWORDS.items()})
    assert acl.returncode == 0, acl.stderr
    assert f"created medops-member, medops-reader, medops-operator, medops-oncall on namespace {NAMESPACE}" \
        in acl.stdout
    unauthenticated = redis.Redis.from_url(url)
    with pytest.raises(AuthenticationError):  # no password, no store
        unauthenticated.ping()
    # Closed, not left to the collector: the traceback pytest keeps holds the client, and its open connection
    # counted as a second "default" user below (seen once in a fresh-clone run).
    unauthenticated.close()
    admin = redis.Redis.from_url(url, password=ADMIN, decode_responses=True)
    tmux = Tmux(locations)
    runs: list[subprocess.Popen[str]] = []
    try:
        # The read-only console first, as the reader user: it is up when the members come.
        tmux.start(220, 50, "--attach", "--read-only", **{k: v for k, v in _env(url, "reader").items()
                                                          if k.startswith("MEDOPS_STORE_")})
        assert wait_for(lambda: tmux.shows("live", "attached to the fleet"), within=30), tmux.screen()
        with EndpointThread(CountingEndpoint()) as endpoint:
            assert isinstance(endpoint, CountingEndpoint)
            runs = [_member(tmp_path, n, url, endpoint.url, built_knowledge) for n in range(3)]
            assert wait_for(lambda: all(endpoint.by_member[n] >= 2 for n in range(3)) or
                            any(run.poll() is not None for run in runs), within=90), endpoint.by_member
            assert all(run.poll() is None for run in runs), [run.communicate() for run in runs]

            listed = _medops(url, "reader", "fleet", "--json")  # the reader lists them: one per process
            assert listed.returncode == 0, listed.stderr
            members = {m["pid"]: m["instance"] for m in map(json.loads, listed.stdout.splitlines())
                       if m["record"] == "member" and m["state"] == "alive"}
            instances = [members[run.pid] for run in runs]

            tmux.keys("7")
            assert wait_for(lambda: all(_row(tmux.screen(), i) for i in instances), within=30), tmux.screen()
            rpm = re.compile(rf"{re.escape(MODEL)} rpm: \d+/1,000  \((.*)\)")
            assert wait_for(lambda: any(
                all(i in m[1] for i in instances) for m in rpm.finditer(tmux.screen())), within=30), tmux.screen()

            # Every connection to the store is a fleet user's, but this test's own admin one (the console
            # connects for each reading, so its user is looked for over a few of them).
            seen: set[str] = set()

            def connected() -> bool:
                users = Counter(c["user"] for c in admin.client_list())
                assert users["default"] == 1, users
                seen.update(users)
                return seen == {"default", "medops-member", "medops-reader"}

            assert wait_for(connected, within=10), seen

            paused = instances[1]
            pause = _medops(url, "operator", "fleet", "pause", "--instance", paused)
            assert pause.returncode == 0, pause.stderr
            assert re.search(rf"pause \(by store user medops-operator, .+\), command cmd-\w+:\n  applied\s+"
                             rf"{paused}", pause.stdout), pause.stdout
            time.sleep(2.5)  # the one it had in flight when the pause came finishes
            held = endpoint.by_member.copy()

            # Neither a reader nor a member may send commands: refused, exit 2, nothing added to the stream.
            sent = admin.xlen(f"medops:{{{NAMESPACE}}}:commands")
            for role in ("reader", "member"):
                refused = _medops(url, role, "fleet", "resume", "--instance", paused)
                assert refused.returncode == 2, (role, refused.stdout, refused.stderr)
                assert "may not send commands to the fleet: set store_user (MEDOPS_STORE_USER) to an operator " \
                       "user" in refused.stderr, refused.stderr
            assert admin.xlen(f"medops:{{{NAMESPACE}}}:commands") == sent == 1
            assert wait_for(lambda: "alive paused" in _row(tmux.screen(), paused)), tmux.screen()
            time.sleep(3)  # room for several more each, one a second

            moved = {n: endpoint.by_member[n] - held[n] for n in range(3)}
            assert moved[1] == 0 and held[1] < PER_MEMBER and runs[1].poll() is None, (held, moved)
            assert moved[0] >= 2 and moved[2] >= 2, (held, moved)  # the others went on
            counts_while_paused = (dict(held), moved)

            resume = _medops(url, "operator", "fleet", "resume", "--instance", paused)
            assert resume.returncode == 0 and f"applied   {paused}" in resume.stdout, resume.stdout
            outputs = [run.communicate(timeout=180) for run in runs]
            assert wait_for(lambda: "paused" not in _row(tmux.screen(), paused) or not _row(tmux.screen(), paused))
            stats = endpoint.stats
            per_member = dict(endpoint.by_member)
        recorded = [parsed_command(fields["command"]) for _, fields in admin.xrange(f"medops:{{{NAMESPACE}}}:commands")]
    finally:
        for run in runs:
            if run.poll() is None:  # a failed check must not leave a member paused for ever
                run.kill()
                run.communicate(timeout=10)
        tmux.kill()
        admin.close()
    for run, (out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err
        assert json.loads(out.splitlines()[-1])["summary"]["answered"] == PER_MEMBER
        assert "NOPERM" not in err and "permission" not in err.lower(), err  # the member user was enough
    assert per_member == {0: PER_MEMBER, 1: PER_MEMBER, 2: PER_MEMBER}
    assert stats.answered == 3 * PER_MEMBER and stats.rate_limited == 0 and stats.unauthorized == 0
    assert [(c.op, c.target, c.store_user) for c in recorded if c is not None] == [
        ("pause", paused, "medops-operator"), ("resume", paused, "medops-operator")]
    print(f"endpoint counts per member when paused {counts_while_paused[0]}, moved while paused "
          f"{counts_while_paused[1]}, at the end {per_member}")
