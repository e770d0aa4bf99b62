"""The console driven through Textual's Pilot: refresh loop, keys, themes, help, forms."""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from textual.binding import Binding
from textual.filter import Monochrome, NoColor
from textual.widgets import Button, Footer, Input, Label, OptionList, TabbedContent
from textual.widgets._footer import FooterKey

from medops.console.app import MedopsApp
from medops.console.forms.intake import IntakeSuggester
from medops.console.forms.prompt import ReplyCard
from medops.console.help import HelpScreen
from medops.console.panes.alerts import AlertsPane
from medops.console.panes.quota import QuotaPane
from medops.console.panes.status import StatusLine
from medops.console.theme_files import DEFAULT_THEME, load_themes, parse_theme, themes_dir
from medops.core.documents.intake import Intake
from medops.core.errors import MedopsError
from medops.core.resource_core import CoreNotRunning
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations
from medops.core.snapshot import CoreSnapshot, ServerReport
from tests.helpers.console_data import FrozenCore, before_any_request_snapshot, busy_snapshot
from tests.helpers.waiting import until

# A long interval keeps the timer out of the way; tests ask for snapshots themselves.
QUIET = Settings(refresh_interval=60.0)


def make_app(locations: Locations, settings: Settings = QUIET, **kwargs: Any) -> tuple[MedopsApp, FrozenCore]:
    core = FrozenCore()
    return MedopsApp(settings, locations, core=core, **kwargs), core


def status_text(app: MedopsApp) -> str:
    return str(app.query_one(StatusLine).render())


async def test_the_core_starts_on_mount_and_stops_on_quit(locations: Locations) -> None:
    app, core = make_app(locations)
    async with app.run_test() as pilot:
        await pilot.pause()
        assert core.running
        assert app.snapshots_applied >= 1
        await pilot.press("q")
    assert not core.running


async def test_ticks_during_a_fetch_coalesce_into_one_more_fetch(locations: Locations) -> None:
    app, core = make_app(locations)
    async with app.run_test() as pilot:
        await pilot.pause()
        taken = core.snapshots_taken
        for _ in range(5):
            app.ask_for_snapshot()
        await pilot.pause()
        await pilot.pause()
        assert core.snapshots_taken == taken + 2


async def test_space_pauses_the_display_and_resumes_it(locations: Locations) -> None:
    app, _ = make_app(locations)
    async with app.run_test() as pilot:
        await pilot.pause()
        await pilot.press("space")
        applied = app.snapshots_applied
        app.ask_for_snapshot()
        await pilot.pause()
        assert app.snapshots_applied == applied
        assert "DISPLAY PAUSED" in status_text(app)
        await pilot.press("space")
        await pilot.pause()
        assert app.snapshots_applied == applied + 1
        assert "live" in status_text(app)


async def test_intake_key_pauses_and_resumes_the_core(locations: Locations) -> None:
    app, core = make_app(locations)
    async with app.run_test() as pilot:
        await pilot.pause()
        await pilot.press("i")
        await pilot.pause()
        assert core.snapshot().paused
        assert "INTAKE PAUSED" in status_text(app)
        await pilot.press("i")
        await pilot.pause()
        assert not core.snapshot().paused
        assert "intake open" in status_text(app)


async def test_plus_and_minus_step_the_refresh_interval(locations: Locations) -> None:
    app, _ = make_app(locations, Settings(refresh_interval=1.0))
    async with app.run_test() as pilot:
        await pilot.pause()
        await pilot.press("plus")
        assert app.refresh_interval == 0.5
        assert app.snapshots.interval == 0.5
        await pilot.press("minus", "minus")
        assert app.refresh_interval == 2.0
        assert "every 2s" in status_text(app)


async def test_t_cycles_the_medops_themes(locations: Locations) -> None:
    app, _ = make_app(locations)
    async with app.run_test() as pilot:
        assert app.theme == DEFAULT_THEME
        await pilot.press("t")
        assert app.theme != DEFAULT_THEME
        assert app.theme in app.medops_themes


async def test_the_palette_switches_theme(locations: Locations) -> None:
    app, _ = make_app(locations)
    async with app.run_test() as pilot:
        await pilot.press("ctrl+p")
        await pilot.press(*"theme: medops-light")
        await pilot.pause(0.3)  # the palette searches on a worker
        await pilot.press("enter")
        await pilot.pause()
        assert app.theme == "medops-light"


