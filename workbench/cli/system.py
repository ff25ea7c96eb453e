"""`s2s-bench system`: the machine's GPUs, CPUs and memory, and each trainer's share of them."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import typer
from rich.console import Console, Group

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

from .fitted_table import Column, fitted_table
from .options import RunsDir, runs_dir_option

console = Console()
CPU_WINDOW_S = 0.5  # CPU shares are measured between two readings


def system(
    ctx: typer.Context,
    once: bool = typer.Option(False, "--once", help="Print one reading as text and exit (no workbench)."),
    as_json: bool = typer.Option(
        False, "--json", help="Print one reading as JSON (every value, unformatted) and exit."
    ),
    runs_dir: Path | None = RunsDir,
) -> None:
    """The system view: each GPU (NVML) and the host, and the processes of every run training here."""
    runs_dir = runs_dir_option(ctx, runs_dir)
    if not (once or as_json):
        from .main import _open_tui

        _open_tui(runs_dir=runs_dir, mode="system")
        return
    monitor = SystemMonitor()
    runs = live_runs(runs_dir)
    pids = [pid for run in runs for pid in run.pids]
    monitor.read(pids)
    time.sleep(CPU_WINDOW_S)
    reading = monitor.read(pids)
    monitor.close()
    if as_json:
        print(
            json.dumps(
                {"reading": dataclasses.asdict(reading), "runs": [dataclasses.asdict(r) for r in runs]}
            )
        )
        return
    console.print(system_view(reading, runs, console.width), crop=False)


# Where the terminal is narrow, the columns left out first (the highest first); the others always show.
DROP = {"power": 1, "temp": 2, "pid": 2, "resident": 1, "gpu memory": 3}


def system_view(reading: SystemReading, runs: list[LiveRun], width: int) -> Group:
    """The reading as two tables (devices, then trainers) that fit in `width`, with a line where there is
    no GPU."""
    devices = [
        Column(c, DROP.get(c, 0), "right" if c in ("busy", "temp", "power") else "left", wrap=c == "name")
        for c in GPU_COLUMNS
    ]
    parts: list = [fitted_table(devices, [list(row) for row in gpu_rows(reading)], width, "devices")]
    if reading.no_gpu:
        parts.append(reading.no_gpu)
    trainers = [
        Column(c, DROP.get(c, 0), "left" if c in ("run", "device") else "right") for c in PROCESS_COLUMNS
    ]
    rows = [list(row) for row in process_rows(reading, runs)]
    parts.append(
        fitted_table(trainers, rows, width, "trainers") if rows else "no run is training on this machine"
    )
    return Group(*parts)
