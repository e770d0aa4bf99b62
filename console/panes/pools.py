"""Pool saturation pane: every worker pool, the query cache and event-loop lag."""

from __future__ import annotations

from typing import Any

from medops.console import figures
from medops.console.panes.pane import EACH_MEMBER, SnapshotPane, attached
from medops.core.snapshot import CacheSnapshot, CoreSnapshot, KnowledgeSnapshot, PoolSnapshot

# The pools the contracts promise, in the order an on-call engineer reads them.
EXPECTED_POOLS = ("duckdb", "cpu", "io", "process", "http")
FULL_TABLE_WIDTH = 66  # narrower panes drop p50, errors and timeouts


class PoolsPane(SnapshotPane):
    """Active against capacity per pool, queue and wait times, errors and timeouts."""

    def __init__(self, *, id: str | None = "pools") -> None:
        super().__init__("Pools & loop", id=id)

    def section(self, snapshot: CoreSnapshot) -> Any:
        system = snapshot.system
        return (snapshot.pools, snapshot.cache, snapshot.knowledge,
                round(system.loop_lag_p50_ms), round(system.loop_lag_ms), round(system.loop_lag_max_ms))

    def draw(self, snapshot: CoreSnapshot) -> str:
        full = self.inner_width >= FULL_TABLE_WIDTH
        bar_width = max(6, self.inner_width - (52 if full else 33))
        heading = f"{'pool':<8} {'use':<{bar_width}} {'act/cap':>8} {'queued':>6}"
        heading += f" {'wait p50/p95':>14} {'err':>4} {'t/o':>4}" if full else f" {'wait p95':>8}"
        lines = [heading]
        by_name = {pool.name: pool for pool in snapshot.pools}
        names = [*EXPECTED_POOLS, *sorted(set(by_name) - set(EXPECTED_POOLS))]
        for name in names:
            pool = by_name.get(name)
            lines.append(pool_line(pool, bar_width, full) if pool else f"{name:<8} [dim]not running yet[/]")
        if attached(snapshot):  # the pools above are the members' summed; the rest is each member's own
            lines.append(f"cache, knowledge base, event loop: {EACH_MEMBER}")
            return "\n".join(lines)
        lines.append(cache_line(snapshot.cache))
        lines.append(knowledge_line(snapshot.knowledge))
        system = snapshot.system
        lag_style = figures.level(system.loop_lag_ms / 100.0)
        # whole milliseconds: finer jitter would redraw the pane on every sample
        lines.append(f"event-loop lag p50 {system.loop_lag_p50_ms:.0f} · [{lag_style}]p99 {system.loop_lag_ms:.0f}[/]"
                     f" · max {system.loop_lag_max_ms:.0f} ms")
        return "\n".join(lines)


def pool_line(pool: PoolSnapshot, bar_width: int, full: bool = True) -> str:
    """One pool: a bar of active over capacity, then queue, waits and failures."""
    used = f"{pool.active}/{pool.capacity}"
    bar = figures.bar(pool.active, pool.capacity, bar_width)
    line = f"{figures.text(pool.name):<8} {bar} {used:>8} {pool.queued:>6}"
    if not full:
        return f"{line} {figures.millis(pool.wait_p95):>8}"
    waits = f"{figures.millis(pool.wait_p50)}/{figures.millis(pool.wait_p95)}"
    return f"{line} {waits:>14} {pool.errors:>4} {pool.timeouts:>4}"


def cache_line(cache: CacheSnapshot) -> str:
    if cache.capacity == 0 and cache.hits + cache.misses == 0:
        return f"cache {figures.text(cache.name)}: [dim]not running yet[/]"
    return (f"cache {figures.text(cache.name)}: hit [b]{figures.percent(cache.hit_rate)}[/]"
            f" ({figures.count(cache.hits)}/{figures.count(cache.hits + cache.misses)})"
            f" size {figures.count(cache.size)}/{figures.count(cache.capacity)}"
            f" evicted {figures.count(cache.evictions)}")


def knowledge_line(knowledge: KnowledgeSnapshot) -> str:
    """The knowledge base's state; a build shows its stage and progress."""
    if knowledge.state == "building":
        return (f"knowledge: building {figures.text(knowledge.stage)}"
                f" {figures.percent(knowledge.progress)}")
    if knowledge.state == "ready":
        return f"knowledge: ready, {figures.count(knowledge.codes)} codes"
    if knowledge.state == "failed":
        return f"knowledge: [$error]failed[/] {figures.text(knowledge.detail)}"
    return "knowledge: [dim]not running yet[/]"
