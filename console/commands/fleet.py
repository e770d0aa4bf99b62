"""`medops fleet [--json]`: the fleet's members and the organisation's quota, read from the store; and the
operator's actions on it: pause, resume, set a limit, clear a model's blocks, create the store's ACL users."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from medops.console.commands.common import load

if TYPE_CHECKING:
    from medops.core.fleet.view import FleetView
    from medops.core.settings.config import Settings

T = TypeVar("T")
# medops.core.fleet.acl.ROLES; not imported here, as that loads redis for every command line
ROLES = ("member", "reader", "operator", "oncall")
# Who connects as which user: printed by `medops fleet acl`, the same as the README's table.
USES = {
    "member": "cores: medops ask, medops worker, medops gateway, the library in your agents",
    "reader": "medops fleet (list, --json), medops --attach --read-only (in a terminal or served to a browser)",
    "operator": "medops fleet pause/resume/set/unset/clear/forget, medops --attach (acting, no core of its own), "
                "medops gateway key add/revoke",
    "oncall": "medops (the console with its own core) when it also acts on the fleet from its Fleet tab",
}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("fleet", help="list the fleet's members and the organisation's quota, or "
                                                 "pause, resume or set a limit on them, clear a model's 429 blocks "
                                                 "and 498 holds, or create the store's ACL users (no core)")
    parser.add_argument("action", nargs="?", default="list",
                        choices=("list", "pause", "resume", "set", "unset", "settings", "clear", "forget", "acl"),
                        help="list (default); pause or resume intake; set KEY VALUE (a limit: with --all also "
                             "kept in the store as a fleet-wide setting, which members that join later apply; "
                             "with --instance, that member only, until it restarts); unset KEY (remove the "
                             "fleet-wide value: members running keep the value they run until they restart, "
                             "members that join later use their own); settings (the fleet-wide settings and the "
                             "members running other values); clear MODEL "
                             "(operator: lift its blocks and holds); forget [INSTANCE|--left|--gone] (operator or "
                             "oncall: clear the rows of members that left or died); acl (print the member, reader, "
                             "operator and oncall users' ACL SETUSER lines, or create them with --apply)")
    parser.add_argument("setting", nargs="*", metavar="KEY VALUE",
                        help="with set: the limit and its new value; with unset: the limit; with clear: the "
                             "model; with forget: the member")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--instance", metavar="ID", help="the member to act on (see medops fleet)")
    target.add_argument("--all", action="store_true", help="act on every member alive")
    stopped = parser.add_mutually_exclusive_group()
    stopped.add_argument("--left", action="store_true", help="with forget: only members that stopped cleanly")
    stopped.add_argument("--gone", action="store_true", help="with forget: only members whose heartbeat expired")
    parser.add_argument("--json", action="store_true",
                        help="print the fleet as JSON Lines, one object a line, each with `record`: first the "
                             "fleet (store, read_at, skipped), then one per member, then one per quota window "
                             "(with settings: the fleet-wide settings as one object)")
    parser.add_argument("--namespace", metavar="NAME",
                        help="the fleet of another namespace on the same store, as `medops fleet` names them "
                             "(default: this Groq key's, or without a key this endpoint's)")
    parser.add_argument("--apply", action="store_true",
                        help="with acl: create the users on the store (connect as its admin) and load the library")
    parser.add_argument("--user-prefix", default="medops-", metavar="TEXT",
                        help="with acl: the users are TEXT + member, reader, operator, oncall (default medops-)")
    for role in ROLES:
        parser.add_argument(f"--{role}-password", metavar="PASSWORD",
                            help=f"with acl: the {role} user's password (else MEDOPS_ACL_{role.upper()}_PASSWORD, "
                                 "else one is generated and printed once)")
    parser.set_defaults(handler=fleet, changes=changes)


# What each action would change, refused under `medops --read-only`; list and settings only read.
CHANGES = {"pause": "pausing intake", "resume": "resuming intake", "set": "setting a limit",
           "unset": "removing a fleet-wide setting", "clear": "lifting a model's blocks and holds",
           "forget": "forgetting members' rows"}


def changes(args: argparse.Namespace) -> str:
    if args.action == "acl":  # without --apply it only prints the lines
        return "creating the store's ACL users (acl --apply)" if args.apply else ""
    return CHANGES.get(args.action, "")


def fleet(args: argparse.Namespace) -> int:
    if args.action == "clear":
        return clear(args)
    if args.action == "acl":
        return acl(args)
    if args.action == "forget":
        return forget(args)
    if args.action in ("settings", "unset"):
        return fleet_settings(args) if args.action == "settings" else unset(args)
    if args.action != "list":
        return act(args)
    from medops.core.fleet.membership import fleet_namespace
    from medops.core.fleet.view import FleetUnavailable, read_fleet

    settings = _load(args)
    try:
        view = asyncio.run(read_fleet(settings.store_url, fleet_namespace(settings, os.environ),
                                      os.environ.get("MEDOPS_STORE_PASSWORD")))
    except FleetUnavailable as exc:
        print(f"medops fleet: {exc}", file=sys.stderr)
        return 2
    if args.json:
        for record in json_records(view):
            print(json.dumps(record, sort_keys=True))
        return 0
    print(f"fleet {view.namespace} on {view.store}: {view.tally()}")
    if view.others:
        print(f"! {view.others_note('see one with: medops fleet --namespace NAME')}")
    print(f"{'instance':<28} {'role':<8} {'state':<12} {'beat':>5} {'up':>6} {'queued c/h/n':>12} {'flight':>6} "
          f"{'done':>6} {'fail':>5} {'429':>4} {'rpm':>4} {'lag99':>6} {'cpu%':>5} {'alerts':>6}")
    for m in view.members:
        queued = "/".join(str(m.queued.get(p, 0)) for p in ("critical", "high", "normal"))
        up = _duration(m.uptime(time.time()))
        state = f"{m.state} paused" if m.paused else m.state  # as the Fleet tab marks it
        print(f"{m.instance:<28.28} {m.role:<8} {state:<12} {m.heartbeat_age:>4.0f}s {up:>6} {queued:>12} "
              f"{m.in_flight:>6} {m.done:>6} {m.failed:>5} {m.rate_limited:>4} {m.own.get('rpm', 0):>4} "
              f"{m.loop_lag_p99_ms:>4.0f}ms {m.cpu_percent:>5.0f} {m.open_alerts:>6}")
    for w in view.windows:
        print(w.figures())
    if view.skipped:
        print(f"! {view.skipped_note()} (written by another medops version, or damaged)")
    return 0


def json_records(view: FleetView) -> list[dict[str, Any]]:
    """The fleet as JSON Lines records: the fleet's own line, a line per member, a line per window (so a line
    is one record, for `head`, `grep` and `jq -c 'select(.record == "member")'`)."""
    fleet = {"record": "fleet", "store": view.store, "namespace": view.namespace, "other_namespaces": view.others,
             "read_at": view.read_at, "store_time": view.store_time, "skipped": dict(view.skipped),
             "members": len(view.members), "windows": len(view.windows)}
    return [fleet, *({"record": "member"} | dataclasses.asdict(m) for m in view.members),
            *({"record": "window"} | dataclasses.asdict(w) for w in view.windows)]


def _load(args: argparse.Namespace) -> Settings:
    """The settings in force, with --namespace, if given, as the fleet's namespace (store_namespace)."""
    from medops.core.errors import ConfigError
    from medops.core.fleet.namespaces import SHOWN

    settings = load(args).settings
    if args.namespace is None:
        return settings
    if not SHOWN.fullmatch(args.namespace):
        raise ConfigError("--namespace takes a namespace as `medops fleet` names them: 1 to 64 letters, digits, "
                          "'.', '_' or '-'")
    return dataclasses.replace(settings, store_namespace=args.namespace)


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def act(args: argparse.Namespace) -> int:
    """Send pause, resume or a limit change to one member or all, then say who applied it."""
    from medops.core.fleet.commands import issue
    from medops.core.fleet.membership import fleet_namespace
    from medops.core.fleet.view import FleetUnavailable

    # What is asked is checked before whom it goes to: a missing value is the mistake to name first.
    if args.action == "set" and len(args.setting) == 1:
        print(f"medops fleet set: the value for {args.setting[0]} is missing (e.g. medops fleet set "
              f"{args.setting[0]} 5 --all)", file=sys.stderr)
        return 2
    if (args.action == "set") != bool(args.setting) or (args.action == "set" and len(args.setting) != 2):
        print("medops fleet: `set` takes KEY VALUE (e.g. medops fleet set groq_concurrent 5 --all); "
              "pause and resume take none", file=sys.stderr)
        return 2
    if args.action == "set" and (why := refused_setting(*args.setting)):
        print(f"medops fleet set: {why}. Nothing was sent.", file=sys.stderr)
        return 2
    if not (args.instance or args.all):
        print(f"medops fleet {args.action}: name the member (--instance ID, from `medops fleet`) or --all",
              file=sys.stderr)
        return 2
    key, value = args.setting if args.action == "set" else ("", "")
    settings = _load(args)
    try:
        command, acks = asyncio.run(issue(
            settings.store_url, fleet_namespace(settings, os.environ), "set_limit" if args.action == "set"
            else args.action, args.instance or "*", key, value, os.environ.get("MEDOPS_STORE_PASSWORD")))
    except FleetUnavailable as exc:
        print(f"medops fleet: {exc}", file=sys.stderr)
        return 2
    print(f"{command.describe()}, command {command.id}:")
    kept = False
    if args.action == "set" and args.all:
        from medops.core.fleet.shared_settings import SHARED, storable

        why = storable(key, value)
        kept = not why
        print(f"  not kept fleet-wide: {why}" if why else
              f"  kept in the store as a fleet-wide setting: members that join later apply it"
              f"{'' if key in SHARED else ' (unless they set their own)'} (see medops fleet settings)")
    if not acks:
        print("  no member alive to act on")
    for ack in acks:
        print(f"  {ack.status:<9} {ack.instance}  {ack.detail}")
    # Kept fleet-wide with nobody alive: done (whoever joins applies it).
    return 0 if (acks or kept) and all(ack.status == "applied" for ack in acks) else 1


