"""Limits form (l, or "Change a limit" in the palette): pick a setting with completion, type a
value, and see it applied at once or the core's reason for refusing it. A value set for a knob the
auto-tuner sizes pins it; the value `auto` hands it back to the tuner. With a fleet store the form
also offers the whole fleet: the change goes to every member through the store (`medops fleet set
KEY VALUE --all` does the same: the value is kept in the store for members that join later) and each
member's answer is shown: applied, refused and why, no answer, gone. Below, the history of changes across
runs (console/forms/limit_history.py), refreshed after each change."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any, ClassVar

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label, RadioButton, RadioSet

from medops.console.error_text import describe_error
from medops.console.fleet_access import FleetLimitSetter
from medops.console.forms.capture import CapturingInput
from medops.console.forms.core_handle import STARTING, CoreHandle
from medops.console.forms.limit_history import LimitHistoryView
from medops.console.panes.fleet import answers_text
from medops.core.settings.config import Settings, show_value
from medops.core.settings.live_changes import LIVE, RESTART_ONLY, TUNED_KNOBS, setting_help
from medops.core.snapshot import LimitChange

# Live keys first, so completion offers what can change now before what needs a restart.
KEYS = (*sorted(LIVE), *sorted(RESTART_ONLY))
AUTO = "auto"  # the value that hands a pinned knob back to the tuner



class ScopeButton(RadioButton):
    """A radio button whose state shows in its shape (● chosen, ○ not): under NO_COLOR both drew ● alike."""

    ON, OFF = "\u25cf", "\u25cb"

    def __init__(self, label: str, value: bool = False, *, id: str | None = None) -> None:
        super().__init__(label, value, id=id)
        self.BUTTON_INNER = self.ON if value else self.OFF

    def watch_value(self) -> None:
        self.BUTTON_INNER = self.ON if self.value else self.OFF
        super().watch_value()

class MovesOnInput(CapturingInput):
    """An input whose Enter moves on to the next field, with what was typed after it: keys reach a widget
    through its own queue, so those typed right after Enter (a fast typist, a paste) are already queued here
    when the focus moves; they are handed on in order instead of landing in this field."""

    def __init__(self, next_field: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.next_field = next_field
        self._moved_on = False

    def _next(self) -> Input:
        return self.screen.query_one(self.next_field, Input)

    async def action_submit(self) -> None:
        await super().action_submit()
        self._moved_on = True
        self.screen.set_focus(self._next())

    async def _on_key(self, event: events.Key) -> None:
        if self._moved_on:  # until the focus comes back here (its Focus event queues behind these keys)
            event.stop()
            event.prevent_default()
            self._next().post_message(events.Key(event.key, event.character))
            return
        if event.key == "enter":  # here, in this field's queue: a binding would run after the keys behind it
            event.stop()
            event.prevent_default()
            await self.action_submit()
            return
        # anything else: CapturingInput's and Input's own handlers run next

    def _on_focus(self, event: events.Focus) -> None:
        self._moved_on = False
        super()._on_focus(event)


class LimitsScreen(ModalScreen[None]):
    """Change one limit of the running core and see the history of changes; escape closes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Close"),
        Binding("pageup", "scroll_history(-1)", "History back", show=False),
        Binding("pagedown", "scroll_history(1)", "History on", show=False),
    ]

    def __init__(self, core: CoreHandle, settings: Settings, recent: tuple[LimitChange, ...],
                 on_applied: Callable[[Settings, str], None], fleet: FleetLimitSetter | None = None) -> None:
        """`fleet`: with a store, how to set a limit on every member (the form then offers it)."""
        super().__init__()
        self.core = core
        self.fleet = fleet
        self.fleet_answers = 0  # fleet changes answered (tests wait on it)
        self.settings = settings
        self.recent = recent
        self.on_applied = on_applied
        self.pinned = pinned_knobs(core)
        self.in_force = knobs_in_force(core)

    def compose(self) -> ComposeResult:
        with Vertical(id="limits-body"):
            yield Label("[b $primary]Change a limit[/]  → completes · enter goes on / applies · esc closes")
            if self.fleet is not None:
                with RadioSet(id="limit-scope"):
                    yield ScopeButton("this console", value=True, id="scope-console")
                    yield ScopeButton("the whole fleet (every member)", id="scope-fleet")
            yield MovesOnInput("#limit-value", placeholder="setting, e.g. io_threads", id="limit-key",
                               suggester=SuggestFromList(KEYS, case_sensitive=False))
            yield Label("", id="limit-about", markup=False)
            yield CapturingInput(placeholder="new value (auto: hand a pinned knob back to the tuner)", id="limit-value")
            yield Label("", id="limit-result", markup=False)
            yield Label("", id="limit-error", classes="form-error", markup=False)
            yield LimitHistoryView(self.core, self.recent)

    def on_mount(self) -> None:
        self.query_one("#limit-key", Input).focus()
        if self.core.attached():  # said before anything is typed: there is no console core to change
            self.query_one("#limit-result", Label).update(
                "Attached to the fleet: a change goes to every member, through the store; each answers. It is "
                "kept for members that join later.")

    @on(Input.Changed, "#limit-key")
    def key_changed(self, event: Input.Changed) -> None:
        key = event.value.strip()
        if key in TUNED_KNOBS:  # the tuner may have resized it since the form opened
            self.in_force = knobs_in_force(self.core)
        self.query_one("#limit-about", Label).update(about(key, self.settings, self.pinned, self.in_force))

    @on(Input.Submitted, "#limit-value")
    def apply(self) -> None:
        """Ask the core to change the limit; show the outcome either way."""
        key = self.query_one("#limit-key", Input).value.strip()
        value = self.query_one("#limit-value", Input).value.strip()
        result, error = self.query_one("#limit-result", Label), self.query_one("#limit-error", Label)
        result.update("")
        if not key or not value:
            error.update("Type a setting (→ completes it) and its new value.")
            return
        if self.whole_fleet:
            self.send_to_fleet(key, value)
            return
        if value.lower() == AUTO:
            self.hand_back(key)
            return
        core = self.core.ready()
        if core is None:
            error.update(STARTING)
            return
        old = show_value(getattr(self.settings, key)) if hasattr(self.settings, key) else "?"
        try:
            changed = core.set_limit(key, value)
        except Exception as exc:  # the core's message says what is allowed, or that a restart is needed
            error.update(describe_error(exc))
            return
        error.update("")
        self.settings = changed
        applied = "sent to every fleet member; their answers follow" if core.attached else "applied now"
        result.update(f"{key}: {old} → {show_value(getattr(changed, key))} ({applied})")
        self.on_applied(changed, key)
        self.show_core_state(key)

    @on(RadioSet.Changed, "#limit-scope")
    def scope_changed(self) -> None:
        """Say in words where the next change goes (the radio buttons differ by colour only)."""
        self.query_one("#limit-result", Label).update(
            "The next change goes to every member of the fleet, through the store; each answers. It is kept for "
            "members that join later." if self.whole_fleet
            else "The next change applies to this console's core only.")

    @property
    def whole_fleet(self) -> bool:
        """True when the operator chose the whole fleet (only offered with a store)."""
        return self.fleet is not None and self.query_one("#scope-fleet", RadioButton).value

    def send_to_fleet(self, key: str, value: str) -> None:
        """Send the change to every member through the store; the answers follow (`_fleet_answered`)."""
        assert self.fleet is not None
        self.query_one("#limit-error", Label).update("")
        self.query_one("#limit-result", Label).update(f"set {key} = {value} on every member: sent, waiting for "
                                                      "their answers…")
        self._send(self.fleet, key, value)

    @work(exclusive=True, exit_on_error=False, group="fleet-limit")
    async def _send(self, fleet: FleetLimitSetter, key: str, value: str) -> None:
        what = f"set {key} = {value} on every member"
        try:
            _, acks = await fleet(key, value, "*")
        except Exception as exc:  # the store away: said in the form, which stays open
            self.query_one("#limit-result", Label).update("")
            self.query_one("#limit-error", Label).update(f"Could not {what}: {describe_error(exc)}")
        else:
            self.query_one("#limit-result", Label).update(answers_text(what, acks))
            self._own_core_followed(key)
        self.fleet_answers += 1

    def _own_core_followed(self, key: str) -> None:
        """This console's core may be a member too: take its settings if the change reached it, and refresh."""
        core = self.core.ready()
        if core is not None and hasattr(self.settings, key) \
                and getattr(core.settings, key) != getattr(self.settings, key):
            self.settings = core.settings
            self.on_applied(self.settings, key)
        self.show_core_state(key)

    def hand_back(self, key: str) -> None:
        """Ask the core to give a pinned knob back to the auto-tuner."""
        result, error = self.query_one("#limit-result", Label), self.query_one("#limit-error", Label)
        core = self.core.ready()
        if core is None:
            error.update(STARTING)
            return
        try:
            was_pinned = core.unpin(key)
        except Exception as exc:  # the core says which keys the tuner sizes
            error.update(describe_error(exc))
            return
        error.update("")
        result.update(f"{key}: handed back to the auto-tuner" if was_pinned
                      else f"{key} was not pinned: the auto-tuner already sizes it")
        self.show_core_state(key)

    def show_core_state(self, key: str) -> None:
        """Refresh the key's line (pinned or not) and the history from the core."""
        self.pinned = pinned_knobs(self.core)
        self.in_force = knobs_in_force(self.core)
        self.query_one("#limit-about", Label).update(about(key, self.settings, self.pinned, self.in_force))
        self.query_one(LimitHistoryView).reload()

    def action_scroll_history(self, pages: int) -> None:
        """Page up/down scroll the history while a field keeps the focus."""
        self.query_one(LimitHistoryView).scroll_history(pages)


