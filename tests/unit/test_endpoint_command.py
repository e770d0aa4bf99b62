"""`medops endpoint --port N`: the local endpoint on its own, in a real process."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

import groq
import pytest

MODEL = "llama-3.1-8b-instant"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_standalone_endpoint_serves_the_sdk_and_stops_on_ctrl_c() -> None:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "medops.console.cli", "endpoint", "--port", str(port),
                                "--latency-scale", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.strip() == f"medops local endpoint listening on http://127.0.0.1:{port}"
        with groq.Groq(api_key="any", base_url=f"http://127.0.0.1:{port}", max_retries=0) as client:
            completion = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
        assert (completion.choices[0].message.content or "").startswith("[medops local endpoint]")
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)  # a loaded machine (three test workers on two cores)
    assert process.returncode == 0
    assert "stopped after 1 requests: 1 answered" in err


def test_endpoint_require_key_without_a_key_is_refused(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from medops.console.cli import main

    assert main(["endpoint", "--port", "0", "--require-key"]) == 2
    assert "--require-key needs GROQ_API_KEY" in capsys.readouterr().err


def test_endpoint_refuses_a_fault_share_outside_0_to_1(capsys: pytest.CaptureFixture[str]) -> None:
    from medops.console.cli import main

    assert main(["endpoint", "--port", "0", "--error-rate", "1.5"]) == 2
    assert "error_rate = 1.5 must be a share from 0 to 1" in capsys.readouterr().err


def test_the_endpoint_stops_on_sigint_even_when_started_with_it_ignored() -> None:
    # A child inherits an ignored SIGINT (seen under a test runner): its own handler still stops it cleanly.
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "medops.console.cli", "endpoint", "--port", str(port),
                                "--latency-scale", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("medops local endpoint listening on")
        for line in process.stdout:  # its banner ends with how to stop it: the handlers are in place by then
            if "stops it" in line:
                break
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0 and "stopped after 0 requests" in err
