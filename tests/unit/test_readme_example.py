"""README's "Use the core in your agents" example, a triage agent, runs as written, as a fleet member on a real
store: a system prompt, a tool call answered from the knowledge base and sent back, a JSON-schema answer."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import redis

from medops.core.groq.requests import AGENTS
from medops.core.settings.paths import Locations
from tests.helpers.redis_server import RedisServer

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_triage_agent_in_the_readme_runs_as_written_as_a_fleet_member(
        tmp_path: Path, redis_server: RedisServer, isolated_folders: Locations, built_knowledge: Path) -> None:
    section = README.read_text().split("## Use the core in your agents", 1)[1]
    example = re.search(r"```python\n(.*?)```", section, re.S)
    assert example is not None, "README lost its example"
    script = tmp_path / "agent_worker.py"
    script.write_text(example.group(1))
    isolated_folders.ensure()
    shutil.copyfile(built_knowledge, isolated_folders.knowledge_db)
    env = {k: v for k, v in os.environ.items() if k != "GROQ_API_KEY"}
    env["MEDOPS_STORE_URL"] = redis_server.url
    done = subprocess.run([sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    # The tool call was answered from the real knowledge base, and the answer fits the schema's enum.
    assert len(lines) == 3, done.stdout
    assert re.fullmatch(r"lookup_icd10_code\([A-Z]\d\d\S*\): found", lines[0]), lines[0]
    assert re.fullmatch(r"\d+ tokens, queued \d+\.\d\d s", lines[1]), lines[1]
    assert re.fullmatch(r"acuity (emergent|urgent|non_urgent), red flags \d+", lines[2]), lines[2]
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    members = [key for key in client.scan_iter("medops:*:members")]
    roles = [value for key in members for value in client.hvals(key)]
    client.close()
    assert any('"role":"worker"' in role for role in roles)  # it joined the fleet as a worker


def test_the_readmes_agent_rule_is_the_one_requests_are_checked_by() -> None:
    rule = re.search(r"The agent label is (.*?)\.\s", README.read_text(), re.S)
    assert rule is not None, "README lost its agent rule"
    named = re.findall(r"[a-z]+", rule.group(1).split("(", 1)[1].split(")", 1)[0])
    assert tuple(named) == AGENTS
    assert "`" not in rule.group(1)  # no label pattern is promised: PromptRequest takes the known types only