def about(key: str, settings: Settings, pinned: tuple[str, ...] = (), in_force: Mapping[str, str] | None = None) -> str:
    """What the key means, its range, its current value, whether it can change now, and who sizes it.

    `in_force`: the tuner's knobs' values in force (`knobs_in_force`); where one differs from the configured
    value, both are said ("now 2 (tuner; configured 8)"): the configured one alone read as what runs."""
    names = [f.name for f in fields(Settings)]
    if key not in names:
        if not key:
            return ""
        starting = [name for name in names if name.startswith(key)]
        if starting:  # still being typed: say what it may become, not that it is wrong
            shown = ", ".join(starting[:4]) + (f" and {len(starting) - 4} more" if len(starting) > 4 else "")
            return f"→ completes; {len(starting)} setting{'s' if len(starting) != 1 else ''} start so: {shown}"
        return f"no setting starts with {key!r}; medops config show lists them all"
    current = show_value(getattr(settings, key)) if key != "models" else "per-model table"
    running = (in_force or {}).get(key)
    if running is not None and running != current:
        current = f"{running} ({'pinned' if key in pinned else 'tuner'}; configured {current})"
    when = "changes now" if key in LIVE else "restart needed (config file or MEDOPS_" + key.upper() + ")"
    return f"{setting_help(key)}; now {current}; {when}{tuner_state(key, pinned)}"


def tuner_state(key: str, pinned: tuple[str, ...]) -> str:
    """For a knob the auto-tuner sizes: pinned by the operator, or the tuner's."""
    if key not in TUNED_KNOBS:
        return ""
    if key in pinned:
        return "; PINNED: the auto-tuner leaves it alone (value auto hands it back)"
    return "; sized by the auto-tuner (a value set here pins it)"


def pinned_knobs(handle: CoreHandle) -> tuple[str, ...]:
    """The knobs the operator pinned, from the core's snapshot (none until the core has started)."""
    core = handle.ready()
    return core.snapshot().tuner.pinned if core is not None else ()


def knobs_in_force(handle: CoreHandle) -> dict[str, str]:
    """The sizes the tuner's knobs run at now (the I/O pool's, the query cache's), from this console's core.

    None under --attach: the fleet's pools are summed over its members, no one value in force."""
    core = handle.ready()
    if core is None or core.attached:
        return {}
    snapshot = core.snapshot()
    found = {pool.name: pool.capacity for pool in snapshot.pools}
    sizes = {"io_threads": found.get("io", 0), "query_cache_size": snapshot.cache.capacity}
    return {knob: show_value(size) for knob, size in sizes.items() if size}
