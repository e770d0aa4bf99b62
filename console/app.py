"""`MedopsApp`: the full-screen console. It starts the core inside Textual's event
loop, polls one snapshot per tick, and acts through the core's async commands.

The refresh loop follows memray's live reporter (console/poller.py): a timer only
asks, a worker fetches, a `Polled` message carries one snapshot, and the app
applies it inside `batch_update()`. A tick that finds a fetch in progress is folded
into one follow-up fetch, so polls coalesce and never overlap.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import events, on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.geometry import Region
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, TabbedContent, TabPane

from medops.console import figures
from medops.console.crash import crash_report
from medops.console.error_text import describe_error
from medops.console.fleet_access import (
    FleetIssuer,
    FleetReader,
    store_history,
    store_issuer,
    store_limit_setter,
    store_reader,
)
from medops.console.forms.core_handle import STARTING, CoreHandle
from medops.console.forms.document import DocumentForm, DocumentRefused, ExtractionStarted
from medops.console.forms.intake import IntakePaths
from medops.console.forms.limits import LimitsScreen
from medops.console.forms.pasted import PasteHadControls
from medops.console.forms.prompt import PromptForm
from medops.console.forms.prompt_box import PromptBox
from medops.console.forms.search import SearchForm
from medops.console.hangup import STOP_TIMEOUT, Leaving
from medops.console.help import HelpScreen
from medops.console.palette import medops_commands
from medops.console.panes.alerts import SILENCE_FOR, AlertsPane
from medops.console.panes.documents import DocumentsPane
from medops.console.panes.fleet import NO_STORE, FleetAct, FleetPane, answers_text
from medops.console.panes.graphs import GraphsPane
from medops.console.panes.history import HistoryPane
from medops.console.panes.member_screen import MemberScreen
from medops.console.panes.pane import SnapshotPane
from medops.console.panes.pools import PoolsPane
from medops.console.panes.quota import QuotaPane
from medops.console.panes.requests import RequestsPane
from medops.console.panes.slots import SlotsPane
from medops.console.panes.status import ConsoleState, StatusLine
from medops.console.panes.vitals import VitalsPane, fleet_line
from medops.console.poller import Poller, Polling
from medops.console.terminal_input import paste_safe_driver
from medops.console.theme_files import (
    DEFAULT_THEME,
    choose_theme,
    load_themes,
    remember_theme,
    remembered_theme,
    themes_dir,
)
from medops.core.errors import MedopsError
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations
from medops.core.snapshot import CoreSnapshot

if TYPE_CHECKING:
    from medops.core.contract import CoreCommands
    from medops.core.fleet.commands import Acknowledgement
    from medops.core.fleet.view import FleetView

# Refresh intervals the +/- keys step through (seconds); the configured one is added.
REFRESH_STEPS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
NARROW_BELOW = 81
WIDE_FROM = 140
STATUS_PADDING = 2  # the status line's own, left and right
RESIZE_EXCUSE = 3.0  # seconds of loop lag after a resize that are the console's own layout, not the core's
NO_COLOR_ENV = "NO_COLOR"  # any value, as Textual reads it
TABS = ("overview", "graphs", "prompt", "document", "search", "history", "fleet", "requests")
TAB_PANE_IDS = {"graphs": "graphs-tab", "history": "history-tab"}  # where the pane inside has the tab's name
TAB_SCROLLS = {"overview": "#overview-grid", "prompt": "#prompt-replies", "document": "#doc-text"}
LISTED_FROM_81 = frozenset({"faster", "slower", "refresh_now"})  # in the footer from 81 columns
KEY_NAMES = {"plus,equals_sign": "+ =", "minus": "-", "f1,question_mark": "F1 ?", "pagedown": "PgDn", "escape": "esc"}
SCROLLS = frozenset({"page_down", "page_up", "scroll_down", "scroll_up", "scroll_home", "scroll_end"})
TAB_FIRST_FIELD = {"prompt": "#prompt-text", "document": "#doc-path", "search": "#search-text",
                   "fleet": "#fleet-table", "requests": "#requests-table"}


RATE = Binding.Group("Rate", compact=True)
# Where the help says each of these keys works: their own bindings are listed (k / s / u were left out).
HELP_PLACES: tuple[tuple[str, type[Widget]], ...] = (
    ("Alerts (tab to it)", AlertsPane), ("Prompt", PromptBox), ("Document", DocumentForm),
    ("History", HistoryPane), ("Fleet", FleetPane), ("Requests", RequestsPane))


class CoreStarted(Message):
    """The core finished `start()`; polling may begin."""


class CoreFailed(Message):
    """The core could not start; the console shows why and stays up to be read."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class MedopsApp(Polling, App[int]):
    """Full-screen console over a core: a live `ResourceCore`, or anything else that keeps `CoreCommands`."""

    TITLE = "medops"
    CSS_PATH: ClassVar[list[str | PurePath]] = ["app.tcss", "panes/layout.tcss", "panes/history.tcss",
                                                "forms/forms.tcss", "help.tcss"]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("space", "pause_display", "Pause", key_display="spc"),
        Binding("space", "resume_display", "Resume", key_display="spc"),
        Binding("i", "toggle_intake", "Intake"),
        # At 80 columns the footer cannot hold every key: the rate keys and r work there unlisted
        # (an `unlisted(...)` twin is live instead), so that l and ctrl+p fit; the help lists all.
        Binding("plus,equals_sign", "faster", "Faster", key_display="+", group=RATE),
        Binding("plus,equals_sign", "unlisted('faster')", "Faster", show=False),
        Binding("minus", "slower", "Slower", key_display="-", group=RATE),
        Binding("minus", "unlisted('slower')", "Slower", show=False),
        Binding("r", "refresh_now", "Now"),
        Binding("r", "unlisted('refresh_now')", "Now", show=False),
        Binding("t", "next_theme", "Theme"),
        Binding("w", "graph_window", "Span"),  # listed on the Graphs tab, whose span it sets
        Binding("w", "unlisted('graph_window')", "Span", show=False),
        Binding("l", "limits", "Limits"),
        Binding("f1,question_mark", "help", "Help", key_display="F1"),
        # The tab's own scrolling, whatever has the focus (a form field keeps its keys): the footer
        # says so from 81 columns, the Overview's first pane at any width.
        Binding("pagedown", "scroll_listed('page_down')", "Scroll", key_display="PgUp/Dn"),
        Binding("pagedown", "scroll_tab('page_down')", "Scroll", show=False),
        Binding("pageup", "scroll_tab('page_up')", "Scroll up", show=False),
        Binding("down", "scroll_tab('scroll_down')", "Scroll down", show=False),
        Binding("up", "scroll_tab('scroll_up')", "Scroll up", show=False),
        Binding("home", "scroll_tab('scroll_home')", "Top", show=False),
        Binding("end", "scroll_tab('scroll_end')", "Bottom", show=False),
        # priority: taken as the key arrives, before the keys after it reach the field (escape and 4 at once)
        Binding("escape", "leave_field", "Leave field", key_display="esc", priority=True),
        # one footer entry for the seven ("1-7 Tabs"): it fits 80 columns where "1234567 Tabs" did not
        *(Binding(str(n), f"show_tab('{tab}')", "Tabs" if n == 1 else f"{tab.title()} tab",
                  key_display=f"1-{len(TABS)}",
                  show=n == 1) for n, tab in enumerate(TABS, start=1)),
    ]
    # The footer's words are short to fit 80 columns; the help screen says more.
    HELP_TEXT: ClassVar[dict[str, str]] = {
        "quit": "quit (the core stops first)",
        "pause_display": "pause / resume the display (the core keeps running)",
        "toggle_intake": "pause / resume the core's intake of new work",
        "faster": "refresh faster",
        "slower": "refresh slower",
        "refresh_now": "refresh now, even paused; History: the newest rows",
        "next_theme": "next medops theme",
        "graph_window": "graph span: 1m to 1h; 6h, 24h, 7d from the ledger",
        "limits": "change a limit of the running core, see past changes",
        "help": "this help",
        "leave_field": "leave a form field, so single keys work again",
        "scroll_listed": "scroll the tab (↑ ↓ PgUp PgDn Home End too)",
    }

    def _fatal_error(self) -> None:
        """An unhandled exception ends the app with a report of where, never what (see `crash_report`)."""
        self.bell()
        self._exit_renderables.append(Text(crash_report(sys.exc_info()[1] or self._exception)))
        self._close_messages_no_wait()

    def __init__(self, settings: Settings, locations: Locations, theme: str | None = None, *,
                 core: CoreCommands | None = None, themes_folder: Path | None = None, read_only: bool = False,
                 fleet_reader: FleetReader | None = None, fleet_issuer: FleetIssuer | None = None) -> None:
        # NO_COLOR: Textual then strips every colour to the terminal's own only when it draws in ANSI
        # colours; otherwise it turns them grey, and its ANSI themes' "default" into black on black.
        super().__init__(driver_class=paste_safe_driver(),  # a paste is text: it never presses keys
                         ansi_color=True if NO_COLOR_ENV in os.environ else None)
        self.settings = settings
        self.locations = locations
        # Without a core given, it is imported and built after the first frame (it is heavy).
        self.handle = CoreHandle(core, read_only=read_only)
        self.intake_paths = IntakePaths(self.handle)
        self.refresh_interval = settings.refresh_interval
        self.read_only = read_only  # --read-only: watch only; every action is refused, saying so
        # The Fleet tab reads the store (the fleet's members), not this console's core.
        self.fleet_reader = fleet_reader if fleet_reader is not None else store_reader(settings)
        self.fleet_issuer = fleet_issuer if fleet_issuer is not None else store_issuer(settings)
        self.display_paused = False
        self.latest: CoreSnapshot | None = None
        self.snapshots_applied = 0  # how many snapshots reached the panes (tests read it)
        self._overview_regions: tuple[Region, ...] = ()  # where the Overview's panes were when last repainted
        self.core_started = False
        # A tick only asks; one fetch at a time, the ticks during it folded into one more (see Poller).
        self.snapshots: Poller[CoreSnapshot] = Poller(
            self, self._take_snapshot, group="refresh", arrived=self._apply_fetched, failed=self._snapshot_failed,
            wanted=lambda: not self.display_paused and self.core_started)
        # One reading of the fleet feeds the Fleet tab and the Overview's fleet line alike: never one read apart.
        self.fleet: Poller[FleetView] = Poller(self, self._read_fleet, group="fleet", arrived=self._fleet_read,
                                               failed=self._fleet_failed, wanted=lambda: self.fleet_reader is not None)
        self._snapshot_error: str | None = None
        self._stopped = False
        self.leaving = Leaving(self, self.stop_core)
        loaded = load_themes(themes_folder if themes_folder is not None else themes_dir())
        for loaded_theme in loaded.themes:
            self.register_theme(loaded_theme)
        self.medops_themes = loaded.names()
        # --theme, else a theme set in the config, else the one t chose last time, else the default
        requested = theme or (settings.theme if settings.theme != DEFAULT_THEME else None) \
            or remembered_theme(locations.config_dir) or settings.theme
        chosen, warning = choose_theme(requested, tuple(self.available_themes), from_files=loaded.names(),
                                       no_color=self.no_color)
        self.theme_warnings = [*loaded.warnings, *([warning] if warning else [])]
        self.theme = chosen

    # ---- layout -------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield StatusLine()
        with TabbedContent(initial="overview", id="tabs"):
            with TabPane("Overview", id="overview"), VerticalScroll(id="overview-grid"):
                yield VitalsPane()
                yield QuotaPane()
                yield PoolsPane()
                yield SlotsPane()
                yield AlertsPane(self.handle)
            with TabPane("Graphs", id="graphs-tab"):
                yield GraphsPane(self.handle, ring_seconds=self.settings.history_seconds)
            with TabPane("Prompt", id="prompt"):
                yield PromptForm(self.handle, self.settings.models, self.settings.default_model)
            with TabPane("Document", id="document"), Vertical():
                yield DocumentForm(self.handle, self.intake_paths)
                yield DocumentsPane()
            with TabPane("Search", id="search"):
                yield SearchForm(self.handle)
            with TabPane("History", id="history-tab"):
                yield HistoryPane(self.handle, tuple(self.settings.models), fleet=store_history(self.settings),
                                  interval=self.refresh_interval)
            with TabPane("Fleet", id="fleet"):
                yield FleetPane(self.fleet_reader, self.refresh_interval)
            with TabPane("Requests", id="requests"):
                yield RequestsPane(self.handle)
        yield Footer()

    @property
    def core(self) -> CoreCommands | None:
        """The core, once built (right after the first frame unless one was given)."""
        return self.handle.core

    @property
    def main(self) -> Screen[Any]:
        """The screen holding the panes, whatever modal (help, palette) is on top."""
        return self.screen_stack[0]

    def on_resize(self, event: events.Resize) -> None:
        self._fit_layout(event.size.width)
        # Laying the screen out again holds the loop the core shares (a second, seen): the console's
        # work, not the core stalling, so the loop-lag alert leaves it out.
        core = self.handle.ready()
        if core is not None:
            core.excuse_loop_lag(RESIZE_EXCUSE)

    def _fit_layout(self, width: int) -> None:
        """`.narrow` under 81 columns (an 80x24 SSH session), `.wide` from 140."""
        self.set_class(width < NARROW_BELOW, "narrow")
        self.set_class(width >= WIDE_FROM, "wide")
        for footer in self.main.query(Footer):
            footer.compact = width < NARROW_BELOW
        self.refresh_bindings()  # the rate keys and r show in the footer only where they fit
        if self.screen_stack:
            self._show_status()  # its parts are joined tighter where they do not fit

    # ---- lifecycle ----------------------------------------------------------------

    def on_mount(self) -> None:
        self._fit_layout(self.size.width)
        for warning in self.theme_warnings:
            self.notify(warning, title="theme", severity="warning", timeout=10)
        self.leaving.watch()
        if self.fleet_reader is not None:
            self.fleet.every(self.refresh_interval, self._fleet_shown)
        self._show_status()
        self.call_after_refresh(self._start_core)

    @work(exclusive=True, exit_on_error=False, group="core")
    async def _start_core(self) -> None:
        """Build the core (its imports on a thread) and start it on Textual's loop."""
        try:
            if self.handle.core is None:
                module = await asyncio.to_thread(importlib.import_module, "medops.core.resource_core")
                # shares_cases: `medops extract --case` adds documents to this console's case memory
                self.handle.core = module.ResourceCore(self.settings, self.locations, shares_cases=True, role="console")
                self.call_later(self._intake_known)  # its folders, before it has finished starting
            await self.handle.core.start()
        except Exception as exc:  # shown in the console, which stays up to be read
            self.post_message(CoreFailed(describe_error(exc)))
        else:
            self.post_message(CoreStarted())

    @property
    def closing(self) -> bool:
        """Exiting, or its screens already gone: a message that lands now (the core started late) has no panes."""
        return bool(self._exit) or not self.screen_stack

    @on(CoreStarted)
    def _core_started(self) -> None:
        self.core_started = self.handle.started = True
        if self.closing:  # seen under load: the core finished starting after the app had shut down
            return
        self._intake_known()
        self.snapshots.every(self.refresh_interval)
        self.ask_for_snapshot()
        if self._fleet_shown():
            self.fleet.ask()

    def _intake_known(self) -> None:
        """Show the core's intake folders and candidates in the document form."""
        if self.closing:
            return
        self.main.query_one(DocumentForm).set_intake(self.intake_paths)

    @on(CoreFailed)
    def _core_failed(self, message: CoreFailed) -> None:
        self.notify(f"The core did not start: {message.reason}", title="core", severity="error", timeout=30,
                    markup=False)
        if self.closing:
            return
        self.main.query_one(StatusLine).update(f"[reverse $error] core failed [/] {figures.text(message.reason)}")

    async def on_unmount(self) -> None:
        await self.stop_core()

    async def stop_core(self) -> None:
        """Stop the core once, giving it STOP_TIMEOUT seconds."""
        if self._stopped:
            return
        self._stopped = True
        self.leaving.unwatch()
        self.handle.started = False
        if self.core is None:
            return
        try:
            await asyncio.wait_for(self.core.stop(), STOP_TIMEOUT)
        except TimeoutError:
            self.log.error("core did not stop within the timeout")

    # ---- the refresh loop ---------------------------------------------------------

    def ask_for_snapshot(self) -> None:
        """Timer callback: only asks (a tick during a fetch becomes one follow-up fetch)."""
        self.snapshots.ask()

    def showing_tab(self) -> str | None:
        """The id of the tab shown, or None while the panes are not (yet, or any more) there: a tick can come
        as the app closes (seen: the console stopped on a NoMatches at exit)."""
        if not self.screen_stack:
            return None
        tabs = self.main.query("#tabs").results(TabbedContent)
        tab = next(tabs, None)
        return str(tab.active) if tab is not None else None

    def _fleet_shown(self) -> bool:
        """Whether a tick reads the fleet: while the Fleet tab, or the live Overview with its fleet line, is shown
        (an open member view reads its member itself), or the Requests tab of a fleet member (whose requests the
        store puts off say whose go first)."""
        tab = self.showing_tab()
        if tab is None or isinstance(self.screen, MemberScreen):
            return False
        store = self.latest.quota.store if self.latest is not None else None
        member = store is not None and not store.attached
        return tab == "fleet" or (not self.display_paused and (tab == "overview" or (tab == "requests" and member)))

    async def _read_fleet(self) -> FleetView:
        assert self.fleet_reader is not None
        return await self.fleet_reader()

    def _fleet_read(self, view: FleetView) -> None:
        if self.closing:
            return
        try:
            pane, vitals = self.main.query_one(FleetPane), self.main.query_one(VitalsPane)
            requests = self.main.query_one(RequestsPane)
        except NoMatches:  # a reading that lands while the app is still composing or already closing
            return
        with self.batch_update():
            pane.show(view)
            vitals.show_fleet(fleet_line(view))
            requests.show_fleet(view)

    def _fleet_failed(self, reason: str) -> None:
        if not self.closing:
            self.main.query_one(FleetPane).failed(reason)
            # said in the line; the Fleet tab (7) says why
            self.main.query_one(VitalsPane).show_fleet("fleet: [reverse] store unreadable [/] (the Fleet tab, 7, "
                                                       "says why)")

    async def _take_snapshot(self) -> CoreSnapshot:
        assert self.core is not None  # polling starts only once the core has started
        return self.core.snapshot()

    def _apply_fetched(self, snapshot: CoreSnapshot) -> None:
        self._snapshot_error = None
        self.apply_snapshot(snapshot)

    def _snapshot_failed(self, reason: str) -> None:
        if reason != self._snapshot_error:  # a part failing every tick says so once
            self._snapshot_error = reason
            self.notify(f"No snapshot: {reason}", title="core", severity="error", timeout=15, markup=False)

    def apply_snapshot(self, snapshot: CoreSnapshot) -> None:
        """Hand one snapshot to every pane in one batch; hidden panes only keep it."""
        if self.closing:
            return  # shutting down: the panes may already be gone
        self.latest = snapshot
        self.snapshots_applied += 1
        with self.batch_update():
            for pane in self.main.query(SnapshotPane):
                pane.apply(snapshot)
            self.main.query_one(GraphsPane).apply(snapshot)
            self.main.query_one(HistoryPane).apply(snapshot)
            self.main.query_one(RequestsPane).apply(snapshot)
            form = self.main.query_one(PromptForm)
            form.intake_paused = snapshot.paused
            form.store_unreached = snapshot.quota.store is not None and snapshot.quota.store.never_reached
            self._show_status()
        self.call_after_refresh(self._repaint_overview_if_moved)

    def _repaint_overview_if_moved(self) -> None:
        """Repaint the whole Overview once its panes have moved or changed size.

        Textual repaints a pane where it now is, but when the snapshot changes the panes' heights (the first one
        does, from "waiting…" to the figures) it can miss cells a pane left: at 160x48 a row of the Pools pane's
        side borders stayed under it (#28). Repainting the grid draws every cell no pane holds as background."""
        if self.closing:
            return
        grid = self.main.query_one("#overview-grid")
        regions = tuple(child.region for child in grid.children)
        if regions != self._overview_regions:
            self._overview_regions = regions
            grid.refresh()

    def _show_status(self) -> None:
        state = ConsoleState(self.refresh_interval, self.display_paused, self.theme,
                             width=self.size.width - STATUS_PADDING)
        self.main.query_one(StatusLine).show(self.latest, state)

    @on(TabbedContent.TabActivated)
    def _tab_shown(self) -> None:
        if self.closing:  # a tab event delivered as the app closes
            return
        self.refresh_bindings()  # w (and the scroll keys) are listed for some tabs only
        if self._fleet_shown():
            self.fleet.ask()  # at once, not at the next tick: the Fleet tab's rows, the Overview's fleet line
        if str(self.main.query_one("#tabs", TabbedContent).active) == "fleet":
            pane = self.main.query_one(FleetPane)
            if self.focused is None or pane not in self.focused.ancestors:
                # shown by a click on its tab (the tabs took the focus): its keys (s / p P enter) work at once
                self.set_focus(self.main.query_one("#fleet-table", Widget))

    @on(DocumentRefused)
    def _document_refused(self, message: DocumentRefused) -> None:
        self.main.query_one(DocumentsPane).refused(message.typed, message.reason)

    @on(ExtractionStarted)
    def _document_started(self, message: ExtractionStarted) -> None:
        self.main.query_one(DocumentsPane).started(message.name)

    # ---- pastes -------------------------------------------------------------------

    @on(PasteHadControls)
    def _paste_had_controls(self, message: PasteHadControls) -> None:
        self.notify(message.explanation(), title="paste", severity="warning", timeout=10)

    def on_paste(self, event: events.Paste) -> None:
        """A paste no text box took (the focus was on a button, a table…): say so, never act on it."""
        if event.text:
            self.notify("The paste went nowhere: no text box has the focus. Click or tab into one, then paste"
                        " again.", title="paste", severity="warning", timeout=10)

    # ---- actions ------------------------------------------------------------------

    def action_toggle_display(self) -> None:
        """Freeze or unfreeze the display; the core keeps running either way."""
        self.display_paused = not self.display_paused
        self.refresh_bindings()
        self._show_status()
        if not self.display_paused:
            self.ask_for_snapshot()

    def action_pause_display(self) -> None:
        self.action_toggle_display()

    def action_resume_display(self) -> None:
        self.action_toggle_display()

    def refused_read_only(self, what: str) -> bool:
        """With --read-only, refuse `what` saying so (True); otherwise False and the caller goes on."""
        if not self.read_only:
            return False
        self.notify(f"Read-only console (--read-only): {what} refused, nothing was sent. Start medops without "
                    "--read-only to act.", title="read-only", severity="warning", timeout=8)
        return True

    def action_toggle_intake(self) -> None:
        """Pause or resume the core's intake of new work."""
        if self.refused_read_only("pausing or resuming intake"):
            return
        if self.core is None or not self.core_started:
            self.notify("The core is still starting; try again in a moment.", title="intake")
            return
        paused = self.latest.paused if self.latest is not None else False
        if paused:
            self.core.resume_intake()
        else:
            self.core.pause_intake()
        if self.core.attached:  # handed on to every member through the store; their answers follow
            self.notify(f"Sent: {'resume' if paused else 'pause'} intake on every member; waiting for the answers…",
                        title="fleet", timeout=4)
            return
        self.notify("Intake resumed." if paused else "Intake paused: new work waits; work in flight finishes.",
                    title="intake")
        self.action_refresh_now()

    def action_refresh_now(self) -> None:
        """Fetch a snapshot now, even while the display is paused."""
        paused, self.display_paused = self.display_paused, False
        self.ask_for_snapshot()
        self.display_paused = paused
        history = self.main.query_one(HistoryPane)
        if history.is_on_screen:
            history.reload()

    def set_refresh_interval(self, seconds: float) -> None:
        self.refresh_interval = seconds
        self.main.query_one(FleetPane).set_interval_seconds(seconds)
        self.main.query_one(HistoryPane).set_interval_seconds(seconds)
        if self.core_started:
            self.snapshots.every(seconds)
        if self.fleet_reader is not None:
            self.fleet.every(seconds, self._fleet_shown)
        self._show_status()

    def refresh_steps(self) -> list[float]:
        """The refresh intervals +/- step through, the configured one included."""
        return sorted({*REFRESH_STEPS, self.settings.refresh_interval})

    def action_faster(self) -> None:
        shorter = [s for s in self.refresh_steps() if s < self.refresh_interval]
        if shorter:
            self.set_refresh_interval(shorter[-1])

    def action_slower(self) -> None:
        longer = [s for s in self.refresh_steps() if s > self.refresh_interval]
        if longer:
            self.set_refresh_interval(longer[0])

    def action_next_theme(self) -> None:
        names = list(self.medops_themes) or list(self.available_themes)
        following = names[(names.index(self.theme) + 1) % len(names)] if self.theme in names else names[0]
        self.use_theme(following)

    def use_theme(self, name: str) -> None:
        """Switch to theme `name`, say which it is, and remember it for the next start."""
        self.theme = name
        self._show_status()
        problem = remember_theme(self.locations.config_dir, name)
        self.notify(f"Theme {name} (t: the next one)." + (f" {problem}" if problem else
                                                            " medops starts with it next time."),
                    title="theme", severity="warning" if problem else "information", timeout=4)

    def action_graph_window(self) -> None:
        self.main.query_one(GraphsPane).cycle_window()

    def set_graph_window(self, seconds: float) -> None:
        """Show the graphs over the last `seconds` (the palette's way; w steps through the spans)."""
        self.main.query_one(GraphsPane).set_window(seconds)

    def action_show_tab(self, tab: str) -> None:
        pane_id = TAB_PANE_IDS.get(tab, tab)
        if self.screen is not self.main:
            self.pop_screen()  # a tab key from the help screen goes to that tab
        if tab in TAB_FIRST_FIELD:
            focus: Widget | None = self.main.query_one(TAB_FIRST_FIELD[tab], Widget)
        elif tab in TAB_SCROLLS:
            focus = self.main.query_one(TAB_SCROLLS[tab], Widget)  # so ↑↓ scroll it at once
        else:
            focus = None
        # Move the focus first: a focused widget left in the tab being hidden (History's table) pulls
        # its tab back to the front, which made 1 and 2 do nothing there.
        self.set_focus(focus)
        self.main.query_one("#tabs", TabbedContent).active = pane_id

    def action_scroll_tab(self, how: str) -> None:
        """Scroll the shown tab's main view (the Overview's panes, the prompt's replies…) by keys."""
        tabs = self.main.query_one("#tabs", TabbedContent)
        target = TAB_SCROLLS.get(str(tabs.active))
        if how in SCROLLS and target is not None:
            getattr(self.main.query_one(target, Widget), f"action_{how}")()

    def action_scroll_listed(self, how: str) -> None:
        self.action_scroll_tab(how)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """`esc` shows in the footer only while a form field has the focus."""
        if action == "leave_field":
            forms = (PromptForm, DocumentForm, SearchForm)
            return self.focused is not None and any(isinstance(node, forms) for node in self.focused.ancestors)
        # one of the two space bindings is live at a time, so the footer says what space will do
        if action == "pause_display":
            return not self.display_paused
        if action == "resume_display":
            return self.display_paused
        narrow = self.size.width < NARROW_BELOW
        tab = str(self.main.query_one("#tabs", TabbedContent).active)
        if action == "graph_window":
            return tab == TAB_PANE_IDS["graphs"]
        if action in LISTED_FROM_81:
            return not narrow
        if action == "unlisted":
            wanted = str(parameters[0]) if parameters else ""
            listed = self.check_action(wanted, ()) if wanted in LISTED_FROM_81 or wanted == "graph_window" else True
            return not listed
        if action in ("scroll_tab", "scroll_listed"):
            tabs = self.main.query_one("#tabs", TabbedContent)
            return str(tabs.active) in TAB_SCROLLS and (action == "scroll_tab" or self.size.width >= NARROW_BELOW)
        return True

    def action_leave_field(self) -> None:
        """Escape leaves a form field so the single-key bindings work again."""
        self.set_focus(None)

    def action_limits(self) -> None:
        """Open the Limits form over the current screen."""
        if isinstance(self.screen, LimitsScreen) or self.refused_read_only("changing a limit"):
            return
        recent = self.latest.limit_changes if self.latest is not None else ()
        # Attached, this console has no core of its own: every change goes to the whole fleet, no choice to offer.
        fleet = None if self.core is not None and self.core.attached else store_limit_setter(self.settings)
        self.push_screen(LimitsScreen(self.handle, self.settings, recent, self._limit_applied, fleet=fleet))

    async def action_unlisted(self, action: str) -> None:
        """A key at work where the footer does not list it (see BINDINGS); straight to the action,
        since `run_action` would ask `check_action`, which hides the listed one here."""
        outcome = getattr(self, f"action_{action}")()
        if inspect.isawaitable(outcome):
            await outcome

    def _limit_applied(self, settings: Settings, key: str) -> None:
        """Keep the console's copy of the settings current; the refresh interval is the console's own."""
        self.settings = settings
        if key == "refresh_interval":
            self.set_refresh_interval(settings.refresh_interval)
        self.action_refresh_now()

    def act_on_alert(self, how: str, alert: str) -> None:
        """Acknowledge an open alert, or silence it for SILENCE_FOR (the palette's and the Alerts pane's way)."""
        if self.refused_read_only(f"{'silencing' if how == 'silence' else 'acknowledging'} an alert"):
            return
        core = self.handle.ready()
        if core is None:
            self.notify(STARTING, title="alerts", severity="warning")
            return
        try:
            if how == "silence":
                core.silence_alert(alert, SILENCE_FOR)
            else:
                core.acknowledge_alert(alert)
        except MedopsError as exc:  # attached to the fleet: the alerts are the members' own
            self.notify(describe_error(exc), title="alerts", severity="warning", timeout=10, markup=False)
            return
        self.action_refresh_now()

    @on(FleetAct)
    def _fleet_act(self, message: FleetAct) -> None:
        self.fleet_act(message.op, message.target)

    def fleet_act(self, op: str, target: str) -> None:
        """Pause or resume intake on a fleet member (or "*", every one) through the store; answers notified."""
        what = f"{op} intake on {'every member' if target == '*' else target}"
        if self.refused_read_only(what):
            return
        if self.fleet_issuer is None:
            self.notify(f"Cannot {what}: {NO_STORE}.", title="fleet", severity="warning")
            return
        self.notify(f"Sent: {what}; waiting for the answers…", title="fleet", timeout=4)
        self._send_fleet_command(op, target, what)

    @work(exit_on_error=False, group="fleet-act")
    async def _send_fleet_command(self, op: str, target: str, what: str) -> None:
        assert self.fleet_issuer is not None
        try:
            _, acks = await self.fleet_issuer(op, target)
        except Exception as exc:  # the store away: say so, the console stays up
            self.notify(f"Could not {what}: {describe_error(exc)}", title="fleet", severity="error", timeout=15,
                        markup=False)
            return
        self.fleet_answered(what, acks)

    def fleet_answered(self, what: str, acks: Sequence[Acknowledgement]) -> None:
        """Say which members applied a fleet command, which refused and why, which did not answer."""
        applied = all(ack.status == "applied" for ack in acks) and bool(acks)
        # Members' names and reasons come from the store: shown as text, never markup.
        self.notify(answers_text(what, acks), title="fleet", severity="information" if applied else "warning",
                    timeout=15, markup=False)
        if not self.closing:
            self.fleet.ask()
            self.action_refresh_now()

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.pop_screen()
            return
        self.push_screen(HelpScreen(self.key_list()))

    def key_list(self) -> list[tuple[str, str]]:
        """(keys, what they do) for every binding, the app's then each pane's and form's, once per action,
        for the help screen: built from the bindings, so a key added to a pane is listed with it."""
        rows: list[tuple[str, str]] = []
        seen: set[str] = set()
        for binding in self.BINDINGS:
            if not isinstance(binding, Binding) or not binding.show:
                continue
            action = binding.action.split("(")[0]
            if action.startswith("show_tab"):
                continue  # one row for the six below
            if binding.key in seen:
                continue  # space pauses and resumes: one row
            seen.add(binding.key)
            keys = KEY_NAMES.get(binding.key, binding.key)
            rows.append((keys, self.HELP_TEXT.get(action, binding.description)))
        rows.append((f"1-{len(TABS)}", "tabs: " + ", ".join(tab.title() for tab in TABS)))
        for where, owner in HELP_PLACES:
            for binding in owner.BINDINGS:
                if isinstance(binding, Binding):
                    keys = binding.key_display or KEY_NAMES.get(binding.key, binding.key)
                    rows.append((keys, f"{where}: {binding.description}"))
        rows.append(("enter", "Fleet: the member's own overview, read-only (esc: back)"))
        rows.append(("ctrl+p", "command palette"))
        rows.append(("ctrl+q", "quit from anywhere, a form field included"))
        return rows

    # ---- command palette ----------------------------------------------------------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        # Textual's own "Theme" picker offers its themes (nord, gruvbox, …) and remembers none: medops' own
        # "Theme: NAME" entries (and t) switch among medops' themes and keep the choice for the next start.
        yield from (command for command in super().get_system_commands(screen)
                    if command.callback != self.action_change_theme)
        yield from medops_commands(self, TABS)
