"""The console's Limits form and the Document form's cancel key, over a real `ResourceCore`."""

from __future__ import annotations

import pytest
from textual.widgets import Button, Footer, Input, Label
from textual.widgets._footer import FooterKey

from medops.console.app import MedopsApp
from medops.console.forms.document import DocumentForm
from medops.console.forms.limit_history import LimitHistoryView
from medops.console.forms.limits import LimitsScreen, about
from medops.console.panes.alerts import tuner_figures
from medops.core.resource_core import ResourceCore
from medops.core.settings.config import Settings
from medops.core.settings.live_changes import setting_help
from medops.core.settings.paths import Locations
from medops.core.snapshot import TunerChange
from tests.helpers.document_files import CLINICAL_TEXT, text_pdf
from tests.helpers.waiting import until

# The tests here start cores: each gets the session's knowledge base (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("knowledge_ready")


def live_app(locations: Locations) -> tuple[MedopsApp, ResourceCore]:
    settings = Settings(refresh_interval=0.5, io_threads=4)
    core = ResourceCore(settings, locations)
    return MedopsApp(settings, locations, core=core), core


def text(app: MedopsApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Label).render())


def newest_change(app: MedopsApp) -> tuple[str, str, str, str] | None:
    """The newest change the form's history shows (key, old, new, by), once it has an answer."""
    shown = app.screen.query_one(LimitHistoryView).shown
    if shown is None or not shown.changes:
        return None
    change = shown.changes[0]
    return change.key, change.old, change.new, change.by


async def test_a_limit_is_changed_by_keyboard_and_bad_values_are_refused(locations: Locations) -> None:
    app, core = live_app(locations)
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.core_started)
        await pilot.press("l")
        assert isinstance(app.screen, LimitsScreen)
        assert text(app, "#limit-result") == ""  # nothing to say before a change (attached, it says where it goes)
        await pilot.press(*"io_thr", "right")  # → takes the completion
        assert app.screen.query_one("#limit-key", Input).value == "io_threads"
        assert "I/O thread pool size" in text(app, "#limit-about") and "changes now" in text(app, "#limit-about")
        await pilot.press("enter", "9", "enter")
        assert text(app, "#limit-result") == "io_threads: 4 → 9 (applied now)"
        assert next(p.capacity for p in core.snapshot().pools if p.name == "io") == 9
        assert await until(pilot, lambda: newest_change(app) == ("io_threads", "4", "9", "console"))

        value = app.screen.query_one("#limit-value", Input)
        value.value = "0"
        await pilot.press("enter")
        error = text(app, "#limit-error")
        assert "io_threads = 0 (from console) is out of range: allowed 1 to 4096" in error
        assert core.settings.io_threads == 9

        app.screen.query_one("#limit-key", Input).value = "max_cases_in_memory"
        value.value = "50"
        await pilot.press("enter")
        refused = text(app, "#limit-error")
        assert "restart needed" in refused and "MEDOPS_MAX_CASES_IN_MEMORY" in refused
        await pilot.press("escape")
        assert not isinstance(app.screen, LimitsScreen)
        assert await until(pilot, lambda: app.latest is not None and len(app.latest.limit_changes) == 1)


async def test_a_set_knob_shows_pinned_and_auto_hands_it_back_to_the_tuner(locations: Locations) -> None:
    app, core = live_app(locations)
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.core_started)
        await pilot.press("l", *"io_threads")
        assert "sized by the auto-tuner" in text(app, "#limit-about")
        await pilot.press("enter", "6", "enter")
        assert "PINNED" in text(app, "#limit-about")
        assert core.snapshot().tuner.pinned == ("io_threads",)

        app.screen.query_one("#limit-value", Input).value = "auto"
        await pilot.press("enter")
        assert text(app, "#limit-result") == "io_threads: handed back to the auto-tuner"
        assert "sized by the auto-tuner" in text(app, "#limit-about")
        assert core.snapshot().tuner.pinned == ()
        assert await until(pilot, lambda: newest_change(app) == ("io_threads", "6", "auto", "console"))

        app.screen.query_one("#limit-key", Input).value = "cpu_threads"
        await pilot.press("enter")
        assert "not sized by the auto-tuner" in text(app, "#limit-error")


async def test_the_refresh_interval_set_as_a_limit_drives_the_console(locations: Locations) -> None:
    app, core = live_app(locations)
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.core_started)
        assert "Change a limit" in {c.title for c in app.get_system_commands(app.screen)}
        await pilot.press("l", *"refresh_interval", "enter", *"2.5", "enter")
        assert app.refresh_interval == 2.5 and core.settings.refresh_interval == 2.5
        assert app.settings.refresh_interval == 2.5


