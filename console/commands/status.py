"""`medops status [--json]`: start the core, wait for the monitor's first sample, print one snapshot, stop."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
from typing import TYPE_CHECKING, Any

from medops.console.commands.common import reads_only, running_core

if TYPE_CHECKING:
    from medops.core.snapshot import CoreSnapshot, StoreSnapshot


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("status", help="start the core and print a short summary of one snapshot (after "
                                                  "the first resource sample: one monitor_interval)")
    parser.add_argument("--json", action="store_true", help="print the whole snapshot as JSON instead")
    parser.set_defaults(handler=status, changes=reads_only)


def status(args: argparse.Namespace) -> int:
    async def take() -> CoreSnapshot:
        async with running_core(args, "status") as resource_core:
            # Before the monitor's first sample every system figure is zero; its CPU share needs an interval.
            return await resource_core.wait_for_first_sample()

    snapshot = asyncio.run(take())
    if args.json:
        print(json.dumps(status_dict(snapshot), sort_keys=True))
    else:
        print("\n".join(summary_lines(snapshot)))
    return 0


def summary_lines(snapshot: CoreSnapshot) -> list[str]:
    """One line per part a newcomer checks first: Groq, quota, queue, case memory, pools, system, alerts."""
    from medops.console.figures import size

    endpoint = snapshot.endpoint
    groq = "Groq itself" if endpoint.kind == "groq" else "medops' local endpoint (replies are not from a model)"
    health = "answering" if endpoint.healthy else "not answering"
    lines = [f"groq       {groq} at {endpoint.base_url or '-'}: {health}; {endpoint.detail}"]
    # The default model, and any other model that has been used: the rest have nothing to say.
    for model in snapshot.quota.models:
        if model.model == snapshot.quota.default_model or any(w.used for w in model.windows):
            windows = "  ".join(f"{w.name} {w.used:,}/{w.limit:,}" + (f" +{w.held:,} held" if w.held else "")
                                for w in model.windows)
            lines.append(f"quota      {model.model}: {windows}")
    lines += burn_lines(snapshot)
    if snapshot.quota.store is not None:
        lines.append(f"store      {store_summary(snapshot.quota.store)}")
    scheduler = snapshot.scheduler
    depths = ", ".join(f"{q.priority} {q.depth}" for q in scheduler.queues)
    intake = "intake paused" if scheduler.paused else "intake running"
    lines.append(f"queue      {sum(q.depth for q in scheduler.queues)} waiting ({depths}); "
                 f"{scheduler.in_flight} in flight of {scheduler.concurrency}; {intake}")
    slots = snapshot.slots
    lines.append(f"cases      {slots.used} of {slots.total} slots used ({size(slots.bytes_used)})")
    pools = ", ".join(f"{p.name} {p.active}/{p.capacity}" + (f" +{p.queued} waiting" if p.queued else "")
                      for p in snapshot.pools)
    lines.append(f"pools      {pools + ' busy' if pools else 'none running'}")
    system = snapshot.system
    lines.append(f"system     CPU {system.cpu_percent:.1f}% ({system.cpu_source}), memory "
                 f"{system.memory_percent:.1f}% ({size(system.memory_used)} of {size(system.memory_limit)}, "
                 f"{system.memory_source}), loop lag {system.loop_lag_ms:.1f} ms")
    lines.append(f"knowledge  {snapshot.knowledge.state}; ledger {snapshot.ledger.mode}")
    open_alerts = [a for a in snapshot.alerts if a.cleared_at is None]
    lines.append(f"alerts     {len(open_alerts)} open")
    lines += [f"  {alert.level}: {alert.message}" for alert in open_alerts]
    lines.append("(medops status --json prints the whole snapshot)")
    return lines


def status_dict(snapshot: CoreSnapshot) -> dict[str, Any]:
    """The whole snapshot as plain data, with each day window's burn rate beside it (`burn_rates`)."""
    from medops.core.burn_rate import burn_rates
    from medops.core.snapshot import snapshot_to_dict

    plain = snapshot_to_dict(snapshot)
    plain["burn_rates"] = [dict(dataclasses.asdict(rate), runs_out_first=rate.runs_out_first)
                           for rate in burn_rates(snapshot.quota, snapshot.taken_at)]
    return plain


def burn_lines(snapshot: CoreSnapshot) -> list[str]:
    """Each day window's pace over the last hour and when it runs out at that pace."""
    from medops.console.times import clock_time
    from medops.core.burn_rate import burn_rates, out_words

    lines = []
    for rate in burn_rates(snapshot.quota, snapshot.taken_at):
        first = f"; RUNS OUT before it frees (from {clock_time(rate.frees_at)})" if rate.runs_out_first else ""
        fleet = " (fleet)" if rate.fleet else ""  # the organisation's windows and pace, from the store
        lines.append(f"burn       {rate.model} {rate.window}{fleet}: {rate.per_hour:,} in the last hour, "
                     f"{rate.remaining:,} left; {out_words(rate, snapshot.taken_at)} at this pace{first}")
    return lines


def store_summary(store: StoreSnapshot) -> str:
    """The fleet's quota store in words: who decides admissions now (without it the quota line reads 0/0)."""
    from medops.console.times import clock_time

    members = f"{store.members_alive} member{'s' if store.members_alive != 1 else ''} alive"
    if store.state == "down":
        since = f" since {clock_time(store.down_since, zone=True)}" if store.down_since is not None else ""
        share = f"local share 1/{store.share}" if store.share else "nothing admitted until it answers"
        return f"{store.url}: unreachable{since}; {share}"
    if store.state == "seeding":
        return f"{store.url}: seeding (admissions wait until each member has written its day back); {members}"
    return f"{store.url}: shared by {members}, round trip p99 {store.rtt_p99_ms:.1f} ms"