def refused_setting(key: str, value: str) -> str:
    """Why every member would refuse `key` = `value` ('' if none would): the rule each applies, checked here
    first, so a typo is not broadcast to the fleet to be refused by each member."""
    from medops.core.errors import ConfigError
    from medops.core.settings.live_changes import checked_value

    try:
        checked_value(key, value, "medops fleet set")
    except ConfigError as exc:
        return str(exc)
    return ""


def fleet_settings(args: argparse.Namespace) -> int:
    """The fleet-wide settings kept in the store, and the live members running other values."""
    from medops.core.fleet.membership import fleet_namespace
    from medops.core.fleet.shared_settings import overrides, read_fleet_settings, when
    from medops.core.fleet.view import FleetUnavailable, read_fleet

    if args.setting:
        print("medops fleet settings: takes no KEY (it lists them all; add --json for one object)", file=sys.stderr)
        return 2
    settings = _load(args)
    namespace = fleet_namespace(settings, os.environ)
    password = os.environ.get("MEDOPS_STORE_PASSWORD")
    try:
        stored = asyncio.run(read_fleet_settings(settings.store_url, namespace, password))
        view = asyncio.run(read_fleet(settings.store_url, namespace, password))
    except FleetUnavailable as exc:
        print(f"medops fleet settings: {exc}", file=sys.stderr)
        return 2
    alive = {m.instance for m in view.members if m.state.present}
    differ, silent = overrides(stored, {i: s for i, s in view.snapshots.items() if i in alive})
    if args.json:
        print(json.dumps({
            "settings": [{"key": s.key, "value": s.value, "shared": s.shared, "set_by": s.set_by(),
                          "store_user": s.store_user, "operator": s.operator, "set_at": s.at} for s in stored.settings],
            "overrides": [dataclasses.asdict(o) for o in differ], "unpublished": silent,
            "refused": list(stored.refused)}, sort_keys=True))
        return 0
    if not stored.settings:
        print(f"no fleet-wide settings on namespace {namespace} (medops fleet set KEY VALUE --all keeps one)")
    else:
        print(f"fleet-wide settings on namespace {namespace} (members that join later apply them):")
        for s in stored.settings:
            wins = "wins over a member's own" if s.shared else "a member's own value other than the default wins"
            print(f"  {s.key} = {s.value}  set by {s.set_by()} at {when(s.at)}  ({wins})")
    for o in differ:
        print(f"  {o.instance} overrides {o.key} = {o.value} (fleet-wide {o.fleet_value})")
    if silent and stored.settings:
        print(f"  publish no settings (an older medops, or a snapshot cut to its figures): {', '.join(silent)}")
    for why in stored.refused:
        print(f"! refused, not applied by any member: {why}")
    return 0


