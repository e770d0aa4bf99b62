"""README's "Point your agents at medops" runs as written: its key command, then the groq SDK, the openai SDK
and curl examples against a real `medops gateway` process before the local endpoint."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from medops.core.groq.local.server import LocalEndpoint
from medops.core.settings.config import ModelLimits
from tests.helpers.endpoint_thread import EndpointThread
from tests.helpers.gateway_processes import MODEL, gateway, medops_for

README = Path(__file__).resolve().parents[2] / "README.md"
LIMITS = ModelLimits(rpm=1_000, rpd=100_000, tpm=10_000_000, tpd=100_000_000)


def section() -> str:
    text = README.read_text()
    assert "## Point your agents at medops" in text, "README lost its gateway section"
    return text.split("## Point your agents at medops", 1)[1].split("\n## ", 1)[0]


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section(), re.S)


@pytest.fixture(scope="module")
def agent_env(tmp_path_factory: pytest.TempPathFactory, built_knowledge: Path) -> Iterator[dict[str, str]]:
    """The README's key command run as written, and a gateway; the environment its examples read."""
    folder = tmp_path_factory.mktemp("readme-gateway")
    (setup, _curl) = blocks("sh")
    add = next(line for line in setup.splitlines() if line.startswith("medops gateway key add"))
    with EndpointThread(LocalEndpoint({MODEL: LIMITS})) as endpoint:
        medops = medops_for(folder, endpoint.url, built_knowledge, limits=LIMITS)
        done = medops.run(*shlex.split(add)[1:])
        assert done.returncode == 0, done.stderr
        with gateway(medops, folder / "gateway") as process:
            yield {**medops.env, "AGENT_KEY": done.stdout.splitlines()[-1], "GATEWAY": process.url}


def run(command: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_sections_examples_are_the_groq_sdk_the_openai_sdk_and_curl() -> None:
    groq_example, openai_example = blocks("python")
    assert "from groq import Groq" in groq_example and "from openai import OpenAI" in openai_example
    assert blocks("sh")[1].startswith("curl ")


def test_the_groq_sdk_example_runs_as_written(agent_env: dict[str, str], tmp_path: Path) -> None:
    script = tmp_path / "groq_agent.py"
    script.write_text(blocks("python")[0])
    assert "medops local endpoint" in run([sys.executable, str(script)], agent_env)


def test_the_openai_sdk_example_streams_as_written(agent_env: dict[str, str], tmp_path: Path) -> None:
    script = tmp_path / "openai_agent.py"
    script.write_text(blocks("python")[1])
    assert "medops local endpoint" in run([sys.executable, str(script)], agent_env)


def test_the_curl_example_runs_as_written(agent_env: dict[str, str]) -> None:
    answer = json.loads(run(["bash", "-c", blocks("sh")[1]], agent_env))
    assert "medops local endpoint" in answer["choices"][0]["message"]["content"]
