"""The prompt box: multi-line, Enter (or ctrl+s) sends exactly what it held at that keypress.

Sending, the newline keys and recall are handled with the keys, in the box's own order,
never in a binding that runs once the key has reached the app: by then a fast typist's
next keys are in the box. A paste stays text: its lines stay lines, and any other
control character is shown as a symbol rather than acting.
"""

from __future__ import annotations

import collections
from typing import Any, ClassVar

from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import TextArea

from medops.console.forms.pasted import PasteHadControls, clean_paste
from medops.console.keys_in_order import run_own_binding

SEND_KEYS = frozenset({"enter", "ctrl+s"})
# A newline without sending: ctrl+j is what a terminal sends for it everywhere; the others where it can tell.
NEWLINE_KEYS = frozenset({"ctrl+j", "alt+enter", "shift+enter"})
RECALLED = 20  # prompts ↑/↓ bring back (this console's memory only: never written anywhere)


class PromptBox(TextArea):
    """Multi-line prompt text; Enter or ctrl+s sends, ctrl+j starts a new line, ctrl+l clears, ↑/↓ on the edge lines
    recall."""

    BINDINGS: ClassVar[list[BindingType]] = [
        # Shown in the footer; the keys themselves are handled in `_on_key`, in order with the typing.
        Binding("ctrl+s", "send", "Send", key_display="⏎/^s"),
        Binding("ctrl+j", "newline", "New line", key_display="^j"),
        Binding("ctrl+l", "clear", "Clear", key_display="^l"),  # Textual's own way was F7 then delete, unsaid
    ]

    class Submitted(Message):
        """The text the box held when Enter (or ctrl+s, or Send) was pressed."""

        def __init__(self, box: PromptBox, text: str) -> None:
            super().__init__()
            self.box = box
            self.text = text

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, soft_wrap=True, tab_behavior="focus", **kwargs)
        self._sent: collections.deque[str] = collections.deque(maxlen=RECALLED)  # newest last
        self._recalling = 0  # how far back ↑ has gone (0: not recalling)
        self._draft = ""  # what was in the box when ↑ was first pressed

    async def _on_key(self, event: events.Key) -> None:
        key = event.key
        if key in SEND_KEYS:
            self._handled(event)
            self.send()
        elif key in NEWLINE_KEYS:
            self._handled(event)
            self.replace("\n", *self.selection)
        elif key == "up" and self.cursor_location[0] == 0:
            self._handled(event)
            self.recall(1)
        elif key == "down" and self.cursor_location[0] == self.document.line_count - 1 and self._recalling:
            self._handled(event)
            self.recall(-1)
        elif not event.is_printable:
            await run_own_binding(self, event)  # Backspace, the arrows, …: now, before the next key is read
        # anything else: TextArea's own handler runs next

    @staticmethod
    def _handled(event: events.Key) -> None:
        event.stop()
        event.prevent_default()

    def send(self) -> str:
        """Take the text now, empty the box, and post it; returns the text taken."""
        text = self.text
        if text.strip():
            self.text = ""
            self._remember(text.strip())
        self.post_message(self.Submitted(self, text))
        return text

    def action_send(self) -> None:
        self.send()

    def action_newline(self) -> None:
        self.replace("\n", *self.selection)

    def action_clear(self) -> None:
        """Empty the box; nothing is sent or remembered (undo brings it back)."""
        self.replace("", self.document.start, self.document.end)
        self._recalling = 0

    def put_back(self, text: str) -> bool:
        """Put a refused prompt back, unless something has been typed since; says whether it did."""
        if self.text:
            return False
        self.text = text
        self.move_cursor(self.document.end)
        return True

    def recall(self, step: int) -> None:
        """↑ brings earlier prompts, ↓ later ones, then what was being typed before ↑."""
        if self._recalling and self.text != self._sent[-self._recalling]:
            self._recalling = 0  # edited since it was recalled: that is the draft now
        if self._recalling == 0:
            self._draft = self.text
        position = max(0, min(len(self._sent), self._recalling + step))
        if self._recalling == 0 and position == 1 and len(self._sent) > 1 and self._sent[-1] == self._draft:
            position = 2  # the box already holds the latest (a refused prompt put back): go one further
        self._recalling = position
        self.text = self._sent[-position] if position else self._draft
        self.move_cursor(self.document.end)

    def _remember(self, text: str) -> None:
        if not self._sent or self._sent[-1] != text:
            self._sent.append(text)
        self._recalling = 0
        self._draft = ""

    async def _on_paste(self, event: events.Paste) -> None:
        event.stop()
        event.prevent_default()
        if self.read_only:
            return
        cleaned = clean_paste(event.text, keep="\n\t")
        if result := self.replace(cleaned.text, *self.selection):
            self.move_cursor(result.end_location)
        if cleaned.shown:
            self.post_message(PasteHadControls(cleaned.shown))
