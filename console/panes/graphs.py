"""CPU and memory graphs over a chosen window, drawn with textual-plotext.

Plotext loads on first show, so the console's first frame does not wait for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from console import figures
from core.snapshot import CoreSnapshot

if TYPE_CHECKING:
    from textual_plotext import PlotextPlot

# Windows the `w` key cycles through, in seconds.
WINDOWS = (60.0, 300.0, 900.0, 3600.0)


class GraphsPane(Vertical):
    """CPU and memory as shares of the machine (or cgroup limits) over the window."""

    DEFAULT_CLASSES = "pane"

    def __init__(self, *, id: str | None = "graphs") -> None:
        super().__init__(id=id)
        self.window = WINDOWS[1]
        self._latest: CoreSnapshot | None = None
        self._drawn: Any = None
        self._plots: tuple[PlotextPlot, PlotextPlot] | None = None
        self.redraws = 0
        self._update_title()

    def compose(self) -> ComposeResult:
        yield Static("[dim]graphs load when shown…[/]", id="graphs-summary")

    def cycle_window(self) -> float:
        """Move to the next window; returns it in seconds."""
        self.window = WINDOWS[(WINDOWS.index(self.window) + 1) % len(WINDOWS)]
        self._update_title()
        self._draw()
        return self.window

    def set_window(self, seconds: float) -> None:
        self.window = seconds
        self._update_title()
        self._draw()

    def apply(self, snapshot: CoreSnapshot) -> None:
        self._latest = snapshot
        if self.is_on_screen:
            self._draw()

    def on_show(self) -> None:
        if self._plots is None:
            from textual_plotext import PlotextPlot

            cpu, memory = PlotextPlot(id="cpu-plot"), PlotextPlot(id="memory-plot")
            self._plots = (cpu, memory)
            self.mount(cpu, memory)
        self._draw()

    def _update_title(self) -> None:
        self.border_title = f"CPU & memory, last {figures.duration(self.window)} (w: window)"

    def _draw(self) -> None:
        snapshot = self._latest
        if snapshot is None or self._plots is None:
            return
        system = snapshot.system
        # a new sample, not a new tick, is what changes the graphs (and comparing whole histories costs)
        key = (system.sampled_at, len(system.cpu_history), len(system.memory_history), self.window,
               system.cpu_history[-1:], system.memory_history[-1:])
        if key == self._drawn:
            return
        self._drawn = key
        self.redraws += 1
        summary = (f"cpu [b]{system.cpu_percent:.0f}%[/] ({figures.text(system.cpu_source)})"
                   f"  medops {system.process_cpu:.0f}% of a core  rss {figures.size(system.rss_bytes)}"
                   f"  memory [b]{system.memory_percent:.0f}%[/] of {figures.size(system.memory_limit)}"
                   f" ({figures.text(system.memory_source)})  threads {system.threads}  fds {system.open_files}")
        if not system.cpu_history and not system.memory_history:
            summary += "\n[dim]no history yet: the monitor part is not running[/]"
        self.query_one("#graphs-summary", Static).update(summary)
        cpu, memory = self._plots
        _plot(cpu, "CPU % (machine or cgroup quota)", system.cpu_history, snapshot.taken_at, self.window)
        _plot(memory, "memory %", system.memory_history, snapshot.taken_at, self.window)


def _plot(widget: PlotextPlot, title: str, history: tuple[tuple[float, float], ...], now: float,
          window: float) -> None:
    """Points inside the window, x in seconds before now."""
    points = [(at - now, value) for at, value in history if now - at <= window]
    plt = widget.plt
    plt.clear_data()
    plt.clear_figure()
    plt.title(title)
    plt.xlim(-window, 0)
    plt.ylim(0, 100)
    if points:
        plt.plot([x for x, _ in points], [y for _, y in points], marker="braille")
    plt.xlabel("seconds ago")
    widget.refresh()