def unset(args: argparse.Namespace) -> int:
    """Remove a fleet-wide value; members running keep what they run until they restart."""
    from medops.core.fleet.shared_settings import unset as remove

    key = _one_name(args, "unset", "the setting, e.g. medops fleet unset groq_concurrent")
    removed = None if key is None else _on_store(args, "unset", remove, key)
    if removed is None:
        return 2
    if not removed:
        print(f"medops fleet unset: {key} has no fleet-wide value (medops fleet settings lists them)",
              file=sys.stderr)
        return 1
    print(f"{key}: fleet-wide value removed; members running keep the value they run until they restart, members "
          "that join later use their own")
    return 0


def clear(args: argparse.Namespace) -> int:
    """Lift every 429 block and 498 hold on one model, for the whole fleet (an operator user's right)."""
    from medops.core.fleet.clear import clear_model

    model = _one_name(args, "clear", "the model, e.g. medops fleet clear llama-3.1-8b-instant")
    lifted = None if model is None else _on_store(args, "clear", clear_model, model)
    if lifted is None:
        return 2
    if lifted:
        print(f"{model}: 429 blocks, 498 holds and the server's limits lifted for the whole fleet; members learn "
              "Groq's real state again from its next answer")
    else:
        print(f"{model}: nothing to lift (no block, hold or server limit was set on it)")
    return 0


