"""Figures for the tuner that a test sets by hand, in place of the monitor's."""

from __future__ import annotations

from dataclasses import replace

from medops.core.settings.config import MIB
from medops.core.snapshot import PoolSnapshot
from medops.core.watch.tuner import TunerMetrics

MIDDLING_MEMORY = 700 * MIB  # between the reference's 500 and 1000 MiB: caches left alone


class FakeMetricsSource:
    """Figures a test sets; the tuner reads them as it would the monitor's."""

    def __init__(self) -> None:
        self.figures: TunerMetrics | None = TunerMetrics(cpu_percent=30.0, memory_percent=40.0,
                                                         memory_available=MIDDLING_MEMORY,
                                                         io_pool=PoolSnapshot("io", capacity=8, queued=5))

    def set(self, **figures: object) -> None:
        assert self.figures is not None
        self.figures = replace(self.figures, **figures)

    def tuner_metrics(self) -> TunerMetrics | None:
        return self.figures