async def test_theme_option_picks_the_theme(locations: Locations) -> None:
    app, _ = make_app(locations, theme="medops-contrast")
    async with app.run_test():
        assert app.theme == "medops-contrast"


async def test_a_broken_theme_file_warns_and_the_default_is_used(locations: Locations, tmp_path: Path) -> None:
    folder = tmp_path / "themes"
    folder.mkdir()
    (folder / "medops-dark.toml").write_text('name = "medops-dark"\n[colors]\nprimary = "#4f9de0"\n')
    (folder / "broken.toml").write_text('name = "broken"\n[colors]\nprimary = "not a colour"\n')
    app, _ = make_app(locations, theme="broken", themes_folder=folder)
    async with app.run_test() as pilot:
        await pilot.pause()
        assert app.theme == DEFAULT_THEME
        notes = [n.message for n in app._notifications]
        assert any("broken.toml skipped" in n and "not a colour" in n for n in notes)
        assert any("theme 'broken' not found" in n for n in notes)


@pytest.mark.parametrize("key", ["f1", "question_mark"])
async def test_help_opens_and_closes(locations: Locations, key: str) -> None:
    app, _ = make_app(locations)
    async with app.run_test() as pilot:
        await pilot.press(key)
        assert isinstance(app.screen, HelpScreen)
        help_text = str(app.screen.query_one("#help-text").render())
        assert "toggle_intake" not in help_text
        assert "pause / resume the core's intake of new work" in help_text
        assert "ctrl+p" in help_text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_layout_is_narrow_at_80_columns_and_a_grid_when_wide(locations: Locations) -> None:
    app, _ = make_app(locations)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.has_class("narrow") and not app.has_class("wide")
        await pilot.resize_terminal(160, 48)
        await pilot.pause()
        assert app.has_class("wide") and not app.has_class("narrow")


async def test_hidden_panes_are_not_redrawn_until_shown(locations: Locations) -> None:
    app, core = make_app(locations)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        quota = app.query_one(QuotaPane)
        drawn = quota.redraws
        await pilot.press("2")
        await pilot.pause()
        core.frozen = replace(core.frozen, quota=replace(core.frozen.quota, models=core.frozen.quota.models[:1]))
        app.ask_for_snapshot()
        await pilot.pause()
        assert app.query_one("#tabs", TabbedContent).active == "graphs-tab"
        assert quota.redraws == drawn
        await pilot.press("1")
        await pilot.pause()
        assert quota.redraws == drawn + 1
        assert "llama-3.1-8b-instant" not in str(quota.render())


async def test_unchanged_sections_are_not_redrawn(locations: Locations) -> None:
    app, _ = make_app(locations)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        quota = app.query_one(QuotaPane)
        drawn = quota.redraws
        app.ask_for_snapshot()
        await pilot.pause()
        assert quota.redraws == drawn


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGHUP, 129), (signal.SIGTERM, 143)],
                         ids=["SIGHUP", "SIGTERM"])
async def test_a_hangup_or_terminate_signal_makes_the_console_leave_stop_the_core_and_exit_128_plus_n(
        locations: Locations, signum: int, code: int) -> None:
    app, core = make_app(locations)
    async with app.run_test() as pilot:
        await pilot.pause()
        os.kill(os.getpid(), signum)
        await pilot.pause(0.2)
    assert app.return_code == code
    assert not core.running


# ---- forms ----------------------------------------------------------------------------


async def test_an_empty_prompt_is_refused_with_a_message(locations: Locations) -> None:
    app, _ = make_app(locations)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3")
        await pilot.press("enter")
        assert "Type a prompt first" in str(app.query_one("#prompt-error", Label).render())


async def test_forms_show_what_the_core_says_when_it_refuses(locations: Locations) -> None:
    app, _ = make_app(locations)
    intake = locations.default_intake_dir
    intake.mkdir(parents=True)
    (intake / "scan.pdf").write_bytes(b"%PDF-1.4\n")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3", *"chest pain", "enter")
        card = app.query_one(ReplyCard)
        assert await until(pilot, lambda: "answers no prompts" in str(card.render())), card.render()
        await pilot.press("escape", "4", *"scan.pdf", "enter")
        doc_error = app.query_one("#doc-error", Label)
        assert await until(pilot, lambda: "extracts no documents" in str(doc_error.render())), doc_error.render()
        await pilot.press("escape", "5", *"sepsis", "enter")
        search_error = app.query_one("#search-error", Label)
        assert await until(pilot, lambda: "no knowledge base" in str(search_error.render())), search_error.render()


