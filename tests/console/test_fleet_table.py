"""The Fleet tab's model (console/fleet_table.py): order, filter and summary over one reading, with no app."""

from __future__ import annotations

from dataclasses import replace

from medops.console.fleet_table import SORT_KEYS, FleetTable
from medops.core.fleet.view import FleetView, MemberRow, MemberState

READ_AT = 1_780_000_000.0


def member(name: str, host: str, done: int, state: str = "alive") -> MemberRow:
    return MemberRow(name, host, 100 + done, "worker", "0.9.0", READ_AT - 600.0, 0.5, READ_AT - 0.5,
                     MemberState(state), {"critical": 0, "high": 0, "normal": done % 3}, 0, done, 0, 0,
                     {"rpm": done}, 10.0, 5.0, 20.0, 0, False)


def table(**kwargs: object) -> FleetTable:
    view = FleetView("redis://127.0.0.1:6379/0", READ_AT,
                     (member("bravo", "lab", 10), member("alpha", "ward7", 30), member("charlie", "lab", 20, "stale")),
                     (), {})
    return FleetTable(view=view, **kwargs)  # type: ignore[arg-type]


def names(model: FleetTable) -> list[str]:
    return [m.instance for m in model.shown()]


def test_members_are_listed_by_instance_until_another_column_is_chosen() -> None:
    assert names(table()) == ["alpha", "bravo", "charlie"]


def test_choosing_a_column_sorts_by_it_and_choosing_it_again_reverses() -> None:
    model = table()
    model.sort_by("done")
    assert names(model) == ["bravo", "charlie", "alpha"]
    model.sort_by("done")
    assert names(model) == ["alpha", "charlie", "bravo"]
    model.sort_by("host")  # another column starts ascending; equal hosts by instance
    assert (model.reverse, names(model)) == (False, ["bravo", "charlie", "alpha"])


def test_s_reverses_an_ascending_column_then_moves_to_the_next_one_ascending() -> None:
    model = table(sort_key="done")
    model.sort_next()
    assert (model.sort_key, model.reverse) == ("done", True)
    model.sort_next()
    assert (model.sort_key, model.reverse) == (SORT_KEYS[SORT_KEYS.index("done") + 1], False)


def test_s_after_the_last_column_comes_back_to_the_first() -> None:
    model = table(sort_key=SORT_KEYS[-1], reverse=True)
    model.sort_next()
    assert (model.sort_key, model.reverse) == (SORT_KEYS[0], False)


def test_the_filter_matches_any_cell_whatever_the_case() -> None:
    assert names(table(filter_text="LAB")) == ["bravo", "charlie"]
    assert names(table(filter_text="! stale")) == ["charlie"]  # the state as drawn
    assert names(table(filter_text="nobody")) == []


def test_nothing_is_shown_before_the_first_reading() -> None:
    assert FleetTable().shown() == []


def test_the_summary_counts_states_says_the_order_and_shows_a_typed_filter_as_text() -> None:
    model = table(sort_key="done", reverse=True, filter_text="[b]lab")
    summary = model.summary(shown=0)
    assert summary.plain == ("redis://127.0.0.1:6379/0: 2 alive, 1 stale, 0 gone, 0 left · sort: done ↓"
                             " · filter '[b]lab': 0 shown")


def test_cells_are_plain_text_justified_as_their_column() -> None:
    model = table()
    cells = model.cells(model.shown()[0])
    assert [c.plain for c in cells[:3]] == ["alpha", "ward7", "130"]
    assert (cells[0].justify, cells[2].justify) == ("left", "right")


def test_the_summary_names_the_fleets_namespace_and_the_other_fleets_on_its_store() -> None:
    model = table(sort_key="done", reverse=True)
    assert model.view is not None
    model.view = replace(model.view, namespace="3f2a9c0d1e2b4a5c", others=("77aa00bb11cc22dd",))
    assert model.summary(shown=3).plain == (
        "redis://127.0.0.1:6379/0 · fleet 3f2a9c0d1e2b4a5c: 2 alive, 1 stale, 0 gone, 0 left · sort: done ↓\n"
        "! 1 other fleet shares this store (another Groq key or endpoint): 77aa00bb11cc22dd; watch one with "
        "MEDOPS_STORE_NAMESPACE=NAME medops --attach, or medops fleet --namespace NAME")


def test_a_long_host_name_is_cut_to_fit_the_table() -> None:
    # A hostile host name widened the Fleet table past 160 columns.
    from medops.console.fleet_table import HOST_WIDTH

    view = FleetView("redis://127.0.0.1:6379/0", READ_AT, (member("w1", "h" * 253, 1),), (), {})
    model = FleetTable(view=view)  # type: ignore[arg-type]
    host = model.cells(model.shown()[0])[1].plain
    assert len(host) == HOST_WIDTH and host.endswith("…")
