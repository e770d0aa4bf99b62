"""`medops gateway`: Groq's API for agents through the core (a fleet member), and its agent keys."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from typing import Any

from medops.console.commands.common import load, reads_only
from medops.core.errors import ConfigError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "gateway", help="serve Groq's API to agents through the core's queue and the fleet's quota (agent keys)",
        description="Agents point the groq SDK at http://HOST:PORT (the openai SDK at http://HOST:PORT/openai/v1) "
                    "with a key from `medops gateway key add`; every request goes through the scheduler and the "
                    "fleet's quota. The real GROQ_API_KEY stays here.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback)")
    parser.add_argument("--port", type=int, default=8787, help="port to listen on (default 8787; 0: any free one)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="let --host be an address other machines reach (agent keys are required anyway)")
    parser.add_argument("--key-in-flight", type=int, default=None, metavar="N",
                        help="at most N requests in flight per key on this gateway (more get a 429)")
    parser.set_defaults(handler=run_gateway, changes=lambda a: "serving the gateway (agents' requests spend quota)")
    actions = parser.add_subparsers(dest="gateway_action", metavar="key")
    key = actions.add_parser("key", help="add, list or revoke agent keys",
                             description="Agent keys are kept hashed: in the fleet's store when store_url is set "
                                         "(shared by every gateway), else in the data folder.")
    key_actions = key.add_subparsers(dest="key_action", metavar="ACTION", required=True)
    add = key_actions.add_parser("add", help="make a key; it is printed once, alone on the last line")
    add.add_argument("name", help="the key's name: the client label on its requests (letters, digits, . _ -)")
    add.add_argument("--agent", required=True, help="the agent it speaks for: triage, diagnosis, medication, "
                                                    "documentation or oncall")
    add.add_argument("--priority", required=True, choices=("critical", "high", "normal"),
                     help="its requests' priority unless X-Medops-Priority asks another")
    add.add_argument("--max-priority", choices=("critical", "high", "normal"),
                     help="the most X-Medops-Priority may ask (default: --priority)")
    add.add_argument("--models", default="", help="models it may use, comma-separated (default: every one)")
    add.set_defaults(handler=key_add, changes=lambda a: "adding an agent key")
    key_actions.add_parser("list", help="every key: name, agent, priorities, models, created, last used"
                           ).set_defaults(handler=key_list, changes=reads_only)
    revoke = key_actions.add_parser("revoke", help="forget a key: refused by every gateway within a second")
    revoke.add_argument("name")
    revoke.set_defaults(handler=key_revoke, changes=lambda a: "revoking an agent key")


def _book(args: argparse.Namespace) -> Any:
    from medops.core.clock import SystemClock
    from medops.core.gateway.key_book import COMMAND_BUDGET, open_key_book
    from medops.core.settings.paths import locate

    return open_key_book(load(args).settings, locate(), SystemClock(), os.environ, budget=COMMAND_BUDGET)


def key_add(args: argparse.Namespace) -> int:
    from medops.core.gateway.keys import digest, new_key, new_secret

    settings = load(args).settings
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in settings.models]
    if unknown:
        raise ConfigError(f"--models names {', '.join(unknown)}, not configured; configured: "
                          f"{', '.join(sorted(settings.models))}")
    key = new_key(args.name, args.agent, args.priority, args.max_priority, models, time.time())
    secret = new_secret()

    async def add() -> None:
        book = _book(args)
        try:
            await book.add(key, digest(secret))
        finally:
            await book.close()
    asyncio.run(add())
    print(f"added key {key.name}: agent {key.agent}, priority {key.priority.label} (at most "
          f"{key.max_priority.label}), models {', '.join(key.models) or 'all'}")
    print("the key is shown this once; give it to the agent as its API key (Authorization: Bearer ...):")
    print(secret)
    return 0


def key_list(args: argparse.Namespace) -> int:
    async def keys() -> Any:
        book = _book(args)
        try:
            return await book.keys()
        finally:
            await book.close()
    found = asyncio.run(keys())
    if not found:
        print("no agent keys; make one with: medops gateway key add NAME --agent AGENT --priority P")
        return 0
    print(f"{'name':<24} {'agent':<14} {'priority':<8} {'max':<8} {'created':<16} {'last used':<16} models")
    for key in found:
        print(f"{key.name:<24} {key.agent:<14} {key.priority.label:<8} {key.max_priority.label:<8} "
              f"{_when(key.created):<16} {_when(key.last_used):<16} {', '.join(key.models) or 'all'}")
    return 0


def key_revoke(args: argparse.Namespace) -> int:
    async def revoke() -> bool:
        book = _book(args)
        try:
            return bool(await book.revoke(args.name))
        finally:
            await book.close()
    if not asyncio.run(revoke()):
        print(f"medops gateway: no key called {args.name!r} (see medops gateway key list)", file=sys.stderr)
        return 1
    print(f"revoked key {args.name}: every gateway refuses it within a second")
    return 0


def _when(wall: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(wall)) if wall else "never"


def run_gateway(args: argparse.Namespace) -> int:
    from medops.core.clock import SystemClock
    from medops.core.gateway.key_book import open_key_book
    from medops.core.gateway.server import GatewayServer
    from medops.core.gateway.stats import GatewayStats
    from medops.core.listener import is_loopback_host
    from medops.core.resource_core import ResourceCore
    from medops.core.settings.paths import locate

    if not 0 <= args.port <= 65_535:
        raise ConfigError(f"--port {args.port} is not a port; use 1 to 65535, or 0 for any free one")
    if args.key_in_flight is not None and args.key_in_flight < 1:
        raise ConfigError("--key-in-flight must be at least 1 (leave it out for no cap)")
    settings = load(args).settings
    stats = GatewayStats()
    core = ResourceCore(settings, locate(), role="gateway", gateway=stats.snapshot)
    keys = open_key_book(settings, locate(), SystemClock(), os.environ)
    server = GatewayServer(core, keys, host=args.host, port=args.port, allow_remote=args.allow_remote,
                           key_in_flight=args.key_in_flight, stats=stats)
    if not is_loopback_host(args.host):
        print(f"medops: warning: the gateway listens on {args.host}, reachable beyond this machine over plain "
              "http; only requests with an agent key are answered", file=sys.stderr)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await core.start()
        try:
            await server.start()
            print(f"medops gateway listening on {server.url}", flush=True)
            print(f"  groq SDK: Groq(base_url=\"{server.url}\"); openai SDK: OpenAI(base_url=\"{server.url}"
                  "/openai/v1\"); with a key from `medops gateway key add`")
            print("  Ctrl-C (or SIGTERM) stops it: no new requests, those in flight get a few seconds.", flush=True)
            await stop.wait()
        finally:
            await server.stop()
            await keys.close()
            await core.stop()

    asyncio.run(serve())
    print(f"gateway stopped after {stats.requests} requests", file=sys.stderr)
    return 0