async def test_a_document_outside_the_intake_folders_is_refused(locations: Locations, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.pdf"
    outside.write_bytes(b"%PDF-1.4\n")
    app, _ = make_app(locations)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        app.query_one("#doc-path", Input).value = str(outside)
        await pilot.press("enter")
        error = app.query_one("#doc-error", Label)
        assert await until(pilot, lambda: "outside the intake folders" in str(error.render())), error.render()
        assert app.query_one("#doc-cancel", Button).disabled  # refused: nothing is left running


async def test_a_missing_document_and_a_bad_case_id_are_refused(locations: Locations) -> None:
    intake = locations.default_intake_dir
    intake.mkdir(parents=True)
    (intake / "scan.pdf").write_bytes(b"%PDF-1.4\n")
    app, _ = make_app(locations)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4", *"nope.pdf", "enter")
        error = app.query_one("#doc-error", Label)
        assert await until(pilot, lambda: "nope.pdf: no such file in the intake folders" in str(error.render()))
        await pilot.press("ctrl+a", "ctrl+k", "enter")  # an empty path says what to type
        assert await until(pilot, lambda: "no path given" in str(error.render())), error.render()
        app.query_one("#doc-path", Input).value = "scan.pdf"
        app.query_one("#doc-case", Input).value = "case 7/../x"
        await pilot.click("#doc-extract")
        assert "case id" in str(app.query_one("#doc-error", Label).render())


async def test_the_document_list_completes_from_the_intake_folder(locations: Locations) -> None:
    intake = locations.default_intake_dir
    intake.mkdir(parents=True)
    for name in ("scan-001.pdf", "scan-002.pdf", "letter.png"):
        (intake / name).write_bytes(b"x")
    (intake / "ward-3").mkdir()
    (intake / "ward-3" / "referral.pdf").write_bytes(b"x")
    app, _ = make_app(locations)
    async with app.run_test(size=(120, 40)) as pilot:
        options = app.query_one("#doc-candidates", OptionList)

        def listed() -> list[str]:
            return [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]

        await pilot.press("4")  # nothing typed: the top of the intake folder
        assert await until(pilot, lambda: listed() == ["letter.png", "scan-001.pdf", "scan-002.pdf", "ward-3/"])
        await pilot.press(*"scan")
        assert await until(pilot, lambda: listed() == ["scan-001.pdf", "scan-002.pdf"]), listed()
        app.query_one("#doc-path", Input).value = "w"
        assert await until(pilot, lambda: listed() == ["ward-3/"]), listed()
        options.focus()
        options.highlighted = 0
        await pilot.press("enter")  # a folder chosen: its contents are listed next
        assert app.query_one("#doc-path", Input).value == "ward-3/"
        assert await until(pilot, lambda: listed() == ["ward-3/referral.pdf"]), listed()


async def test_a_one_letter_search_is_refused(locations: Locations) -> None:
    app, _ = make_app(locations)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5", "x", "enter")
        assert "at least two characters" in str(app.query_one("#search-error", Label).render())


async def test_snapshots_keep_flowing_under_the_help_screen_and_the_palette(locations: Locations) -> None:
    app, _ = make_app(locations)
    async with app.run_test() as pilot:
        await pilot.pause()
        applied = app.snapshots_applied
        await pilot.press("f1")
        app.ask_for_snapshot()
        await pilot.pause()
        await pilot.press("escape", "ctrl+p")
        await pilot.pause()
        app.ask_for_snapshot()
        await pilot.pause()
        assert app.snapshots_applied == applied + 2
        assert list(app.get_system_commands(app.screen))


async def test_forms_say_the_core_is_still_starting(locations: Locations) -> None:
    class SlowCore(FrozenCore):
        def __init__(self) -> None:
            super().__init__()
            self.release = asyncio.Event()

        async def start(self) -> None:
            await self.release.wait()
            await super().start()

    core = SlowCore()
    app = MedopsApp(QUIET, locations, core=core)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3", *"hello", "enter")
        assert "still starting" in str(app.query_one("#prompt-error", Label).render())
        assert app.snapshots_applied == 0
        core.release.set()
        await pilot.pause()
        await pilot.pause()
        assert app.core_started and app.snapshots_applied == 1


async def test_no_color_picks_the_plain_terminal_theme(locations: Locations, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app, _ = make_app(locations)
    async with app.run_test() as pilot:
        await pilot.pause()
        assert app.no_color
        assert app.theme == "medops-contrast"
        # the terminal's default colours, styles kept; Textual's grey filter made the ANSI theme black on black
        filters = app.get_line_filters()
        assert any(isinstance(f, NoColor) for f in filters) and not any(isinstance(f, Monochrome) for f in filters)


def test_the_themes_folder_comes_from_the_environment_or_beside_the_package(tmp_path: Path) -> None:
    assert themes_dir({"MEDOPS_THEMES_DIR": str(tmp_path)}) == tmp_path
    shipped = themes_dir({})
    assert shipped is not None
    loaded = load_themes(shipped)
    assert {"medops-dark", "medops-light", "medops-contrast"} <= set(loaded.names())
    assert loaded.warnings == ()


async def test_the_path_suggester_completes_relative_and_absolute_paths(tmp_path: Path) -> None:
    folder = tmp_path / "intake"
    (folder / "ward-3").mkdir(parents=True)
    (folder / "ward-3" / "referral.pdf").write_bytes(b"x")
    suggester = IntakeSuggester(Intake((folder,), max_bytes=1 << 20))
    assert await suggester.get_suggestion("ward-3/re") == "ward-3/referral.pdf"
    # one level at a time, as a shell completes: the folder, then what is in it
    assert await suggester.get_suggestion(str(folder / "wa")) == f"{folder}/ward-3/"
    assert await suggester.get_suggestion(f"{folder}/ward-3/") == f"{folder}/ward-3/referral.pdf"
    assert await suggester.get_suggestion("") is None
    assert await suggester.get_suggestion("nothing") is None


async def test_unused_models_share_one_line_in_the_quota_pane(locations: Locations) -> None:
    app, _ = make_app(locations)
    async with app.run_test(size=(160, 48)) as pilot:
        assert await until(pilot, lambda: app.snapshots_applied > 0)  # the core's one poll (QUIET), then ours
        shown = str(app.query_one(QuotaPane).render())
        assert "llama-3.3-70b-versatile" in shown and " rpm " in shown
        assert "unused so far" not in shown
        busy = busy_snapshot()
        fresh = tuple(replace(w, used=0, blocked_for=0.0) for w in busy.quota.models[0].windows)
        idle = replace(busy.quota.models[0], windows=fresh, server=ServerReport(), rate_limited=0, refused_too_large=0,
                       waiting=0)
        app.apply_snapshot(replace(busy, quota=replace(busy.quota, models=(idle, busy.quota.models[1]))))
        await pilot.pause()
        shown = str(app.query_one(QuotaPane).render())
        assert "unused so far: llama-3.3-70b-versatile" in shown
        assert shown.count(" rpm ") == 1


async def test_the_quota_pane_shows_498s_and_a_capacity_hold_only_when_there_were_any(
        locations: Locations) -> None:
    app, _ = make_app(locations)
    async with app.run_test(size=(160, 48)) as pilot:
        assert await until(pilot, lambda: app.snapshots_applied > 0)  # the core's one poll (QUIET), then ours
        assert "498s" not in str(app.query_one(QuotaPane).render())
        busy = busy_snapshot()
        held = replace(busy.quota.models[0], capacity_exceeded=3, capacity_hold=1.5)
        app.apply_snapshot(replace(busy, quota=replace(busy.quota, models=(held, *busy.quota.models[1:]))))
        await pilot.pause()
        shown = str(app.query_one(QuotaPane).render())
        assert "498s 3" in shown and "held 1.5s" in shown


async def test_each_model_heading_shows_the_requests_waiting_for_it_at_80_columns(locations: Locations) -> None:
    app, _ = make_app(locations)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        headings = [line for line in str(app.query_one(QuotaPane).render()).splitlines() if "429s" in line]
        assert len(headings) == 2
        assert "llama-3.3-70b-versatile" in headings[0] and "waiting 4" in headings[0]
        assert "llama-3.1-8b-instant" in headings[1] and "waiting 0" in headings[1]


async def test_a_model_with_requests_waiting_is_not_folded_into_unused(locations: Locations) -> None:
    app, core = make_app(locations)
    before = before_any_request_snapshot()
    queued = tuple(replace(m, waiting=2) if m.model == "qwen/qwen3-32b" else m for m in before.quota.models)
    core.frozen = replace(before, quota=replace(before.quota, models=queued))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        shown = str(app.query_one(QuotaPane).render())
        assert "qwen/qwen3-32b  waiting 2" in shown
        assert "qwen/qwen3-32b" not in shown.split("unused so far:")[-1]


async def test_the_default_model_shows_its_limits_before_any_request(locations: Locations) -> None:
    app, core = make_app(locations)
    core.frozen = before_any_request_snapshot()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        shown = str(app.query_one(QuotaPane).render())
        assert "llama-3.1-8b-instant (default)" in shown
        assert [line.split()[0] for line in shown.splitlines() if "reset" in line] == ["rpm", "rpd", "tpm", "tpd"]
        assert "0/30" in shown and "0/14.4k" in shown and "0/6k" in shown and "0/500k" in shown
        unused = shown[shown.index("unused so far:"):]
        assert "llama-3.3-70b-versatile" in unused and "qwen/qwen3-32b" in unused
        assert "llama-3.1-8b-instant" not in unused


async def test_a_failing_snapshot_is_reported_once_and_the_console_stays_up(locations: Locations) -> None:
    class BrokenCore(FrozenCore):
        def snapshot(self) -> CoreSnapshot:
            raise CoreNotRunning("the ledger part crashed; see `medops doctor`")

    app = MedopsApp(QUIET, locations, core=BrokenCore())
    async with app.run_test() as pilot:
        await pilot.pause()
        for _ in range(3):
            app.ask_for_snapshot()
            await pilot.pause()
        notes = [n.message for n in app._notifications if "No snapshot" in n.message]
        assert notes == ["No snapshot: CoreNotRunning: the ledger part crashed; see `medops doctor`"]
        assert app.is_running


async def test_the_footer_at_80_columns_lists_limits_and_the_palette(locations: Locations) -> None:
    app, _ = make_app(locations)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        footer = app.query_one(Footer)
        assert footer.compact and footer.show_command_palette
        shown = {key.action for key in footer.query(FooterKey)}
        # the rate keys and r work unlisted at 80 columns (the help lists them) so that these fit
        assert {"quit", "pause_display", "toggle_intake", "next_theme", "limits", "help",
                "show_tab('overview')"} <= shown
        assert all(key.region.right <= 80 for key in footer.query(FooterKey))
        assert not any(isinstance(key, FooterKey) and key.action == "graph_window" for key in footer.query(FooterKey))
        await pilot.press("2")  # the span key is listed where it acts, and everything still fits
        await pilot.pause()
        assert "graph_window" in {key.action for key in footer.query(FooterKey)}
        assert all(key.region.right <= 80 for key in footer.query(FooterKey))
        await pilot.press("1", "space")
        await pilot.pause()
        shown = {key.action for key in footer.query(FooterKey)}
        assert "resume_display" in shown and "pause_display" not in shown
        await pilot.press("space")
        interval = app.refresh_interval
        await pilot.press("plus")  # unlisted here, working all the same
        assert app.refresh_interval < interval
        await pilot.press("3")
        await pilot.pause()
        assert "leave_field" in {key.action for key in footer.query(FooterKey)}


async def test_a_core_that_fails_to_start_is_shown_and_the_console_stays_up(locations: Locations) -> None:
    class FailingCore(FrozenCore):
        async def start(self) -> None:
            raise CoreNotRunning("the ops ledger is locked by pid 4242; stop that medops first")

    app = MedopsApp(QUIET, locations, core=FailingCore())
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        await pilot.pause()
        assert "core failed" in status_text(app) and "pid 4242" in status_text(app)
        assert not app.core_started and app.is_running
        await pilot.press("q")
    assert app.return_code == 0


@pytest.mark.usefixtures("berlin_time")
async def test_the_overview_shows_local_times_and_names_the_zone(locations: Locations) -> None:
    app, _ = make_app(locations)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        pane = app.query_one(AlertsPane)
        assert await until(pilot, lambda: pane.redraws > 0)
        assert pane.border_title == "Alerts · CET time"
        # quota_low opened a minute before 2026-01-01 00:00 UTC: 00:59 in Berlin
        assert "00:59:00" in str(pane.render()) and "23:59:00" not in str(pane.render())


def test_a_bad_theme_file_is_a_medops_error_saying_what_to_fix(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[colors]\nprimary = "not a colour"\n', encoding="utf-8")
    with pytest.raises(MedopsError, match="primary = 'not a colour' is not a colour"):
        parse_theme(bad)


async def test_a_crash_shows_where_it_happened_never_the_values_it_held(
        locations: Locations, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def leaky_refresh(self: MedopsApp) -> None:
        patient = "Jane Roe, MRN 00123456, HIV positive"
        raise ValueError(f"cannot parse {patient}")

    monkeypatch.setattr(MedopsApp, "action_refresh_now", leaky_refresh)
    app, _core = make_app(locations)
    with pytest.raises(ValueError, match="cannot parse"):  # Pilot re-raises it for the test
        async with app.run_test() as pilot:
            await pilot.pause()
            await pilot.press("r")
            await pilot.pause()
    printed = capsys.readouterr().err
    assert "unexpected ValueError" in printed and "in leaky_refresh" in printed and "test_console.py:" in printed
    assert "Jane Roe" not in printed and "00123456" not in printed


async def test_t_names_the_theme_and_the_next_start_remembers_it(locations: Locations) -> None:
    app, _ = make_app(locations)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        before = app.theme
        await pilot.press("t")
        await pilot.pause()
        chosen = app.theme
        assert chosen != before
        assert any(f"Theme {chosen}" in str(n.message) for n in app._notifications)
    again, _ = make_app(locations)
    async with again.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert again.theme == chosen


async def test_the_help_lists_every_panes_keys_from_its_bindings(locations: Locations) -> None:
    """F1 left out the Alerts pane's k / s / u: the rows now come from each pane's bindings."""
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=FrozenCore())  # type: ignore[arg-type]
    async with app.run_test(size=(80, 24)):
        rows = app.key_list()
        for key, word in (("k", "Ack"), ("s", "Silence 1h"), ("u", "Unsilence")):
            assert any(k == key and text.startswith("Alerts") and word in text for k, text in rows), (key, rows)


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=lambda s: f"{s[0]}x{s[1]}")
async def test_a_paused_intake_badge_in_the_quota_pane_is_never_broken_in_two(
        locations: Locations, size: tuple[int, int]) -> None:
    """The queue line and the badge are wider than the pane at both sizes: it wrapped as "intake" / "paused"."""
    # The core's own snapshot is the paused one: one applied by hand could be replaced by the core's first poll,
    # which a loaded machine answered later (seen once in a fresh-clone run).
    app, core = make_app(locations)
    core.paused = True

    def lines() -> list[str]:
        return str(app.query_one(QuotaPane).render()).splitlines()

    async with app.run_test(size=size) as pilot:
        assert await until(pilot, lambda: any("intake paused" in line for line in lines())), lines()
        assert lines()[0].rstrip().endswith("rej 2"), lines()


def test_the_readmes_key_table_covers_every_tab_and_the_prompt_boxs_keys() -> None:
    from medops.console.app import TABS
    from medops.console.forms.prompt_box import PromptBox

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    table = readme[readme.index("| key | action |"):readme.index("Options: `--theme NAME`")]
    assert f"| `1`–`{len(TABS)}` | switch tab" in table
    for number in range(6, len(TABS) + 1):  # the tabs with keys of their own each have a row
        assert f"\n| `{number}` | **" in table, number
    assert "**Requests**" in table
    box = next(line for line in table.splitlines() if line.startswith("| Prompt box |"))
    for binding in PromptBox.BINDINGS:
        keys = binding.key if isinstance(binding, Binding) else binding[0]
        assert all(key in box for key in keys.split(",")), keys


async def test_the_palette_offers_medops_themes_only_each_remembered(locations: Locations) -> None:
    """Textual's own theme picker sat beside medops' themes: nord, gruvbox… applied and never remembered."""
    app, _ = make_app(locations)
    async with app.run_test() as pilot:
        await pilot.pause()
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert "Theme" not in titles, titles
        assert "Quit" in titles and any(title.startswith("Theme: medops") for title in titles), titles
        await pilot.press("ctrl+p", *"theme")
        await pilot.pause(0.5)
        options = app.screen.query_one("CommandList").options  # type: ignore[attr-defined]
        shown = [str(option.prompt).split("\n")[0] for option in options]
        assert shown and all(line.startswith("Theme: ") for line in shown), shown


async def test_a_core_that_finishes_starting_after_the_app_closed_touches_no_pane(locations: Locations) -> None:
    # Seen under load: CoreStarted landed after the app had shut down and `main` read an empty screen stack.
    app, _ = make_app(locations)
    async with app.run_test() as pilot:
        await pilot.pause()
    assert app.closing
    app._core_started()
    app._intake_known()
