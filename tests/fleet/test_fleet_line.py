"""The fleet's line: which other members' requests the store lets go before one this member's store put off,
counted from the members' published rows (hand-made here), by class and age, worded with inert names."""

from __future__ import annotations

from medops.core.fleet.view import FleetView, MemberRow, MemberState
from medops.core.groq.wait_reason import FLEET_ROWS, Ahead, Behind, FleetLine, behind_at, with_fleet_line
from medops.core.snapshot import CoreSnapshot, RequestRow, SchedulerSnapshot

MODEL = "llama"


def row(request_id: str, effective: str, age: float, *, state: str = "waiting", model: str = MODEL,
        deferred: bool = False, priority: str = "") -> RequestRow:
    return RequestRow(request_id, "triage", "", priority or effective, effective, "critical", model, 100, age, None,
                      state, "the fleet has room in 1 s", deferred=deferred)  # type: ignore[arg-type]


def published(*rows: RequestRow, taken_at: float = 1_000.0) -> CoreSnapshot:
    return CoreSnapshot(taken_at, 0.0, scheduler=SchedulerSnapshot(requests=rows, requests_held=len(rows)))


def test_higher_classes_are_ahead_and_the_same_class_only_when_older() -> None:
    line = FleetLine({
        "vm-2": published(row("a", "critical", 1.0), row("b", "critical", 2.0), row("c", "critical", 3.0),
                          row("d", "normal", 500.0)),  # normal: behind a high, however old
        "vm-3": published(row("e", "high", 30.0), row("f", "high", 5.0)),  # only the older one is ahead
    })
    ahead = line.ahead("vm-1", MODEL, "high", submitted=1_000.0 - 10.0)
    assert ahead == Behind((Ahead("vm-2", "critical", 3), Ahead("vm-3", "high", 1)))
    assert behind_at(ahead) == "behind 3 critical at vm-2, 1 high at vm-3 (fleet)"


def test_aging_counts_by_the_class_a_request_competes_in_now() -> None:
    # submitted normal, waited its way up to critical: it is ahead of a critical that came later
    line = FleetLine({"vm-2": published(row("old", "critical", 120.0, priority="normal"))})
    assert line.ahead("vm-1", MODEL, "critical", submitted=1_000.0 - 60.0) == Behind((Ahead("vm-2", "critical", 1),))
    assert line.ahead("vm-1", MODEL, "critical", submitted=1_000.0 - 200.0) == Behind()  # this one is older still


def test_a_tie_in_age_is_not_ahead_and_ages_compare_across_snapshots_taken_apart() -> None:
    line = FleetLine({"vm-2": published(row("same", "high", 10.0), taken_at=1_000.0),
                      "vm-3": published(row("later", "high", 10.0), taken_at=1_004.0)})  # submitted at 994
    assert line.ahead("vm-1", MODEL, "high", submitted=990.0) == Behind()
    assert line.ahead("vm-1", MODEL, "high", submitted=995.0) == Behind((Ahead("vm-2", "high", 1),
                                                                         Ahead("vm-3", "high", 1)))


def test_only_other_members_requests_for_the_same_model_waiting_in_line_count() -> None:
    line = FleetLine({
        "vm-1": published(row("mine", "critical", 9.0)),
        "vm-2": published(row("sent", "critical", 9.0, state="sending"), row("retry", "critical", 9.0, state="backoff"),
                          row("batch", "critical", 9.0, state="batching"), row("asking", "critical", 9.0,
                                                                                 state="admitting"),
                          row("other", "critical", 9.0, model="qwen"), row("odd", "urgent!", 9.0)),
    })
    assert line.ahead("vm-1", MODEL, "normal", submitted=999.0) == Behind((Ahead("vm-2", "critical", 1),))
    assert line.ahead("vm-1", MODEL, "made-up", submitted=999.0) == Behind()


def test_many_members_are_named_up_to_three_then_summed() -> None:
    line = FleetLine({f"vm-{i}": published(*(row(f"{i}-{j}", "critical", 9.0) for j in range(i))) for i in range(2, 8)})
    words = behind_at(line.ahead("vm-1", MODEL, "normal", submitted=999.0))
    assert words == "behind 7 critical at vm-7, 6 critical at vm-6, 5 critical at vm-5, 9 more (fleet)"


def test_a_hostile_member_name_is_shown_quoted_and_inert() -> None:
    hostile = "vm-2\x1b]52;c;ZXZpbA==\x07"
    words = behind_at(FleetLine({hostile: published(row("a", "critical", 9.0))})
                      .ahead("vm-1", MODEL, "normal", submitted=999.0))
    assert "\x1b" not in words and "\x07" not in words
    assert words.startswith("behind 1 critical at ?'vm-2") and words.endswith("(fleet)")


