"""The machine's recent readings (GPUs, host, each live run's processes), for the system view's charts.

The app takes a reading on a timer, off the event loop, one in flight at a time, and `apply`s it here;
screens draw from what is kept.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from workbench.engine.system_monitor import LiveRun, ProcessReading, SystemReading

KEEP = 120  # readings: four minutes at one every two seconds
BARS = "▁▂▃▄▅▆▇█"


@dataclass
class SystemHistory:
    readings: deque[SystemReading] = field(default_factory=lambda: deque(maxlen=KEEP))
    runs: list[LiveRun] = field(default_factory=list)
    version: int = 0

    def apply(self, reading: SystemReading, runs: list[LiveRun]) -> None:
        self.readings.append(reading)
        self.runs = runs
        self.version += 1

    @property
    def latest(self) -> SystemReading | None:
        return self.readings[-1] if self.readings else None

    def live_run(self, name: str) -> LiveRun | None:
        return next((run for run in self.runs if run.name == name), None)

    def usage(self, name: str) -> ProcessReading | None:
        """The latest share of the machine that run `name`'s processes hold."""
        run, latest = self.live_run(name), self.latest
        return latest.usage(run.pids) if run and latest else None

    def gpu_series(self, index: int, what: str = "utilization") -> list[float]:
        """A GPU's utilisation (%) or memory used (bytes) over the kept readings."""
        return [
            float(getattr(gpu, what) or 0)
            for reading in self.readings
            for gpu in reading.gpus
            if gpu.index == index
        ]

    def cpu_series(self) -> list[float]:
        return [reading.cpu_percent for reading in self.readings]

    def run_series(self, name: str, what: str) -> list[float]:
        """Run `name`'s cpu_percent, rss or gpu_memory over the readings it was alive in."""
        run = self.live_run(name)
        if run is None:
            return []
        usages = (reading.usage(run.pids) for reading in self.readings)
        return [float(getattr(u, what) or 0) for u in usages if u is not None]


def sparkline(values: list[float], width: int = 20, top: float | None = None) -> str:
    """The last `width` values as bars from ▁ to █, scaled to `top` (default: their maximum)."""
    values = values[-width:]
    if not values:
        return ""
    top = top or max(values) or 1.0
    return "".join(BARS[min(len(BARS) - 1, max(0, round(v / top * (len(BARS) - 1))))] for v in values)
