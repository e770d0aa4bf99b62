"""`SnapshotPane`: the base of every pane that draws a section of the snapshot."""

from __future__ import annotations

from typing import Any

from textual.widgets import Static

from medops.core.snapshot import CoreSnapshot


class SnapshotPane(Static):
    """Keeps the latest snapshot; redraws only when visible and its section changed."""

    DEFAULT_CLASSES = "pane"

    def __init__(self, title: str, *, id: str | None = None) -> None:
        super().__init__("[dim]waiting for the first snapshot…[/]", id=id)
        self.border_title = title
        self._latest: CoreSnapshot | None = None
        self._drawn_key: Any = object()
        self._drawn_width = -1
        self.redraws = 0  # tests and the bench read how often a pane really redrew

    def section(self, snapshot: CoreSnapshot) -> Any:
        """The part of the snapshot this pane draws; an unchanged section is not redrawn."""
        return snapshot

    def draw(self, snapshot: CoreSnapshot) -> str:
        """The pane's content as Textual markup."""
        raise NotImplementedError

    @property
    def inner_width(self) -> int:
        """Usable columns inside the border and padding (a guess before the first layout)."""
        width = self.content_region.width
        return width if width > 0 else 76

    def apply(self, snapshot: CoreSnapshot) -> None:
        """Take a new snapshot; draw it now only if this pane is on screen."""
        self._latest = snapshot
        if self.is_on_screen:
            self._draw_latest()

    def on_show(self) -> None:
        self._draw_latest()

    def on_resize(self) -> None:
        self._draw_latest()

    def _draw_latest(self) -> None:
        if self._latest is None:
            return
        key = self.section(self._latest)
        width = self.inner_width
        if key == self._drawn_key and width == self._drawn_width:
            return
        self._drawn_key, self._drawn_width = key, width
        self.redraws += 1
        self.update(self.draw(self._latest))


def attached(snapshot: CoreSnapshot) -> bool:
    """Whether the snapshot is a view attached to the fleet (`medops --attach`): no parts of its own here."""
    store = snapshot.quota.store
    return store is not None and store.attached


EACH_MEMBER = "[dim]each member's own: attached to the fleet, no core here (Fleet tab, 7: per member)[/]"
