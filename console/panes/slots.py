"""Slot usage pane: the shared case memory as a grid of slots, and the context pool."""

from __future__ import annotations

from typing import Any

from medops.console import figures
from medops.console.panes.pane import EACH_MEMBER, SnapshotPane, attached
from medops.core.snapshot import ContextPoolSnapshot, CoreSnapshot, SlotsSnapshot

GRID_ROWS = 2


class SlotsPane(SnapshotPane):
    """Case memory fill, largest case, rejections; agent contexts in use and reused."""

    def __init__(self, *, id: str | None = "slots") -> None:
        super().__init__("Case memory & contexts", id=id)

    def section(self, snapshot: CoreSnapshot) -> Any:
        return (snapshot.slots, snapshot.contexts)

    def draw(self, snapshot: CoreSnapshot) -> str:
        if attached(snapshot):
            return f"case memory and agent contexts: {EACH_MEMBER}"
        return "\n".join(slot_lines(snapshot.slots, self.inner_width) + context_lines(snapshot.contexts))


def slot_lines(slots: SlotsSnapshot, width: int) -> list[str]:
    """Fill figures, then a grid where each cell stands for a run of slots."""
    if slots.total == 0:
        return ["[dim]case memory is not running yet[/]"]
    fill = slots.used / slots.total
    lines = [f"slots [b]{slots.used}[/]/{slots.total} ({figures.percent(fill)})"
             f"  {figures.size(slots.bytes_used)} in use, {figures.size(slots.slot_bytes)} each"
             f"  largest {figures.size(slots.largest_case)}",
             *slot_grid(slots, width)]
    rejections = ", ".join(f"{figures.text(reason)} {n}" for reason, n in slots.rejections) or "none"
    lines.append(f"rejections: {rejections}  overwrites {slots.overwrites}")
    return lines


def slot_grid(slots: SlotsSnapshot, width: int) -> list[str]:
    """Cells of ■ (some slot in the run used) and · (all free), GRID_ROWS high."""
    cells = max(1, min(slots.total, max(8, width) * GRID_ROWS))
    per_cell = -(-slots.total // cells)
    cells = -(-slots.total // per_cell)
    used_cells = [0] * cells
    for slot in slots.occupied:
        if 0 <= slot < slots.total:
            used_cells[slot // per_cell] += 1
    if not slots.occupied and slots.used:
        # no per-slot list: show the count as a left-filled run
        for i in range(min(cells, -(-slots.used // per_cell))):
            used_cells[i] = per_cell
    row_width = -(-cells // GRID_ROWS)
    rows = []
    for start in range(0, cells, row_width):
        chunk = used_cells[start:start + row_width]
        rows.append("".join("[$accent]■[/]" if n else "[dim]·[/]" for n in chunk))
    legend = f"[dim]one cell = {per_cell} slot{'s' if per_cell > 1 else ''}[/]"
    return [*rows, legend]


def context_lines(contexts: ContextPoolSnapshot) -> list[str]:
    """The agent context pool: ready, busy, over the pool, reuse and leaks."""
    if contexts.pool_size == 0 and contexts.acquisitions == 0:
        return ["[dim]agent context pool is not running yet[/]"]
    leak = f" [reverse $error] {contexts.leaked} leaked [/]" if contexts.leaked else " leaked 0"
    return [f"contexts active [b]{contexts.active}[/] idle {contexts.idle} of {contexts.pool_size}"
            f"  beyond pool {contexts.created_beyond_pool}  reuse {figures.percent(contexts.reuse_ratio)}{leak}"]
