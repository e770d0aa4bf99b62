"""`medops serve`: the console for browsers, each tab its own `medops --attach` (no core) over the fleet's store."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from medops.console.commands.common import load
from medops.core.errors import ConfigError

DEFAULT_READER = "medops-reader"  # the names `medops fleet acl` gives its users (--user-prefix medops-)
DEFAULT_OPERATOR = "medops-operator"
MAX_VIEWERS = 1_000


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve", help="the console in a browser: each tab runs `medops --attach` (read-only unless --operator)",
        description="Open http://HOST:PORT in a browser; each tab watches the fleet through its store with a "
                    "console of its own and no core. Loopback by default: reach it from elsewhere through "
                    "`ssh -L 8000:127.0.0.1:8000 HOST`.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000; 0: any free one)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="let other machines reach it: --host may be any address, and every request needs "
                             "the token in MEDOPS_SERVE_TOKEN (?token= in the URL or the X-Medops-Token header)")
    parser.add_argument("--operator", action="store_true",
                        help="viewers may act (pause intake, set limits) as `medops --attach` does; default "
                             "read-only")
    parser.add_argument("--max-viewers", type=int, default=5, metavar="N",
                        help="browser tabs open at once at most (default 5); past it a page says why")
    parser.add_argument("--viewer-user", metavar="NAME",
                        help=f"the store's ACL user viewers connect as (default, when store_user is set: "
                             f"{DEFAULT_READER}, or {DEFAULT_OPERATOR} with --operator); its password from "
                             "MEDOPS_ACL_READER_PASSWORD (MEDOPS_ACL_OPERATOR_PASSWORD with --operator)")
    # Viewers are read-only unless --operator, so `medops --read-only serve` is what it says.
    parser.set_defaults(handler=serve, changes=lambda a: "serving an acting console (--operator: viewers pause "
                        "intake and set limits)" if a.operator else "")


def serve(args: argparse.Namespace) -> int:
    from medops.console.serve import TOKEN_ENV, Access, ViewerServer, viewer_environment
    from medops.core.fleet.attached import AttachedFleet
    from medops.core.listener import is_loopback_host
    from medops.core.settings.config import load_settings
    from medops.core.settings.paths import locate

    if not 0 <= args.port <= 65_535:
        raise ConfigError(f"--port {args.port} is not a port; use 1 to 65535, or 0 for any free one")
    if not 1 <= args.max_viewers <= MAX_VIEWERS:
        raise ConfigError(f"--max-viewers {args.max_viewers} is out of range: allowed 1 to {MAX_VIEWERS}")
    token = os.environ.get(TOKEN_ENV) or None
    if not is_loopback_host(args.host) and not args.allow_remote:
        raise ConfigError(f"--host {args.host} is reachable beyond this machine: pass --allow-remote (and set "
                          f"{TOKEN_ENV}), or open it through `ssh -L 8000:127.0.0.1:{args.port} HOST` instead")
    if args.allow_remote and token is None:
        raise ConfigError(f"--allow-remote needs a token: set {TOKEN_ENV} to a long random secret (e.g. "
                          "`openssl rand -base64 32`) and give it to the viewers")

    settings = load(args).settings
    role = "operator" if args.operator else "reader"
    user = args.viewer_user or ((DEFAULT_OPERATOR if args.operator else DEFAULT_READER) if settings.store_user
                                else None)
    password = os.environ.get(f"MEDOPS_ACL_{role.upper()}_PASSWORD") if user is not None else None
    environment = viewer_environment(os.environ, settings.store_url, user, password)
    viewer_settings = load_settings(locate(), _config(args), environment).settings
    # The viewers' store is read once, as they will read it: a missing store or a refused user ends here.
    asyncio.run(AttachedFleet(viewer_settings, env=environment).probe())

    argv = [sys.executable, "-m", "medops", *(["--config", str(c)] if (c := _config(args)) else []), "--attach",
            *([] if args.operator else ["--read-only"])]
    server = ViewerServer(argv, environment, host=args.host, port=args.port, max_viewers=args.max_viewers,
                          access=Access(token))
    logging.basicConfig(level=logging.INFO, format="medops serve: %(message)s", stream=sys.stderr)
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    return asyncio.run(_run(server, args, user))


def _config(args: argparse.Namespace) -> Path | None:
    named = args.config or os.environ.get("MEDOPS_CONFIG")
    return Path(named) if named else None


async def _run(server: Any, args: argparse.Namespace, user: str | None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    try:
        mode = "operators (they may pause intake and set limits)" if args.operator else "read-only"
        print(f"medops serve: the console at {server.url}: viewers {mode}, at most {args.max_viewers} at once"
              f"{f', as store user {user}' if user else ''}", flush=True)
        if args.allow_remote:
            print("  every request needs the token (?token= or the X-Medops-Token header); plain http: prefer "
                  "an SSH tunnel or a TLS proxy in front", flush=True)
        print("  Ctrl-C (or SIGTERM) stops it and every viewer.", flush=True)
        await stop.wait()
    finally:
        await server.stop()
    return 0
