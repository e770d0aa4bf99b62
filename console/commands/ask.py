"""`medops ask`: send one prompt, or a JSONL file of them, through scheduler, quota and gateway."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medops.console.commands.common import load
from medops.core.errors import ConfigError, MedopsError
from medops.core.groq.errors import RequestRejected
from medops.core.groq.requests import DEFAULT_MAX_COMPLETION_TOKENS, InvalidRequest, Priority, PromptRequest
from medops.core.settings.paths import locate

if TYPE_CHECKING:
    from medops.core.contract import CoreCommands
    from medops.core.groq.prompt_input import PromptLine
    from medops.core.groq.requests import PromptResult
    from medops.core.snapshot import CoreSnapshot

MAX_CONCURRENCY = 1_000
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STOP_GRACE = 5.0  # seconds a stopped --file run lets the prompts already sent finish
LINE_PART = re.compile(r"(\d{1,9})(?:-(\d{1,9}))?")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "ask", help="send a prompt (or a JSONL file of prompts) through scheduler, quota and gateway",
        description="Without GROQ_API_KEY the prompts go to medops' local endpoint, started in-process "
                    "(or the one at GROQ_BASE_URL); the endpoint in use is always shown.")
    parser.add_argument("text", nargs="?", help="the prompt to send")
    parser.add_argument("--file", metavar="JSONL", type=Path,
                        help="prompts, one JSON object a line: prompt (or messages, Groq's conversation), and "
                             "optional agent (default --agent), priority, system, model, deadline, "
                             "max_completion_tokens, and Groq's chat fields (tools, tool_choice, response_format, "
                             "temperature, service_tier...)")
    parser.add_argument("--agent", default="oncall",
                        help="agent type the prompt is sent for (default oncall); with --file, for each line "
                             "that names none")
    parser.add_argument("--priority", default="normal", help="critical, high or normal (default normal)")
    parser.add_argument("--model", help="model to use (default: default_model)")
    parser.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_COMPLETION_TOKENS,
                        help=f"max_completion_tokens (default {DEFAULT_MAX_COMPLETION_TOKENS})")
    parser.add_argument("--deadline", type=float, help="seconds the answer may take, queueing included")
    parser.add_argument("--fail-fast", action="store_true",
                        help="refuse at once when the quota has no room, instead of waiting for it")
    parser.add_argument("--concurrency", type=int,
                        help="with --file: prompts in flight at once (default groq_concurrent)")
    parser.add_argument("--lines", metavar="SPEC",
                        help="with --file: send only these lines, e.g. 3,7-9 (the summary of a stopped run names "
                             "the lines never answered in this form)")
    parser.add_argument("--json", action="store_true", help="print the single answer as one JSON object")
    parser.set_defaults(handler=ask, changes=lambda a: "sending prompts from a file (they spend quota)"
                        if a.file is not None else "sending a prompt (it spends quota)")


def ask(args: argparse.Namespace) -> int:
    # Imported here, not at the top: every `medops` run imports this module to build its parser.
    from medops.core.groq.prompt_input import check_request, load_prompt_file
    from medops.core.resource_core import ResourceCore

    if args.text is None and args.file is None:
        raise InvalidRequest('nothing to send: give the prompt, as in medops ask "text", or a file of prompts, '
                             "as in medops ask --file prompts.jsonl")
    if args.text is not None and args.file is not None:
        raise InvalidRequest("give the prompt text or --file prompts.jsonl, not both")
    settings = load(args).settings
    if args.file is not None:
        concurrency = settings.groq_concurrent if args.concurrency is None else args.concurrency
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            raise ConfigError(f"--concurrency {concurrency} is out of range: allowed 1 to {MAX_CONCURRENCY}")
        prompts = load_prompt_file(args.file, settings, args.agent)
        if args.lines is not None:
            prompts = only_lines(prompts, args.lines, args.file)
        core = ResourceCore(replace(settings, groq_concurrent=concurrency), locate(), role="ask")
        return asyncio.run(_run_file(core, prompts, concurrency, settings.store_wait))
    if args.concurrency is not None or args.lines is not None:
        raise InvalidRequest(f"{'--concurrency' if args.concurrency is not None else '--lines'} applies to --file "
                             "only")
    request = PromptRequest(args.text, args.agent, Priority.parse(args.priority), model=args.model,
                            max_completion_tokens=args.max_tokens, deadline=args.deadline,
                            fail_fast=args.fail_fast)
    check_request(request, settings)
    # Bounded by the prompt's own deadline, else by store_wait (a store restarting, or frozen for a while, is
    # waited out; one that is not there ends the command with a clear error instead of a hang).
    store_bound = args.deadline if args.deadline is not None else settings.store_wait
    return asyncio.run(_run_one(ResourceCore(settings, locate(), role="ask"), request, args.json, store_bound))


STORE_POLL = 0.1  # seconds between looks at whether the fleet's store has answered yet


async def store_reached(core: CoreCommands, bound: float) -> None:
    """Return once the fleet's store has answered (at once without one); `StoreNeverReached` after `bound` s.

    A member that never reached the store admits nothing, so waiting longer would only hang the command.
    """
    from medops.core.fleet.store import StoreNeverReached

    loop = asyncio.get_running_loop()
    give_up = loop.time() + bound
    while (store := core.snapshot().quota.store) is not None and store.never_reached:
        if loop.time() >= give_up:
            raise StoreNeverReached.after(store, bound)
        await asyncio.sleep(STORE_POLL)


async def _run_one(core: CoreCommands, request: PromptRequest, as_json: bool, store_bound: float) -> int:
    await core.start()
    try:
        await store_reached(core, store_bound)
        try:
            result = await core.ask(request)
        except MedopsError as error:
            if (status := exit_status(error)) == 2:
                raise  # the command or a setting must change: said as every command says it
            print(f"medops: {error}", file=sys.stderr)
            return status
        snapshot = core.snapshot()
    finally:
        await core.stop()
    if as_json:
        print(json.dumps(_result_fields(result) | {"endpoint": _endpoint_fields(snapshot)}))
        return 0
    completion = result.completion
    print(completion.text)
    print()
    print(f"endpoint:    {_endpoint_line(snapshot)}")
    print(f"model:       {completion.model}   request id: {completion.request_id or '-'}")
    print(f"tokens:      prompt {completion.prompt_tokens}, completion {completion.completion_tokens}, "
          f"total {completion.total_tokens}")
    groq_time = f", Groq total_time {completion.total_time:.3f} s" if completion.total_time is not None else ""
    print(f"latency:     {result.latency:.3f} s (queue wait {result.queue_wait:.3f} s{groq_time}), "
          f"attempts {result.attempts}")
    print(f"quota left:  {_quota_line(result, snapshot, completion.model)}")
    return 0


async def _run_file(core: CoreCommands, prompts: list[PromptLine], concurrency: int, store_bound: float) -> int:
    """Send every prompt, a line per result, then the summary; SIGINT or SIGTERM stops sending, lets what was
    sent finish for up to STOP_GRACE s, and still prints the summary, naming the lines never answered."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    stopped_by: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        stopped_by.append(sig)
        stop.set()

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)
    failures: Counter[str] = Counter()
    answered = 0
    sent: set[int] = set()  # lines handed to the core
    ended: set[int] = set()  # lines with a result line printed, answer or failure
    gate = asyncio.Semaphore(concurrency)

    async def send(item: PromptLine) -> None:
        nonlocal answered
        async with gate:
            if stop.is_set():
                return
            sent.add(item.line)
            try:
                result = await core.ask(item.request)
            except MedopsError as error:
                reason = failure_reason(error)
                failures[reason] += 1
                ended.add(item.line)
                _emit({"line": item.line, "request_id": item.request.request_id, "ok": False,
                       "error": reason, "message": str(error)})
                return
        answered += 1
        ended.add(item.line)
        _emit({"line": item.line, "ok": True} | _result_fields(result))

    started = time.monotonic()
    try:
        await core.start()
        await store_reached(core, store_bound)
        print(f"medops: sending {len(prompts)} prompts, {concurrency} at a time, to "
              f"{_endpoint_line(core.snapshot())}", file=sys.stderr, flush=True)
        tasks = {item.line: asyncio.ensure_future(send(item)) for item in prompts}
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({*tasks.values(), stopping}, return_when=asyncio.FIRST_COMPLETED)
        while not stop.is_set() and not all(task.done() for task in tasks.values()):
            await asyncio.wait({*tasks.values(), stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if stop.is_set():
            for line, task in tasks.items():
                if line not in sent:
                    task.cancel()  # never handed to the core: nothing to wait for
            # Only a prompt at Groq is worth waiting for: one still queued for quota is withdrawn at once (its
            # reservation, if any, given back), and listed as never answered.
            at_groq = {row.request_id for row in core.snapshot().scheduler.requests if row.state == "sending"}
            queued = [task for item in prompts if item.line in sent and item.line not in ended
                      and item.request.request_id not in at_groq and not (task := tasks[item.line]).done()]
            for task in queued:
                task.cancel()
            waiting = [tasks[line] for line in sent if line not in ended and tasks[line] not in queued]
            print(f"medops: {stopped_by[0].name}: sending stopped; {len(queued)} queued withdrawn; "
                  + (f"waiting up to {STOP_GRACE:g} s for the {len(waiting)} prompts at Groq" if waiting
                     else "none at Groq"), file=sys.stderr, flush=True)
            waiting += queued
            if waiting:
                await asyncio.wait(waiting, timeout=STOP_GRACE)
            for task in waiting:
                task.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)
        wall = time.monotonic() - started
        snapshot = core.snapshot()
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
        await core.stop()  # frees the case memory's /dev/shm segment too
    unanswered = sorted(item.line for item in prompts if item.line not in ended)
    summary = {"prompts": len(prompts), "sent": len(sent), "answered": answered,
               "failed": dict(sorted(failures.items())), "unanswered_lines": line_ranges(unanswered),
               "rate_limited_429s": sum(m.rate_limited for m in snapshot.quota.models),
               "wall_time": round(wall, 3), "concurrency": concurrency, "endpoint": _endpoint_fields(snapshot)}
    if stopped_by:
        summary["stopped_by"] = stopped_by[0].name
    _emit({"summary": summary})
    never = (f"; {len(unanswered)} never answered (lines {line_ranges(unanswered)}: send them with --lines "
             f"{line_ranges(unanswered)})") if unanswered else ""
    print(f"medops: {answered}/{len(prompts)} answered, {sum(failures.values())} failed, "
          f"{summary['rate_limited_429s']} 429s received, {wall:.1f} s{never}", file=sys.stderr)
    if stopped_by:
        return 128 + stopped_by[0].value  # as a shell reports a process ended by that signal
    return 0 if not failures else 1


def parse_lines(spec: str) -> set[int]:
    """`3,7-9` as {3, 7, 8, 9}; InvalidRequest saying what is wrong and what a good one looks like."""
    lines: set[int] = set()
    for part in spec.split(","):
        match = LINE_PART.fullmatch(part.strip())
        if match is None:
            raise InvalidRequest(f"--lines {spec!r}: {part.strip()!r} is not a line number or a range; give "
                                 "line numbers and ranges, e.g. --lines 3,7-9")
        first, last = int(match[1]), int(match[2] or match[1])
        if first < 1 or last < first:
            raise InvalidRequest(f"--lines {spec!r}: {part.strip()!r} is not a range of lines (they count from "
                                 "1, the smaller first), e.g. --lines 3,7-9")
        lines.update(range(first, last + 1))
    return lines


def line_ranges(lines: list[int]) -> str:
    """Sorted line numbers as `--lines` takes them: [3, 7, 8, 9] -> '3,7-9'."""
    runs: list[list[int]] = []
    for line in lines:
        if runs and line == runs[-1][1] + 1:
            runs[-1][1] = line
        else:
            runs.append([line, line])
    return ",".join(str(first) if first == last else f"{first}-{last}" for first, last in runs)


def only_lines(prompts: list[PromptLine], spec: str, path: Path) -> list[PromptLine]:
    """The prompts on the lines `spec` names; every line it names must hold one."""
    wanted = parse_lines(spec)
    held = {item.line for item in prompts}
    missing = sorted(wanted - held)
    if missing:
        raise InvalidRequest(f"--lines {spec}: line(s) {line_ranges(missing)} of {path} hold no prompt (its "
                             f"prompts are on lines {line_ranges(sorted(held))})")
    return [item for item in prompts if item.line in wanted]


def exit_status(error: MedopsError) -> int:
    """The README's rule for a prompt that did not get its answer: 1 it was tried and failed or was refused
    (cancelled by an operator, past its deadline, no room with --fail-fast, Groq failing); 2 the command or a
    setting must change (a bad request, too large, an unknown model, a key Groq refuses, no store)."""
    from medops.core.errors import GroqError
    from medops.core.groq.quota import QuotaExhausted
    from medops.core.groq.scheduler import DeadlineExceeded, RequestCancelled

    if isinstance(error, RequestRejected):
        return 2 if error.status in (400, 401, 403, 404, 413, 422) else 1
    return 1 if isinstance(error, GroqError | DeadlineExceeded | RequestCancelled | QuotaExhausted) else 2


def failure_reason(error: BaseException) -> str:
    """A short snake_case name for why a prompt failed (rejected_401, rate_limited, deadline_exceeded...)."""
    if isinstance(error, RequestRejected):
        return f"rejected_{error.status}"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(error).__name__).lower()