async def test_ctrl_g_cancels_the_running_document_job(locations: Locations) -> None:
    intake = locations.default_intake_dir
    intake.mkdir(parents=True)
    text_pdf(intake / "referral.pdf", [CLINICAL_TEXT])
    app, core = live_app(locations)
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.core_started)
        core.pause_intake()  # the job waits in the queue, so it is surely still running when cancelled
        await pilot.press("4")
        app.query_one("#doc-path", Input).value = "referral.pdf"
        await pilot.press("enter")
        form = app.query_one(DocumentForm)
        assert await until(pilot, lambda: form.job_id is not None)
        assert not app.query_one("#doc-cancel", Button).disabled
        footer = app.query_one(Footer)
        assert "cancel_document" in {key.action for key in footer.query(FooterKey)}
        assert all(key.region.right <= 80 for key in footer.query(FooterKey))
        await pilot.press("ctrl+g")
        assert await until(pilot, lambda: not form.running)
        assert "cancel" in str(app.query_one("#doc-error", Label).render()).lower()
        assert app.query_one("#doc-cancel", Button).disabled
        assert "cancel_document" not in {key.action for key in footer.query(FooterKey)}
        assert core.snapshot().documents.cancelled == 1
        shown = str(app.query_one("#doc-error", Label).render())
        await pilot.press("ctrl+g")  # nothing running: the key is off, the message stays
        assert str(app.query_one("#doc-error", Label).render()) == shown


async def test_l_shows_in_the_footer_at_80_columns_too_and_works(locations: Locations) -> None:
    app, _ = live_app(locations)
    async with app.run_test(size=(120, 30)) as pilot:
        def footer_actions() -> set[str]:
            return {key.action for key in app.query_one(Footer).query(FooterKey)}

        assert await until(pilot, lambda: "limits" in footer_actions())  # the footer fills in after mounting
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert await until(pilot, lambda: "limits" in footer_actions())  # the issue: it was dropped at 80
        footer = app.query_one(Footer)
        assert all(key.region.right <= 80 for key in footer.query(FooterKey))
        assert ("l", "change a limit of the running core, see past changes") in app.key_list()
        await pilot.press("l")
        assert isinstance(app.screen, LimitsScreen)


def test_the_alerts_pane_shows_a_knob_the_operator_pinned_as_kept() -> None:
    kept = TunerChange(at=0.0, knob="io_threads", old=6, new=6, reason="set by the operator", applied=False,
                       skipped=True)
    resized = TunerChange(at=0.0, knob="io_threads", old=6, new=10, reason="CPU low")
    assert (tuner_figures(kept), tuner_figures(resized)) == ("6 kept (operator's)", "6→10")


def test_ranges_read_as_numbers_and_a_prefix_being_typed_is_not_unknown() -> None:
    assert setting_help("queue_limit").endswith("(1 to 1000000)")  # was "(1 to 1e+06)"
    typing = about("io_", Settings())
    assert "→ completes" in typing and "io_threads" in typing and "unknown" not in typing
    assert "no setting starts with 'zzz'" in about("zzz", Settings())


async def test_a_setting_and_its_value_typed_at_once_land_in_their_own_fields(locations: Locations) -> None:
    # Enter on the setting moves on at once: the value typed right after it is the value, not more of the key.
    from tests.helpers.typing_keys import keys_for, type_fast

    app, core = live_app(locations)
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.core_started)
        await pilot.press("l")
        assert isinstance(app.screen, LimitsScreen)
        type_fast(app, [*keys_for("io_threads"), "enter", "7", "enter"])
        assert await until(pilot, lambda: text(app, "#limit-result") == "io_threads: 4 → 7 (applied now)")
        assert app.screen.query_one("#limit-key", Input).value == "io_threads"
        assert core.settings.io_threads == 7


async def test_the_two_scope_buttons_differ_by_shape_not_only_colour() -> None:
    # Seen in a trial: under NO_COLOR the chosen and the other scope both drew "▐●▌"; only colour told them apart.
    from textual.app import App, ComposeResult
    from textual.widgets import RadioSet

    from medops.console.forms.limits import ScopeButton

    class Scopes(App[None]):
        def compose(self) -> ComposeResult:
            with RadioSet():
                yield ScopeButton("this console", value=True, id="one")
                yield ScopeButton("the whole fleet", id="all")

    app = Scopes()
    async with app.run_test() as pilot:
        one, every = app.query_one("#one", ScopeButton), app.query_one("#all", ScopeButton)
        assert str(one.render())[:3] != str(every.render())[:3]
        every.value = True
        await pilot.pause()
        assert str(every.render()).startswith("▐●▌") and str(one.render()).startswith("▐○▌")


async def test_a_knob_the_tuner_resized_shows_the_value_in_force_and_the_configured_one(locations: Locations) -> None:
    """The form said "now 8" for io_threads while the tuner ran the pool at 2 (Pools showed io 0/2)."""
    app, core = live_app(locations)  # io_threads = 4 configured
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.core_started)
        core._executors.io.resize(2)  # what the tuner does (CoreTick's Tuner resizes the pool itself)
        await pilot.press("l", *"io_threads")
        assert "now 2 (tuner; configured 4);" in text(app, "#limit-about"), text(app, "#limit-about")
        await pilot.press("enter", "6", "enter")
        assert text(app, "#limit-result") == "io_threads: 4 → 6 (applied now)"
        assert "now 6;" in text(app, "#limit-about") and "configured" not in text(app, "#limit-about")
