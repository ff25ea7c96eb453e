"""One line of the dashboard: the open run's share of the machine with small charts of its recent
history (GPU busy, GPU memory, CPU, resident memory), or the peak memory a run recorded."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from workbench.engine.system_monitor import gib

from ..run_watcher import RunHistory
from ..system_history import SystemHistory, sparkline

WIDTH = 8  # readings per chart


def strip_text(history: RunHistory | None, system: SystemHistory) -> Text:
    """Empty when there is nothing to say (no run, or a run that records no peak and trains elsewhere)."""
    text = Text()
    if history is None:
        return text
    name = history.run.name
    usage = system.usage(name) if history.live else None
    run, latest = system.live_run(name), system.latest
    if usage is not None and run is not None and latest is not None:
        for index in run.held_gpus(latest):
            busy = system.gpu_series(index)
            _cell(text, f"gpu{index}", sparkline(busy, WIDTH, top=100), f"{busy[-1]:.0f}%" if busy else "—")
        if usage.gpus:  # NVML lists the run's processes: their GPU memory is known
            memory = system.run_series(name, "gpu_memory")
            _cell(text, "gpu mem", sparkline(memory, WIDTH), gib(usage.gpu_memory))
        _cell(
            text, "cpu", sparkline(system.run_series(name, "cpu_percent"), WIDTH), f"{usage.cpu_percent:.0f}%"
        )
        _cell(text, "resident", sparkline(system.run_series(name, "rss"), WIDTH), gib(usage.rss))
    peak = next((r for r in reversed(history.train) if "peak_host_mb" in r), None)
    if peak is not None:
        cuda = f", cuda {peak['peak_cuda_mb']:,.0f} MB" if "peak_cuda_mb" in peak else ""
        _cell(text, "peak", "", f"host {peak['peak_host_mb']:,.0f} MB{cuda}")
    return text


def _cell(text: Text, label: str, chart: str, value: str) -> None:
    if text:
        text.append("  ")
    text.append(f"{label} ", style="dim")
    if chart:
        text.append(chart + " ", style="green")
    text.append(value, style="bold")


class SystemStrip(Static):
    def show(self, history: RunHistory | None, system: SystemHistory) -> None:
        text = strip_text(history, system)
        self.display = bool(text)
        self.update(text)
