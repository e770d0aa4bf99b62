"""`medops endpoint --port N`: run the local Groq-compatible endpoint on its own."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from typing import Any

from medops.console.commands.common import load, reads_only
from medops.core.errors import ConfigError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "endpoint", help="run the local Groq-compatible endpoint (offline Groq for drills and tests)",
        description="Serve Groq's chat-completions API on loopback with each configured model's limits. "
                    "Point medops (or any groq client) at it with GROQ_BASE_URL=http://HOST:PORT.")
    parser.add_argument("--port", type=int, default=None, help="port to listen on (default: endpoint_port; 0: any)")
    parser.add_argument("--host", default=None, help="address to listen on (default: endpoint_host, loopback)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="let --host be an address other machines reach (needs --require-key)")
    parser.add_argument("--require-key", action="store_true",
                        help="accept only the key in GROQ_API_KEY (others get 401); the key is never printed")
    parser.add_argument("--latency-scale", type=float, default=1.0,
                        help="multiplier on the Groq-shaped latency (0: answer at once)")
    parser.add_argument("--error-rate", type=float, default=0.0,
                        help="share of admitted requests answered 500/502/503 (each counts against rpm/rpd as at Groq)")
    parser.add_argument("--capacity-rate", type=float, default=0.0,
                        help="share of admitted requests answered 498 (each counts against rpm/rpd)")
    parser.add_argument("--slow-rate", type=float, default=0.0, help="share of requests delayed --slow-seconds")
    parser.add_argument("--slow-seconds", type=float, default=0.0, help="extra delay of a slow answer")
    parser.add_argument("--seed", type=int, default=0, help="seed for the fault draws")
    # Offline Groq for drills: it spends no quota and changes nothing of the fleet's.
    parser.set_defaults(handler=run_endpoint, changes=reads_only)


def run_endpoint(args: argparse.Namespace) -> int:
    # Imported when run: every `medops` run imports this module to build its parser.
    from medops.core.groq.local.faults import FaultModes
    from medops.core.groq.local.server import LocalEndpoint
    from medops.core.listener import is_loopback_host

    settings = load(args).settings
    port = settings.endpoint_port if args.port is None else args.port
    if not 0 <= port <= 65_535:
        raise ConfigError(f"--port {port} is not a port; use 1 to 65535, or 0 for any free one")
    key = None
    if args.require_key:
        key = os.environ.get("GROQ_API_KEY", "").strip()
        if not key:
            raise ConfigError("--require-key needs GROQ_API_KEY set to the key clients must send")
    faults = FaultModes(latency_scale=args.latency_scale, error_rate=args.error_rate,
                        capacity_rate=args.capacity_rate, slow_rate=args.slow_rate,
                        slow_seconds=args.slow_seconds)
    host = args.host or settings.endpoint_host
    endpoint = LocalEndpoint(settings.models, host=host, port=port, api_key=key, faults=faults, seed=args.seed,
                             allow_remote=args.allow_remote)
    if not is_loopback_host(host):
        print(f"medops: warning: the local endpoint listens on {host}, reachable beyond this machine; only "
              "clients sending the key in GROQ_API_KEY are answered, over plain http", file=sys.stderr)

    async def serve() -> None:
        # Its own handlers, as the gateway and the worker have, in place before it says it listens: they hold
        # even when the process was started with SIGINT ignored (a child inherits that), and SIGTERM (systemd,
        # timeout) stops it cleanly too.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await endpoint.start()
        print(f"medops local endpoint listening on {endpoint.url}", flush=True)
        print(f"  use it with: GROQ_BASE_URL={endpoint.url}" + ("" if key else " (any key is accepted)"))
        for name, limits in sorted(settings.models.items()):
            print(f"  {name}: rpm={limits.rpm} rpd={limits.rpd} tpm={limits.tpm} tpd={limits.tpd}")
        print("  Ctrl-C (or SIGTERM) stops it.", flush=True)
        try:
            await stop.wait()
        finally:
            await endpoint.stop()

    with contextlib.suppress(KeyboardInterrupt):  # a Ctrl-C before the handlers are in place
        asyncio.run(serve())
    stats = endpoint.stats
    print(f"stopped after {stats.requests} requests: {stats.answered} answered, {stats.rate_limited} "
          f"rate-limited, {stats.injected_errors} injected errors", file=sys.stderr)
    return 0
