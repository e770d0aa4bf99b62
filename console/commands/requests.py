"""`medops requests [--json]`: every Groq request the fleet's members hold, with why each waits; and the
operator's actions on one: `medops requests cancel ID`, `medops requests priority ID P`.

A running core publishes its rows with its snapshot to the fleet's store; that is the one way another
process reaches them. Without a store, the rows are on the console's Requests tab (8) only.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from medops.console.commands.common import load
from medops.console.request_table import duration, priority_text

if TYPE_CHECKING:
    from medops.core.fleet.view import FleetView

NO_STORE = ("medops requests: no fleet store is set (store_url / MEDOPS_STORE_URL), and a running core shares its "
            "requests with other processes only through one: see them on the console's Requests tab (8), or set "
            "store_url so every member publishes them")
PRIORITIES = ("critical", "high", "normal")
SHOWN_ID = 14  # characters of an id the listing shows
MIN_PREFIX = 6  # characters of an id at least, to pick a request by its start


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("requests", help="list the Groq requests every fleet member holds and why each "
                                                    "waits, or cancel one or change its priority (needs store_url)")
    parser.add_argument("action", nargs="?", default="list", choices=("list", "cancel", "priority"),
                        help="list (default); cancel ID; priority ID critical|high|normal")
    parser.add_argument("request", nargs="*", metavar="ID [PRIORITY]",
                        help=f"the request, by its id as the listing shows it ({SHOWN_ID} characters) or any start "
                             f"of it that names one request ({MIN_PREFIX} characters at least); and its new priority")
    parser.add_argument("--json", action="store_true",
                        help="print the rows as JSON Lines, one object per member a line: member, held (how many "
                             "it holds) and requests (the rows it publishes, most urgent first)")
    parser.set_defaults(handler=requests, changes=lambda a: {"cancel": "cancelling a request",
                                                             "priority": "changing a request's priority"
                                                             }.get(a.action, ""))


def requests(args: argparse.Namespace) -> int:
    from medops.core.fleet.membership import fleet_namespace
    from medops.core.fleet.view import FleetUnavailable, read_fleet

    settings = load(args).settings
    if not settings.store_url:
        print(NO_STORE, file=sys.stderr)
        return 2
    wanted = 2 if args.action == "priority" else 1 if args.action == "cancel" else 0
    if len(args.request) != wanted or (args.action == "priority" and args.request[1] not in PRIORITIES):
        print("medops requests: use `medops requests`, `medops requests cancel ID` or "
              "`medops requests priority ID critical|high|normal`", file=sys.stderr)
        return 2
    namespace = fleet_namespace(settings, os.environ)
    password = os.environ.get("MEDOPS_STORE_PASSWORD")
    try:
        view = asyncio.run(read_fleet(settings.store_url, namespace, password))
    except FleetUnavailable as exc:
        print(f"medops requests: {exc}", file=sys.stderr)
        return 2
    if args.action == "list":
        return listing(view, args.json)
    return act(view, settings.store_url, namespace, password, args.action, args.request)


def listing(view: FleetView, as_json: bool) -> int:
    """Each member's rows as it last published them (ids, figures and reasons; never prompt text); a row the
    store put off says whose requests go first."""
    members = sorted((instance, view.in_line(instance) or snapshot) for instance, snapshot in view.snapshots.items())
    if as_json:
        for instance, snapshot in members:
            print(json.dumps({"member": instance, "held": snapshot.scheduler.requests_held,
                              "requests": [dataclasses.asdict(r) for r in snapshot.scheduler.requests]},
                             sort_keys=True))
        return 0
    print(f"{'member':<24} {'id':<{SHOWN_ID}} {'prio':<16} {'state':<9} {'age':>6} {'deadline':>8} {'agent/key':<14} "
          f"{'model':<24} {'tokens':>7}  why it waits")
    for instance, snapshot in members:
        for r in snapshot.scheduler.requests:
            print(f"{instance:<24.24} {r.request_id:<{SHOWN_ID}.{SHOWN_ID}} {priority_text(r):<16} {r.state:<9} "
                  f"{duration(r.age):>6} {duration(r.deadline_left):>8} {r.client or r.agent:<14.14} "
                  f"{r.model:<24.24} {r.tokens:>7,}  {r.reason}")
        held, listed = snapshot.scheduler.requests_held, len(snapshot.scheduler.requests)
        if held > listed:
            print(f"{instance:<24.24} … {held - listed:,} more held, past the {listed:,} most urgent it publishes")
    if not members:
        print("no member has published a snapshot")
    return 0


def find_request(view: FleetView, given: str) -> tuple[str, str] | str:
    """The member holding the request whose id is `given`, or starts with it, and that id; else why not, in words
    saying what to do (no match, too short a start, or several: their ids as the listing shows them)."""
    rows = [(instance, r.request_id) for instance, snapshot in sorted(view.snapshots.items())
            for r in snapshot.scheduler.requests]
    exact = sorted({row for row in rows if row[1] == given})
    if exact:
        return exact[0]
    if len(given) < MIN_PREFIX:
        return (f"no member lists request {given}, and a start of an id needs {MIN_PREFIX} characters at least: "
                f"give the id as `medops requests` shows it ({SHOWN_ID} characters)")
    matches = sorted({row for row in rows if row[1].startswith(given)}, key=lambda row: row[1])
    if not matches:
        return (f"no member lists a request whose id starts with {given} (answered already, or past the rows a "
                "member publishes); list them with `medops requests`")
    if len(matches) == 1:
        return matches[0]
    width = SHOWN_ID  # as the listing shows them, longer only where that would not tell them apart
    while len({request_id[:width] for _, request_id in matches}) < len(matches) and width < 64:
        width += 1
    named = ", ".join(f"{request_id[:width]} ({instance})" for instance, request_id in matches[:10])
    more = f" and {len(matches) - 10} more" if len(matches) > 10 else ""
    return (f"{given} starts {len(matches)} requests' ids: {named}{more}; give more of the id, as "
            "`medops requests` shows it")


def act(view: FleetView, url: str, namespace: str, password: str | None, action: str, request: list[str]) -> int:
    """Send the cancel or priority change to the member holding the request; print its answer."""
    from medops.core.fleet.commands import issue
    from medops.core.fleet.view import FleetUnavailable

    found = find_request(view, request[0])
    if isinstance(found, str):
        print(f"medops requests {action}: {found}", file=sys.stderr)
        return 2
    holder, request_id = found
    op, value = ("cancel_request", "") if action == "cancel" else ("set_request_priority", request[1])
    try:
        command, acks = asyncio.run(issue(url, namespace, op, holder, request_id, value, password))
    except FleetUnavailable as exc:
        print(f"medops requests: {exc}", file=sys.stderr)
        return 2
    print(f"{command.describe()}, command {command.id}:")
    for ack in acks:
        print(f"  {ack.status:<9} {ack.instance}  {ack.detail}")
    return 0 if acks and all(ack.status == "applied" for ack in acks) else 1
