"""`s2s-bench system`: the machine's GPUs, CPUs and memory, and each trainer's share of them."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console, Group
from rich.table import Table

from workbench.engine.system_monitor import (
    GPU_COLUMNS,
    PROCESS_COLUMNS,
    LiveRun,
    SystemMonitor,
    SystemReading,
    gpu_rows,
    live_runs,
    process_rows,
)

from .options import RunsDir, runs_dir_option

console = Console()
CPU_WINDOW_S = 0.5  # CPU shares are measured between two readings


def system(
    ctx: typer.Context,
    once: bool = typer.Option(False, "--once", help="Print one reading as text and exit (no workbench)."),
    runs_dir: Path | None = RunsDir,
) -> None:
    """The system view: each GPU (NVML) and the host, and the processes of every run training here."""
    runs_dir = runs_dir_option(ctx, runs_dir)
    if not once:
        from .main import _open_tui

        _open_tui(runs_dir=runs_dir, mode="system")
        return
    monitor = SystemMonitor()
    runs = live_runs(runs_dir)
    pids = [pid for run in runs for pid in run.pids]
    monitor.read(pids)
    time.sleep(CPU_WINDOW_S)
    console.print(system_view(monitor.read(pids), runs))
    monitor.close()


def system_view(reading: SystemReading, runs: list[LiveRun]) -> Group:
    """The reading as two tables (devices, then trainers), with a line where there is no GPU."""
    devices = Table(title="devices", title_justify="left")
    for column in GPU_COLUMNS:
        devices.add_column(column, justify="right" if column in ("busy", "temp", "power") else "left")
    for row in gpu_rows(reading):
        devices.add_row(*row)
    parts: list = [devices]
    if reading.no_gpu:
        parts.append(reading.no_gpu)
    trainers = Table(title="trainers", title_justify="left")
    for column in PROCESS_COLUMNS:
        trainers.add_column(column, justify="left" if column in ("run", "device") else "right")
    rows = process_rows(reading, runs)
    for row in rows:
        trainers.add_row(*row)
    parts.append(trainers if rows else "no run is training on this machine")
    return Group(*parts)