def _one_name(args: argparse.Namespace, verb: str, what: str) -> str | None:
    """The one name `medops fleet VERB` takes; None, having said what to give, if it was not one."""
    if len(args.setting) != 1:
        print(f"medops fleet {verb}: name {what}", file=sys.stderr)
        return None
    return str(args.setting[0])


def _on_store(args: argparse.Namespace, verb: str, action: Callable[..., Coroutine[Any, Any, T]],
              name: str) -> T | None:
    """`action(store_url, namespace, name, password)` on this fleet's store; None, having said why, if it cannot
    be read or written."""
    from medops.core.fleet.membership import fleet_namespace
    from medops.core.fleet.view import FleetUnavailable

    settings = _load(args)
    try:
        return asyncio.run(action(settings.store_url, fleet_namespace(settings, os.environ), name,
                                  os.environ.get("MEDOPS_STORE_PASSWORD")))
    except FleetUnavailable as exc:
        print(f"medops fleet {verb}: {exc}", file=sys.stderr)
        return None


def forget(args: argparse.Namespace) -> int:
    """Clear the rows of members that left or died (an operator or oncall user's right); never a running one's."""
    from medops.core.fleet import forget as rows
    from medops.core.fleet.membership import fleet_namespace
    from medops.core.fleet.view import FleetUnavailable

    if len(args.setting) > 1 or (args.setting and (args.left or args.gone)):
        print("medops fleet forget: name one member, or --left, or --gone (neither: every member that left or "
              "died)", file=sys.stderr)
        return 2
    instance = args.setting[0] if args.setting else None
    which: rows.Which = "left" if args.left else "gone" if args.gone else "stopped"
    settings = _load(args)
    try:
        done = asyncio.run(rows.forget(settings.store_url, fleet_namespace(settings, os.environ),
                                       os.environ.get("MEDOPS_STORE_PASSWORD"), instance, which))
    except FleetUnavailable as exc:
        print(f"medops fleet forget: {exc}", file=sys.stderr)
        return 2
    if instance is not None and done.kept:
        print(f"medops fleet forget: {instance} is still running (alive or stale): only members that left or "
              "died are forgotten", file=sys.stderr)
        return 1
    print(done.describe())
    return 0


def acl(args: argparse.Namespace) -> int:
    """Print the ACL SETUSER lines of the fleet's users, or create them (--apply); who uses which; new passwords
    once."""
    from medops.core.errors import ConfigError
    from medops.core.fleet.acl import apply_users, new_users, setuser_line
    from medops.core.fleet.membership import fleet_namespace

    settings = _load(args)
    namespace = fleet_namespace(settings, os.environ)
    given = {role: getattr(args, f"{role}_password") or os.environ.get(f"MEDOPS_ACL_{role.upper()}_PASSWORD", "")
             for role in ROLES}
    try:
        users = new_users({role: f"{args.user_prefix}{role}" for role in ROLES}, given)
        if args.apply:
            if not settings.store_url:
                raise ConfigError("no quota store is set: set store_url (MEDOPS_STORE_URL) to the fleet's Redis")
            asyncio.run(apply_users(settings.store_url, os.environ.get("MEDOPS_STORE_PASSWORD"), namespace, users))
    except ConfigError as exc:
        print(f"medops fleet acl: {exc}", file=sys.stderr)
        return 2
    if args.apply:
        print(f"created {', '.join(u.name for u in users)} on namespace {namespace} and loaded the quota library")
    else:
        print(f"# the fleet's users on namespace {namespace} (passwords as SHA-256); as the store's admin, run "
              "each line with redis-cli,")
        print("# then load the library: redis-cli -x FUNCTION LOAD REPLACE < quota.lua (or use --apply)")
        for user in users:
            print(setuser_line(user, namespace))
    print("# who connects as which user (store_user / MEDOPS_STORE_USER):")
    for user in users:
        print(f"#   {user.name:<{max(len(u.name) for u in users)}}  {USES[user.role]}")
    generated = [u for u in users if not given[u.role]]
    if generated:
        print("# new passwords, shown once (give each process its user as store_user / MEDOPS_STORE_USER and its "
              "password as MEDOPS_STORE_PASSWORD):")
        for user in generated:
            print(f"{user.name} {user.password}")
    return 0
