"""CPU and memory graphs over a chosen span, drawn with textual-plotext.

Spans up to an hour come from the monitor's in-memory ring in each snapshot and are
redrawn with every new sample. Longer ones (6h, 24h, 7d) come from the ledger: a
worker asks the core's `metric_history`, which boils them down in SQL on the ledger's
thread, and the answer is kept and read again at most every REFETCH_EVERY seconds
while the tab is shown, so a long graph costs one small read and one redraw per half
minute, and a hidden one nothing. Plotext loads on first show, so the console's first
frame does not wait for it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from medops.console import figures
from medops.console.forms.core_handle import STARTING, CoreHandle
from medops.console.poller import Poller, Polling
from medops.core.snapshot import CoreSnapshot

if TYPE_CHECKING:
    from textual_plotext import PlotextPlot

    from medops.core.ledger.metric_history import MetricHistory

HOUR, DAY = 3_600.0, 86_400.0
# Spans the `w` key cycles through, in seconds.
WINDOWS = (60.0, 300.0, 900.0, HOUR, 6 * HOUR, DAY, 7 * DAY)
# Longer spans come from the ledger even when the ring holds them: redrawing hours of one-second
# samples every second costs more than the graph is worth.
RING_AT_MOST = HOUR
REFETCH_EVERY = 30.0  # seconds of core time before a ledger span is read again
LEDGER_POINTS = 400  # enough for a 160-column braille plot (two dots a column); SQL does the boiling down
SMALL_BELOW = 6  # rows of data a plot needs: fewer, and 4% is drawn on a row labelled 16.7
PLOT_FRAME = 5  # a plot's rows that are not data: title, two borders, ticks, axis label
SPARK = "▁▂▃▄▅▆▇█"
GAP_BUCKETS = 2.5  # points further apart than this many buckets are not joined: medops was not running between


class GraphsPane(Polling, Vertical):
    """CPU and memory as shares of the machine (or cgroup limits) over the span."""

    DEFAULT_CLASSES = "pane"

    def __init__(self, core: CoreHandle, *, ring_seconds: float = HOUR, id: str | None = "graphs") -> None:
        super().__init__(id=id)
        self.core = core
        self.ring_span = min(ring_seconds, RING_AT_MOST)  # spans up to this come from the snapshot's ring
        self.window = WINDOWS[1]
        self._latest: CoreSnapshot | None = None
        self._answers: dict[float, MetricHistory | str] = {}  # the latest answer per ledger span, or why none
        self._asked_at: dict[float, float] = {}  # core wall time each ledger span was last asked for
        self._in_flight: float | None = None  # the span being read; one read at a time
        self._ledger: Poller[MetricHistory] = Poller(self, self._read, group="graphs", arrived=self._fetched,
                                                     failed=self._failed)
        self._drawn: Any = None
        self._summary = ""
        self._plots: tuple[PlotextPlot, PlotextPlot] | None = None
        self.redraws = 0
        self.fetches = 0  # answers (or failures) that arrived; tests wait on it
        self._update_title()

    def compose(self) -> ComposeResult:
        yield Static("[dim]graphs load when shown…[/]", id="graphs-summary")

    def from_ledger(self, span: float) -> bool:
        """Whether this span is read from the ledger rather than the in-memory ring."""
        return span > self.ring_span

    def cycle_window(self) -> float:
        """Move to the next span; returns it in seconds."""
        self.set_window(WINDOWS[(WINDOWS.index(self.window) + 1) % len(WINDOWS)] if self.window in WINDOWS
                        else WINDOWS[0])
        return self.window

    def set_window(self, seconds: float) -> None:
        self.window = seconds
        self._update_title()
        self._fetch_if_due()
        self._draw()

    def apply(self, snapshot: CoreSnapshot) -> None:
        self._latest = snapshot
        if self.is_on_screen:
            self._fetch_if_due()
            self._draw()

    def on_show(self) -> None:
        if self._plots is None:
            from textual_plotext import PlotextPlot

            cpu, memory = PlotextPlot(id="cpu-plot"), PlotextPlot(id="memory-plot")
            self._plots = (cpu, memory)
            self.mount(cpu, memory)
        self._fetch_if_due()
        self._draw()

    def _update_title(self) -> None:
        source = "the ledger" if self.from_ledger(self.window) else "memory"
        self.border_title = f"CPU & memory, last {span_label(self.window)} from {source} (w: span)"

    # ---- reading the ledger ---------------------------------------------------------

    def _fetch_if_due(self) -> None:
        """Ask for the shown ledger span unless it was asked for less than REFETCH_EVERY ago (or a read is on)."""
        span, snapshot = self.window, self._latest
        if not self.from_ledger(span) or snapshot is None or self._in_flight is not None or not self.is_on_screen:
            return
        asked = self._asked_at.get(span)
        if asked is not None and 0 <= snapshot.taken_at - asked < REFETCH_EVERY:
            return
        self._asked_at[span] = snapshot.taken_at
        core = self.core.ready()
        if core is None:
            self._answers[span] = STARTING
            return
        self._in_flight = span
        self._ledger.ask()

    async def _read(self) -> MetricHistory:
        core, span = self.core.ready(), self._in_flight
        assert core is not None and span is not None  # asked only with both (`_fetch_if_due`)
        return await core.metric_history(span, LEDGER_POINTS)

    def _fetched(self, history: MetricHistory) -> None:
        assert self._in_flight is not None
        self._answered(self._in_flight, history)

    def _failed(self, reason: str) -> None:
        # shown in the pane; the console stays usable
        assert self._in_flight is not None
        self._answered(self._in_flight, f"reading it failed: {reason}")

    def _answered(self, span: float, answer: MetricHistory | str) -> None:
        self._in_flight = None
        self.fetches += 1
        self._answers[span] = answer
        self._fetch_if_due()  # the span shown may have changed meanwhile
        self._draw()

    # ---- drawing --------------------------------------------------------------------

    def _draw(self) -> None:
        snapshot = self._latest
        if snapshot is None or self._plots is None:
            return
        system = snapshot.system
        summary = (f"cpu [b]{system.cpu_percent:.0f}%[/] ({figures.text(system.cpu_source)})"
                   f"  medops {system.process_cpu:.0f}% of a core  rss {figures.size(system.rss_bytes)}"
                   f"  memory [b]{system.memory_percent:.0f}%[/] of {figures.size(system.memory_limit)}"
                   f" ({figures.text(system.memory_source)})  threads {system.threads}  fds {system.open_files}")
        answer = self._answers.get(self.window) if self.from_ledger(self.window) else None
        if self.from_ledger(self.window):
            summary += "\n" + self._source_line(answer)
        elif snapshot.quota.store is not None and snapshot.quota.store.attached:
            summary += ("\n[dim]attached to the fleet: no core here to sample; each member's CPU and memory are on "
                        "the Fleet tab (7)[/]")
        elif not system.cpu_history and not system.memory_history:
            summary += "\n[dim]no history yet: the monitor part is not running[/]"
        small = self._too_small(summary)
        for plot in self._plots:
            plot.display = not small
        if small:  # rows too few for an honest scale: the figures instead of a graph
            ledger = answer if answer is not None and not isinstance(answer, str) and answer.earlier_runs else None
            if ledger is not None:
                cpu_readings = [Reading(p.at_wall, p.cpu_lowest, p.cpu_percent, p.cpu_last) for p in ledger.points]
                memory_readings = [Reading(p.at_wall, p.memory_lowest, p.memory_percent, p.memory_last)
                                   for p in ledger.points]
                now = ledger.end_wall
            else:
                cpu_readings = [Reading(at, v, v, v) for at, v in system.cpu_history
                                if snapshot.taken_at - at <= self.window]
                memory_readings = [Reading(at, v, v, v) for at, v in system.memory_history
                                   if snapshot.taken_at - at <= self.window]
                now = snapshot.taken_at
            span = span_label(self.window)
            width = self.content_region.width
            summary += ("\n" + figures_line("CPU", cpu_readings, span, width, now)
                        + "\n" + figures_line("memory", memory_readings, span, width, now)
                        + f"\n[dim]graphs need {2 * (SMALL_BELOW + PLOT_FRAME)} lines here to be readable;"
                        " a taller terminal shows them[/]")
        if summary != self._summary:
            self._summary = summary
            self.query_one("#graphs-summary", Static).update(summary)
        if small:
            return
        cpu, memory = self._plots
        # ANSI themes (contrast, NO_COLOR) draw in the terminal's own colours; plotext's "auto" would
        # turn their "default" into black
        plot_theme: Literal["clear", "auto"] = "clear" if self.app.native_ansi_color else "auto"
        for plot in self._plots:
            if plot.theme != plot_theme:
                plot.theme = plot_theme
        if answer is not None and not isinstance(answer, str) and answer.earlier_runs:
            # a ledger span changes only when a new answer comes, not with each sample
            key: Any = (self.window, answer)
            if key != self._drawn:
                self._drawn = key
                self.redraws += 1
                _plot_ledger(cpu, "CPU % (machine or cgroup quota)", answer, "cpu_percent", self.window)
                _plot_ledger(memory, "memory %", answer, "memory_percent", self.window)
            return
        # a new sample, not a new tick, is what changes the graphs (and comparing whole histories costs)
        key = (system.sampled_at, len(system.cpu_history), len(system.memory_history), self.window,
               system.cpu_history[-1:], system.memory_history[-1:])
        if key == self._drawn:
            return
        self._drawn = key
        self.redraws += 1
        titles = ("CPU % (machine or cgroup quota)", "memory %")
        if self.from_ledger(self.window):  # no points from the ledger: the ring's are drawn, and say so
            source = f"this run's last {span_label(self.ring_span)}, from memory"
            titles = (f"CPU % ({source})", f"memory % ({source})")
        _plot(cpu, titles[0], system.cpu_history, snapshot.taken_at, self.window)
        _plot(memory, titles[1], system.memory_history, snapshot.taken_at, self.window)

    def _too_small(self, summary: str) -> bool:
        """Whether each plot would get fewer than SMALL_BELOW rows of data (its scale would then mislead)."""
        height = self.content_region.height
        if height <= 0:
            return False  # not laid out yet
        summary_lines = summary.count("\n") + 1 + 7  # the figures lines replace the plots when small
        return (height - summary_lines) // 2 - PLOT_FRAME < SMALL_BELOW

    def _source_line(self, answer: MetricHistory | str | None) -> str:
        """Where a ledger span's points come from, or why there are none (the ring's are drawn instead)."""
        span = span_label(self.window)
        if answer is None:
            return f"[dim]reading the last {span} from the ledger…[/]"
        if isinstance(answer, str) or not answer.earlier_runs:
            why = answer if isinstance(answer, str) else answer.note
            if self.app.has_class("narrow"):
                why = why.split("; ")[0]  # what happened; the rest (what follows, what to do) fits from 81 columns
            return f"[$warning]No {span} graph:[/] {figures.text(why)}"
        if not answer.points:
            line = (f"[dim]ledger: no samples in the last {span} (medops was not running then, or the ledger "
                    f"is new)[/]")
        else:
            points = len(answer.points)
            line = (f"[dim]ledger: {points} point{'s' if points != 1 else ''}, each the highest of "
                    f"{span_label(answer.bucket_seconds)} · {figures.count(answer.samples)} samples · "
                    f"read every {REFETCH_EVERY:g}s[/]")
        return line + (f"\n[$warning]{figures.text(answer.note)}[/]" if answer.note else "")


class Reading(NamedTuple):
    """What a point of a graph stands for: its time, its lowest, highest and latest sample (one sample: all three)."""

    at: float
    lowest: float
    highest: float
    latest: float


def figures_line(name: str, readings: list[Reading], span: str, width: int, now: float) -> str:
    """`CPU latest 5% · min 3% · max 96% of every sample, last 7d`, then a one-line trend of the highs scaled
    0–100% over a time axis, in place of a graph. Latest is the latest sample's value, min and max the lowest and
    highest sample of the span (not of the bucket highs the graph draws)."""
    readings = [r for r in readings if not (math.isnan(r.lowest) or math.isnan(r.highest) or math.isnan(r.latest))]
    if not readings:
        return f"{name}: [dim]no samples in the last {span}[/]"
    head = (f"{name} latest [b]{readings[-1].latest:.0f}%[/] · min {min(r.lowest for r in readings):.0f}%"
            f" · max {max(r.highest for r in readings):.0f}% of every sample, last {span}")
    room = width - len(" 0–100%")
    if room < 8:
        return head
    highs = [(r.at, r.highest) for r in readings]
    trend = peaks(highs, max(1.0, highs[-1][0] - highs[0][0]), room)[-room:]
    cells = "".join(SPARK[min(len(SPARK) - 1, max(0, int(v / 100 * len(SPARK))))] for _, v in trend)
    axis = time_axis(now - readings[0].at, now - readings[-1].at, len(cells))
    return f"{head}\n{cells} [dim]0–100%[/]\n[dim]{axis}[/]"


def time_axis(oldest_age: float, newest_age: float, width: int) -> str:
    """`5h ago ─── now` under a `width`-cell trend: how long ago its first and its last cell are."""
    left, right = f"{ago(oldest_age)} ago", "now" if newest_age < 60 else f"{ago(newest_age)} ago"
    if width < len(left) + len(right) + 2:
        return f"{left} → {right}"
    return f"{left} {'─' * (width - len(left) - len(right) - 2)} {right}"


def ago(seconds: float) -> str:
    """A past age, coarse: 40s, 12m, 5h, 6d."""
    seconds = max(0.0, seconds)
    for unit, size in (("d", DAY), ("h", HOUR), ("m", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def span_label(seconds: float) -> str:
    """A span as the `w` key names it: 15s, 5m, 1h, 24h, 7d."""
    whole = round(seconds)
    if whole >= 2 * DAY and whole % DAY == 0:
        return f"{whole // round(DAY)}d"
    if whole >= HOUR and whole % HOUR == 0:
        return f"{whole // round(HOUR)}h"
    if whole >= 60 and whole % 60 == 0:
        return f"{whole // 60}m"
    return f"{seconds:g}s"


def whole_ticks(span_in_units: float) -> list[float]:
    """Whole-unit x ticks back from 0 (every 1, 2, 3, 6 or 12 units), at most 8 of them."""
    step = next((step for step in (1, 2, 3, 6, 12) if span_in_units / step <= 7), 24)
    return [float(-step * n) for n in range(int(span_in_units // step) + 1)][::-1]


def axis_unit(span: float) -> tuple[float, str]:
    """Seconds per x unit and the x label: seconds up to an hour, then hours, then days."""
    if span <= HOUR:
        return 1.0, "seconds ago"
    if span <= DAY:
        return HOUR, "hours ago"
    return DAY, "days ago"


def _plot(widget: PlotextPlot, title: str, history: tuple[tuple[float, float], ...], now: float,
          window: float) -> None:
    """Points inside the window, x before now, at most LEDGER_POINTS of them."""
    inside = peaks([(at, value) for at, value in history if now - at <= window], window, LEDGER_POINTS)
    _draw_line(widget, title, [(at - now, value) for at, value in inside], window)


def peaks(points: list[tuple[float, float]], window: float, most: int) -> list[tuple[float, float]]:
    """At most `most` of (time, value) points: the highest of each time slice, so a spike stays visible.

    The 1h ring holds 3,600 samples; a 160-column braille plot shows ~320 across, and drawing
    every sample each second cost ~5% of a core. Slices are aligned to multiples of their width,
    like the ledger's buckets, so a point does not move between slices as time passes.
    """
    if len(points) <= most:
        return points
    width = window / (most - 1)  # an aligned window cuts at most `most` slices, partial ones at both ends
    best: dict[int, tuple[float, float]] = {}
    for at, value in points:
        slot = math.floor(at / width)
        if slot not in best or value > best[slot][1]:
            best[slot] = (at, value)
    return [best[slot] for slot in sorted(best)]


def _plot_ledger(widget: PlotextPlot, title: str, history: MetricHistory, field: str, window: float) -> None:
    """The ledger's points, x before the time it was read, broken where samples are missing."""
    points: list[tuple[float, float]] = []
    gap = GAP_BUCKETS * history.bucket_seconds
    for point in history.points:
        x = point.at_wall - history.end_wall
        if points and x - points[-1][0] > gap:
            points.append(((x + points[-1][0]) / 2, math.nan))  # plotext leaves a NaN's neighbours unjoined
        points.append((x, getattr(point, field)))
    _draw_line(widget, title, points, window)


def _draw_line(widget: PlotextPlot, title: str, points: list[tuple[float, float]], window: float) -> None:
    unit, label = axis_unit(window)
    plt = widget.plt
    plt.clear_data()
    plt.clear_figure()
    plt.title(title)
    plt.xlim(-window / unit, 0)
    if unit > 1:  # hours or days: whole ones, not plotext's -4.5
        plt.xticks(whole_ticks(window / unit))
    plt.ylim(0, 100)
    if points:
        line_colour = "default" if widget.theme == "clear" else None  # an ANSI theme: the terminal's own
        plt.plot([x / unit for x, _ in points], [y for _, y in points], marker="braille", color=line_colour)
    plt.xlabel(label)
    widget.refresh()