def _emit(fields: dict[str, Any]) -> None:
    print(json.dumps(fields), flush=True)


def _result_fields(result: PromptResult) -> dict[str, Any]:
    c = result.completion
    return {"request_id": c.request_id, "model": c.model, "reply": c.text, "prompt_tokens": c.prompt_tokens,
            "completion_tokens": c.completion_tokens, "latency": round(result.latency, 4),
            "queue_wait": round(result.queue_wait, 4), "attempts": result.attempts,
            "quota_left": dict(result.quota_left), "message": c.message, "finish_reason": c.finish_reason}


def _endpoint_fields(snapshot: CoreSnapshot) -> dict[str, Any]:
    return {"kind": snapshot.endpoint.kind, "base_url": snapshot.endpoint.base_url,
            "detail": snapshot.endpoint.detail}


def _endpoint_line(snapshot: CoreSnapshot) -> str:
    endpoint = snapshot.endpoint
    name = "Groq" if endpoint.kind == "groq" else "local endpoint"
    return f"{name} {endpoint.base_url}" + (f" ({endpoint.detail})" if endpoint.detail else "")


def _quota_line(result: PromptResult, snapshot: CoreSnapshot, model: str) -> str:
    limits = {w.name: w.limit for m in snapshot.quota.models if m.model == model for w in m.windows}
    return ", ".join(f"{name} {left:,}" + (f"/{limits[name]:,}" if name in limits else "")
                     for name, left in result.quota_left.items()) or "-"