def test_a_deferred_row_says_whose_go_first_before_its_own_reason_and_others_are_left_alone() -> None:
    mine = published(row("put-off", "normal", 5.0, deferred=True), row("local", "normal", 4.0))
    line = FleetLine({"vm-1": mine, "vm-2": published(row("a", "critical", 1.0), row("b", "critical", 1.0))})
    rows = with_fleet_line("vm-1", mine, line).scheduler.requests
    assert rows[0].reason == "behind 2 critical at vm-2 (fleet); the fleet has room in 1 s"
    assert rows[1].reason == "the fleet has room in 1 s"  # not put off by the store: no line to give


def test_nobody_ahead_leaves_the_reason_as_it_was() -> None:
    mine = published(row("put-off", "critical", 50.0, deferred=True))
    out = with_fleet_line("vm-1", mine, FleetLine({"vm-2": published(row("a", "normal", 90.0))}))
    assert out.scheduler.requests[0].reason == "the fleet has room in 1 s"


def test_the_rows_given_a_line_are_bounded() -> None:
    mine = published(*(row(f"r{i}", "normal", 5.0, deferred=True) for i in range(FLEET_ROWS + 5)))
    line = FleetLine({"vm-2": published(row("a", "critical", 1.0))})
    rows = with_fleet_line("vm-1", mine, line).scheduler.requests
    assert sum(r.reason.startswith("behind") for r in rows) == FLEET_ROWS


def listed(instance: str, state: MemberState = MemberState.ALIVE) -> MemberRow:
    return MemberRow(instance, "vm", 1, "core", "0", 0.0, 0.0, 0.0, state, {}, 0, 0, 0, 0, {}, 0.0, 0.0, 0.0, 0, False)


def test_a_member_gone_stands_in_no_line() -> None:
    snapshots = {"vm-1": published(row("put-off", "normal", 5.0, deferred=True)),
                 "vm-2": published(row("a", "critical", 1.0))}
    both = FleetView("redis://store", 1.0, (listed("vm-1"), listed("vm-2", MemberState.STALE)), (), snapshots)
    shown = both.in_line("vm-1")
    assert shown is not None and shown.scheduler.requests[0].reason.startswith("behind 1 critical at vm-2 (fleet)")
    gone = FleetView("redis://store", 1.0, (listed("vm-1"), listed("vm-2", MemberState.GONE)), (), snapshots)
    shown = gone.in_line("vm-1")
    assert shown is not None and shown.scheduler.requests[0].reason == "the fleet has room in 1 s"
    assert gone.in_line("vm-2") is snapshots["vm-2"] and gone.in_line("vm-9") is None  # nothing put off: as read


def test_a_members_own_requests_tab_gives_its_put_off_rows_the_line_from_the_apps_fleet_reading() -> None:
    from medops.console.panes.requests import RequestsPane
    from medops.core.snapshot import QuotaSnapshot, StoreSnapshot

    store = StoreSnapshot("redis://store", "vm-1", "up", None, 0.0, 0.0, 3, 3, 0.0, 0)
    own = CoreSnapshot(1_000.0, 0.0, quota=QuotaSnapshot(store=store),
                       scheduler=SchedulerSnapshot(requests=(row("put-off", "high", 5.0, deferred=True),)))
    others = {"vm-1": published(row("stale-copy", "critical", 1.0)),  # its own published copy: not ahead of itself
              "vm-2": published(row("a", "critical", 1.0)), "vm-3": published(row("b", "critical", 1.0))}
    pane = RequestsPane(None)  # type: ignore[arg-type]  # drawn by the app; here only its model
    pane._latest = own
    assert pane.shown_snapshot() == own  # no fleet reading yet: the core's reason as it is
    pane.show_fleet(FleetView("redis://store", 1.0, (listed("vm-1"), listed("vm-2"), listed("vm-3", MemberState.GONE)),
                              (), others))
    shown = pane.shown_snapshot()
    assert shown is not None
    assert shown.scheduler.requests[0].reason == "behind 1 critical at vm-2 (fleet); the fleet has room in 1 s"


def test_higher_classes_are_named_first_then_its_own_and_the_rest_summed_never_its_own_members() -> None:
    line = FleetLine({
        "vm-1": published(*(row(f"own-{i}", "critical", 9.0) for i in range(5))),  # its own: never ahead of itself
        "vm-2": published(row("a", "critical", 9.0), row("b", "critical", 9.0)),
        "vm-3": published(row("c", "high", 30.0)),
        "vm-4": published(row("d", "high", 30.0), row("e", "high", 20.0), row("f", "high", 11.0),
                          row("g", "high", 1.0)),  # submitted after this request: behind it
        "vm-5": published(row("h", "critical", 2.0)),
    })
    behind = line.ahead("vm-1", MODEL, "high", submitted=1_000.0 - 10.0)
    assert behind == Behind((Ahead("vm-2", "critical", 2), Ahead("vm-5", "critical", 1), Ahead("vm-4", "high", 3)),
                            more=1)
    assert behind_at(behind) == "behind 2 critical at vm-2, 1 critical at vm-5, 3 high at vm-4, 1 more (fleet)"
