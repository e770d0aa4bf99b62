"""Keys bound to a text field act in order with the typing around them.

Textual inserts a typed character as soon as the field reads its key, but runs a bound
key (Backspace, Delete, the arrows, Home, ctrl+w, …) only once the key has bubbled up to
the app. When Backspace and the next key arrive in one read, as over SSH or from a
lagging link, the next key is in the field before Backspace acts: "abcde" then Backspace
and X gave "abcde" (X typed, then deleted), and in the Limits form a refused 99999
cleared with five Backspaces and retyped as 1 became 9. Here the field runs its own
binding for a key when it reads that key, before it reads the next.
"""

from __future__ import annotations

from textual import events
from textual.widget import Widget
from textual.widgets import Input


async def run_own_binding(widget: Widget, event: events.Key) -> bool:
    """Run `widget`'s own (non-priority) binding for `event` now; says whether one ran (the key is then spent).

    Priority bindings ran before the key reached the widget; a key the widget does not bind bubbles on as before.
    """
    for binding in widget._bindings.key_to_bindings.get(event.key, ()):
        if binding.priority:
            continue
        if await widget.app.run_action(binding.action, widget):
            event.stop()
            event.prevent_default()
            return True
    return False


class OrderedInput(Input):
    """An `Input` whose bound keys (Backspace, the arrows, …) act in order with the characters typed around them."""

    async def _on_key(self, event: events.Key) -> None:
        # Textual calls each class's `_on_key` down the MRO until one prevents the default: Input's runs next.
        if not event.is_printable:
            await run_own_binding(self, event)
