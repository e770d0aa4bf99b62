"""Help screen (F1 or ?): every key, what the panes show, how to leave."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

# One line per paragraph: the screen wraps it to its width (hard breaks made it wrap twice at 80 columns).
ABOUT = """\
[b]Panes[/]  Overview: vital signs of every part first (quota of each active model, queue, in flight, CPU, \
memory, case slots, pools, open alerts), then the Groq quota per model (rpm/rpd/tpm/tpd used of limit, reset, \
the server's last remaining figures, 429s), pool saturation (duckdb, cpu, io, process, http; cache hit rate; \
event-loop lag), case memory slots and agent contexts, alerts newest first. Graphs: CPU and memory over a span \
(w); 6h, 24h and 7d come from the ledger, each point the highest of its bucket, read again every 30 s. Prompt, \
Document, Search: forms that act on the core.

[b]Pausing[/]  space freezes the display only; i pauses the core's intake (work in flight finishes).
[b]Limits[/]  l: type a setting (tab or → completes it), then its value; it is checked like the config file \
and applied at once, or refused saying why (keys sized at start need a restart).
[b]Prompt[/]  enter or ctrl+s sends exactly what the box holds, ctrl+j starts a new line, ctrl+l clears the box, a \
paste keeps its lines; answers stream into their card; a refused prompt goes back in the box; ↑/↓ on the box's \
first or last line recall earlier prompts (kept in this console's memory only).
[b]Document[/]  enter extracts; paths given while one runs wait their turn; ctrl+g (or Cancel) cancels the \
running one.
[b]History[/]  6: Groq requests (figures and ids, never prompt text) and alerts across runs, newest first; o \
loads older rows into the focused table (tab moves between them), m / a filter by model / agent, r reads the \
newest again. With the ledger off (another medops holds it) it shows this run's only and why.
[b]Fleet[/]  7: every member of the fleet's store (store_url), read at the refresh rate while shown; stale and \
gone members are marked "!", not hidden; the organisation's windows below with each member's part. \
`medops --read-only` watches only: prompts, documents, intake, limits, alerts and fleet actions are refused.
[b]Requests[/]  8: every request this core holds, queued or in flight (attached: the fleet's), with why it \
waits and until when; c cancels (c again confirms), + / - raise or lower its priority within what its agent or \
key allows, s sorts, / filters. A member's requests: Fleet tab, enter on the member.
[b]Command palette[/]  ctrl+p: themes, pause, refresh rate, forms, change a limit.
"""


class HelpScreen(ModalScreen[None]):
    """Keys and panes at a glance; any of escape, q, F1 or ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,f1,question_mark", "app.pop_screen", "Close help"),
    ]

    def __init__(self, keys: list[tuple[str, str]]) -> None:
        super().__init__()
        self.keys = keys

    def compose(self) -> ComposeResult:
        width = max((len(k) for k, _ in self.keys), default=4)
        rows = "\n".join(f"  [b]{key:<{width}}[/]  {description}" for key, description in self.keys)
        body = VerticalScroll(id="help-body")
        body.border_title = "medops console — keys"
        body.border_subtitle = "esc, q, F1 or ? closes · ↑↓ scroll"
        with body:
            yield Static(f"{rows}\n\n{ABOUT}", id="help-text")
