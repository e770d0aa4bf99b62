"""`medops gateway key ...`: a key printed once, alone on the last line; listed without it; revoked."""

from __future__ import annotations

import pytest

from medops.console.cli import main
from tests.helpers.redis_server import RedisServer


def add(capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    assert main(["gateway", "key", "add", "triage-bot", "--agent", "triage", "--priority", "high",
                 "--max-priority", "critical", "--models", "llama-3.1-8b-instant", *extra]) == 0
    return capsys.readouterr().out


def test_key_add_prints_the_key_alone_on_the_last_line_and_list_never_shows_it(
        capsys: pytest.CaptureFixture[str]) -> None:
    out = add(capsys)
    key = out.splitlines()[-1]
    assert key.startswith("mdk_") and len(key) > 40 and key == key.strip()
    assert out.count(key) == 1
    assert main(["gateway", "key", "list"]) == 0
    listed = capsys.readouterr().out
    assert "triage-bot" in listed and "high" in listed and "critical" in listed and "never" in listed
    assert key not in listed and key[4:] not in listed


def test_a_name_taken_an_unknown_model_or_agent_is_refused_saying_why(capsys: pytest.CaptureFixture[str]) -> None:
    add(capsys)
    assert main(["gateway", "key", "add", "triage-bot", "--agent", "triage", "--priority", "high"]) == 2
    assert "exists; revoke it first" in capsys.readouterr().err
    assert main(["gateway", "key", "add", "b", "--agent", "triage", "--priority", "high", "--models", "gpt-9"]) == 2
    assert "gpt-9, not configured" in capsys.readouterr().err
    assert main(["gateway", "key", "add", "b", "--agent", "janitor", "--priority", "high"]) == 2
    assert "--agent must be one of" in capsys.readouterr().err


def test_key_revoke_forgets_it(capsys: pytest.CaptureFixture[str]) -> None:
    add(capsys)
    assert main(["gateway", "key", "revoke", "triage-bot"]) == 0
    assert main(["gateway", "key", "revoke", "triage-bot"]) == 1
    assert "no key called" in capsys.readouterr().err
    main(["gateway", "key", "list"])
    assert "no agent keys" in capsys.readouterr().out


def test_with_a_store_the_keys_are_the_fleets(redis_server: RedisServer, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDOPS_STORE_URL", redis_server.url)
    key = add(capsys).splitlines()[-1]
    main(["gateway", "key", "list"])
    assert "triage-bot" in capsys.readouterr().out
    monkeypatch.delenv("MEDOPS_STORE_URL")  # the data folder's book is another one
    main(["gateway", "key", "list"])
    assert "no agent keys" in capsys.readouterr().out
    assert key


def test_the_gateway_refuses_a_remote_host_unless_asked(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gateway", "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "loopback only" in capsys.readouterr().err
