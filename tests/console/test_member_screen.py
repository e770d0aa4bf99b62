"""A fleet member's requests on its own overview (console/panes/member_screen.py), drawn with no app."""

from __future__ import annotations

from dataclasses import replace

from medops.console.panes.member_screen import requests_text
from medops.core.snapshot import CoreSnapshot, RequestRow
from tests.helpers.console_data import busy_snapshot


def row(request_id: str, reason: str, *, agent: str = "triage", client: str = "", priority: str = "normal",
        effective: str = "normal", state: str = "waiting") -> RequestRow:
    return RequestRow(request_id, agent, client, priority, effective, "critical", "llama-3.1-8b-instant", 1_000,
                      12.0, None, state, reason)  # type: ignore[arg-type]


def holding(*rows: RequestRow, held: int | None = None) -> CoreSnapshot:
    base = busy_snapshot()
    return replace(base, scheduler=replace(base.scheduler, requests=rows,
                                           requests_held=len(rows) if held is None else held))


def test_each_request_shows_its_id_who_priority_state_and_why_it_waits() -> None:
    text = requests_text(holding(row("c81d0e55", "tpm full until 14:02:11", agent="diagnosis", effective="critical"),
                                 row("gw-4410", "at Groq, attempt 2", client="pharmacy-bot", state="sending")))
    lines = text.plain.splitlines()
    assert lines[0] == "Requests held: 2"
    assert lines[1].split() == ["id", "agent/key", "prio", "state", "why", "it", "waits"]
    assert lines[2].split() == ["c81d0e55", "diagnosis", "normal^critical", "waiting", "tpm", "full", "until",
                                "14:02:11"]
    assert lines[3].split()[:4] == ["gw-4410", "pharmacy-bot", "normal", "sending"]  # the key, not the agent


def test_the_list_is_bounded_and_says_how_many_more_are_held() -> None:
    rows = tuple(row(f"req-{n}", "concurrency cap 10/10") for n in range(30))
    lines = requests_text(holding(*rows, held=214), most=5).plain.splitlines()
    assert [line.split()[0] for line in lines[2:7]] == [f"req-{n}" for n in range(5)]
    assert lines[7:] == ["… 209 more held, not listed here"]


def test_a_member_holding_none_says_so() -> None:
    assert requests_text(holding()).plain == "Requests held: 0\nnone queued or in flight"


def test_what_a_member_published_is_text_never_markup_nor_control_characters() -> None:
    text = requests_text(holding(row("[b]x\x1b[2J", "[red]behind\x07 3 critical", agent="[/]")))
    line = text.plain.splitlines()[2]
    assert "[b]x" in line and "[/]" in line and "[red]behind" in line
    assert "\x1b" not in line and "\x07" not in line
    assert not text.spans  # no style came from the member's strings


FLEET_REASON = "behind 3 critical at worker-lab-88, 1 high at worker-lab-90 (fleet); the fleet has room in 2 s"


def test_no_line_is_wider_than_the_screen_gives_and_no_reason_is_lost() -> None:
    from medops.console.panes.member_screen import COLUMNS_WIDTH

    snapshot = holding(row("e19b2c07", FLEET_REASON, client="intake-ward7"), row("7f3a9c01", "at Groq, attempt 1"))
    wide = requests_text(snapshot, width=158).plain.splitlines()
    assert wide[2].endswith(FLEET_REASON) and wide[2].index("behind") == COLUMNS_WIDTH  # beside, in its column
    narrow = requests_text(snapshot, width=78).plain.splitlines()
    assert all(len(line) <= 78 for line in narrow)
    # below its row, wrapped under itself: every word still there
    assert narrow[1:3] == ["id             agent/key            prio            state", "  why it waits"]
    assert narrow[4:6] == ["  behind 3 critical at worker-lab-88, 1 high at worker-lab-90 (fleet); the",
                           "  fleet has room in 2 s"]
    assert narrow[6].split() == ["7f3a9c01", "triage", "normal", "waiting"]


def test_a_members_endless_reason_takes_three_lines_at_most() -> None:
    for width, heading in ((158, 2), (78, 3)):
        lines = requests_text(holding(row("r1", "word " * 400)), width=width).plain.splitlines()
        assert len(lines) == heading + (3 if width > 100 else 4), lines  # narrow: the row, then its reason's 3
        assert lines[-1].endswith("…") and all(len(line) <= width for line in lines)
