"""`medops worker --rate R`: a drill member sending a steady mix of priorities, to watch a fleet move.

Each prompt is synthetic (a counter and an agent, no patient data): 10% critical,
30% high, the rest normal, spread over the four agents, at R a second on average
(Poisson arrivals), until --duration ends or Ctrl-C. One line a second says what
was sent, how each ended so far (answered, timed out...) and how many still wait;
the summary at the end counts outcomes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import time
from collections import Counter
from typing import Any

from medops.console.commands.common import load

MIX = (("critical", 0.1), ("high", 0.3), ("normal", 0.6))
AGENTS = ("triage", "diagnosis", "medication", "documentation")
# Seconds a stopping worker lets the prompts at Groq finish (its queued ones are withdrawn at once): within
# systemd's 90 s stop timeout, so a worker stopped by it says goodbye (listed as left) before SIGKILL.
STOP_WAIT = 60.0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("worker", help="a drill fleet member: a steady mix of priorities at --rate a "
                                                  "second (no patient data), until --duration or Ctrl-C")
    parser.add_argument("--rate", type=float, default=1.0, help="prompts a second on average (default 1)")
    parser.add_argument("--duration", type=float, help="seconds to run (default: until Ctrl-C)")
    parser.add_argument("--model", help="model to use (default: default_model)")
    parser.add_argument("--seed", type=int, default=0, help="seed for arrivals and the priority mix")
    # A read-only worker would be one that sends nothing: refused, not run idle.
    parser.set_defaults(handler=worker, changes=lambda a: "running a drill worker (it sends prompts, which spend "
                        "quota)")


def worker(args: argparse.Namespace) -> int:
    from medops.core.errors import ConfigError
    from medops.core.resource_core import ResourceCore
    from medops.core.settings.paths import locate

    if not 0 < args.rate <= 1_000:
        raise ConfigError(f"--rate {args.rate:g} is out of range: allowed above 0, up to 1000 a second")
    if args.duration is not None and args.duration <= 0:
        raise ConfigError(f"--duration {args.duration:g} must be more than 0 seconds")
    core = ResourceCore(load(args).settings, locate(), role="worker")
    return asyncio.run(_run(core, args.rate, args.duration, args.model, random.Random(args.seed)))


def outcome(error: BaseException) -> str:
    """How a prompt ended, in an operator's words: a timeout apart from a 5xx, a deadline apart from both."""
    from medops.console.commands.ask import failure_reason
    from medops.core.groq.errors import (
        CapacityExceeded,
        NeverSent,
        RateLimited,
        RequestRejected,
        TimedOut,
        UpstreamUnavailable,
    )
    from medops.core.groq.scheduler import DeadlineExceeded, RequestCancelled

    words: tuple[tuple[type[BaseException], str], ...] = (
        (DeadlineExceeded, "past deadline"), (RequestCancelled, "cancelled"), (NeverSent, "never sent"),
        (TimedOut, "timed out"), (RateLimited, "rate limited"), (CapacityExceeded, "over capacity"),
        (UpstreamUnavailable, "upstream failed"))
    if isinstance(error, RequestRejected):
        return f"rejected {error.status}"
    return next((word for kind, word in words if isinstance(error, kind)), failure_reason(error).replace("_", " "))


def progress_line(elapsed: float, sent: int, outcomes: Counter[str]) -> str:
    """What was sent and how each ended so far; waiting is the rest, so the numbers add up to sent."""
    ended = "".join(f", {name} {count}" for name, count in sorted(outcomes.items()) if name != "answered")
    return (f"{elapsed:6.0f} s  sent {sent}: answered {outcomes['answered']}{ended}, "
            f"waiting {sent - sum(outcomes.values())}")


async def _run(core: Any, rate: float, duration: float | None, model: str | None, rng: random.Random) -> int:
    from medops.core.errors import MedopsError
    from medops.core.groq.requests import Priority, PromptRequest

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    outcomes: Counter[str] = Counter()
    sent = 0
    tasks: dict[asyncio.Task[None], str] = {}  # each prompt's task, and its request's id

    def new_request(n: int) -> PromptRequest:
        priority = rng.choices([p for p, _ in MIX], [w for _, w in MIX])[0]
        return PromptRequest(f"drill prompt {n}: summarise a synthetic note", AGENTS[n % len(AGENTS)],
                             Priority.parse(priority), model=model, max_completion_tokens=64, deadline=120.0)

    async def one(request: PromptRequest) -> None:
        try:
            await core.ask(request)
            outcomes["answered"] += 1
        except MedopsError as exc:
            outcomes[outcome(exc)] += 1

    await core.start()
    started = last_line = time.monotonic()
    try:
        while not stop.is_set() and (duration is None or time.monotonic() - started < duration):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), rng.expovariate(rate))
            if stop.is_set():
                break
            sent += 1
            request = new_request(sent)
            task = asyncio.create_task(one(request))
            tasks[task] = request.request_id
            task.add_done_callback(lambda done: tasks.pop(done, None))
            if time.monotonic() - last_line >= 1.0:
                last_line = time.monotonic()
                print(progress_line(last_line - started, sent, outcomes), flush=True)
        if tasks:
            # What only waits in the queue is withdrawn at once (counted); what is at Groq may finish. Say why it
            # has not exited yet, and let a second signal drop that too (a trial's worker seemed to ignore
            # SIGTERM for two minutes, 231 prompts queued; the next one's 130 s outlasted systemd's 90 s).
            # (At the end of --duration everything sent may finish: nothing is withdrawn.)
            at_groq = {row.request_id for row in core.snapshot().scheduler.requests if row.state == "sending"}
            queued = [task for task, request_id in tasks.items()
                      if stop.is_set() and request_id not in at_groq and not task.done()]
            for task in queued:
                task.cancel()
            await asyncio.gather(*queued, return_exceptions=True)
            if queued:
                outcomes["withdrawn at stop"] += len(queued)
            if not stop.is_set():
                print(f"duration over: waiting up to {STOP_WAIT:.0f} s for the {len(tasks)} prompts sent; "
                      "interrupt to drop them", flush=True)
            elif tasks:
                print(f"stopping: {len(queued)} queued withdrawn; waiting up to {STOP_WAIT:.0f} s for the "
                      f"{len(tasks)} prompts at Groq; interrupt again to drop them", flush=True)
            else:
                print(f"stopping: {len(queued)} queued withdrawn, none at Groq", flush=True)
            again = asyncio.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, again.set)
            interrupted = asyncio.create_task(again.wait())
            deadline = loop.time() + STOP_WAIT
            while tasks and not again.is_set() and (left := deadline - loop.time()) > 0:
                await asyncio.wait({*tasks, interrupted}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            interrupted.cancel()
            dropped = [task for task in tasks if not task.done()]
            for task in dropped:
                task.cancel()
            await asyncio.gather(*dropped, return_exceptions=True)
            if dropped:
                outcomes["dropped at stop"] += len(dropped)
    finally:
        await core.stop()
    failed = ", ".join(f"{name} {count}" for name, count in sorted(outcomes.items()) if name != "answered")
    print(f"worker done: sent {sent}, answered {outcomes['answered']}" + (f", {failed}" if failed else ""))
    return 0 if sent == outcomes["answered"] else 1
