"""A one-line box whose Enter hands over exactly what it held at that keypress.

Textual runs a widget's Enter binding only once the key has bubbled up to the app; by
then a fast typist's next keys are already in the box, so the text read there is the
next prompt's, or a merge of several. Here Enter is handled with the keys, in order:
the text is taken and (optionally) the box emptied before the next key is read.

A paste keeps all its lines, each break shown as ␊: Textual's own Input kept the first line
and dropped the rest unsaid. A box made `one_per_line` (the document path: one file name
per line) says how many lines it was pasted instead of calling ␊ a control character;
its form takes each line up on its own when Enter is pressed.
"""

from __future__ import annotations

from typing import Any

from textual import events

from medops.console.forms.pasted import LINE_PICTURE, PastedLines, PasteHadControls, clean_paste
from medops.console.keys_in_order import OrderedInput


class CapturingInput(OrderedInput):
    """An `Input` whose `Submitted.value` is the text at the Enter keypress; pastes arrive as visible text."""

    def __init__(self, *args: Any, clear_on_submit: bool = False, one_per_line: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clear_on_submit = clear_on_submit
        self.one_per_line = one_per_line

    async def _on_key(self, event: events.Key) -> None:
        if event.key != "enter":
            return  # OrderedInput's and Input's own handlers run next
        event.stop()
        event.prevent_default()
        self.submit_now()

    def submit_now(self) -> str:
        """Post `Submitted` with the text held now (and empty the box if asked); returns that text."""
        value = self.value
        validation = self.validate(value) if "submitted" in self.validate_on else None
        if self.clear_on_submit:
            self.value = ""
        self.post_message(self.Submitted(self, value, validation))
        return value

    async def action_submit(self) -> None:
        self.submit_now()

    def _on_paste(self, event: events.Paste) -> None:
        # One line: every line of the paste stays, its breaks shown as ␊ (nothing silently cut off).
        event.stop()
        event.prevent_default()
        cleaned = clean_paste(event.text.rstrip("\r\n"))
        if not cleaned.text:
            return
        selection = self.selection
        if selection.is_empty:
            self.insert_text_at_cursor(cleaned.text)
        else:
            self.replace(cleaned.text, *selection)
        shown = cleaned.shown
        if self.one_per_line and LINE_PICTURE in shown:
            shown = tuple(symbol for symbol in shown if symbol != LINE_PICTURE)
            self.post_message(PastedLines(cleaned.text.count(LINE_PICTURE) + 1))
        if shown:
            self.post_message(PasteHadControls(shown))
