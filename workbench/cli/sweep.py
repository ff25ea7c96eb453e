"""`s2s-bench sweep` and `s2s-bench compare`: queue a sweep, run its queue, compare runs in one table."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from workbench.engine.errors import UserError
from workbench.engine.run_folder import RunFolder
from workbench.jobs.comparison import COLUMNS, METRICS, Comparison, column_titles, compare_runs, sort_rows
from workbench.jobs.metric_format import column_text, value_text
from workbench.jobs.sweep import load_sweep
from workbench.jobs.sweep_queue import SweepProgress, SweepQueue, list_sweeps, queue_sweep

from .corpora import prepare_corpus
from .fitted_table import Cell, Column, fitted_table
from .options import AsJsonLines, RunsDir, print_json_lines, run_path, runs_dir_flag, runs_dir_option

ASK_ABOVE = 64  # runs; a larger sweep asks first
# Where the terminal is too narrow for the compare table, its columns are left out in this order, the
# highest first: the run's name never, BLEU last (a sweep's run names hold their varied values).
DROP = {
    "bleu": 1,
    "state": 3,
    "loss": 4,
    "chrf": 5,
    "accuracy": 6,
    "steps": 7,
    "seconds": 8,
    "tokens_per_s": 9,
    "peak_memory_mb": 10,
}
VARIED_DROP = 2

console = Console(soft_wrap=True)  # a line with a path is never cut: a script or a copy takes it whole


def sweep(
    ctx: typer.Context,
    file: str | None = typer.Argument(None, help="A sweep file (.toml) or a built-in sweep's name."),
    resume: str | None = typer.Option(
        None, "--resume", help="Run sweep NAME's queue again: finish what is left, redo nothing finished."
    ),
    stop: str | None = typer.Option(
        None, "--stop", help="Stop sweep NAME: its running runs (with a checkpoint), and start no more."
    ),
    parallel: int | None = typer.Option(
        None, "--parallel", min=1, help="Runs at a time (default: one per GPU; on CPU 1, sharing the cores)."
    ),
    devices: str | None = typer.Option(
        None, "--devices", help="GPUs to use, such as 0,2 (default: all), or cpu."
    ),
    overrides: list[str] = typer.Option(
        [], "--set", help="Override a recipe key in every run: section.key=value."
    ),
    yes: bool = typer.Option(
        False, "--yes", help=f"Queue a sweep of more than {ASK_ABOVE} runs without asking."
    ),
    as_json: bool = AsJsonLines,
    runs_dir: Path | None = RunsDir,
) -> None:
    """Queue every run of a sweep and train them in the background; with no file, list the sweeps."""
    runs_dir = runs_dir_option(ctx, runs_dir)
    device_list = _devices(devices)
    if sum(bool(x) for x in (file, resume, stop)) > 1:
        raise UserError("give one of a sweep file, --resume NAME and --stop NAME")
    if as_json and (file or resume or stop):
        raise UserError("--json lists the sweeps: give it without a sweep file, --resume or --stop")
    if stop:
        _stop(SweepQueue.open(runs_dir, stop))
        return
    if resume:
        if overrides:
            raise UserError("--set applies when a sweep is queued; its runs' recipes are already written")
        _resume(SweepQueue.open(runs_dir, resume), parallel, device_list)
        return
    if not file:
        _list(runs_dir, as_json)
        return
    loaded = load_sweep(file, overrides)
    points = loaded.points()
    if len(points) > ASK_ABOVE and not yes:
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            raise UserError(f"{file}: {len(points)} runs; pass --yes to queue more than {ASK_ABOVE}")
        if not typer.confirm(f"{file}: queue {len(points)} runs?"):
            raise typer.Exit(1)
    queue = queue_sweep(
        runs_dir, loaded, parallel, device_list, prepare=lambda recipe: prepare_corpus(recipe, runs_dir)
    )
    runner = _start_runner(queue)
    console.print(f"queued {len(points)} runs of sweep {queue.name} in {runs_dir}; runner pid {runner.pid}")
    _print_next_steps(queue)


def _devices(text: str | None) -> list[str] | None:
    """`0,2` as cuda:0 and cuda:2; `cpu` as itself; each checked against this machine."""
    if not text:
        return None
    from workbench.engine.devices import resolve_device

    names = []
    for part in (p.strip() for p in text.split(",")):
        name = f"cuda:{part}" if part.isdigit() else part
        device = resolve_device(name)
        if device.type == "cuda":
            import torch

            if device.index is not None and device.index >= torch.cuda.device_count():
                raise UserError(f"--devices {text}: this machine has {torch.cuda.device_count()} GPU(s)")
        names.append(name)
    return names


def _start_runner(queue: SweepQueue) -> subprocess.Popen:
    """Start the queue runner and wait until it holds the queue (a second runner is refused there)."""
    from workbench.jobs.launch import start_runner

    runner = start_runner(queue)
    deadline = time.monotonic() + 60
    while not queue.runner_alive() and time.monotonic() < deadline:
        if runner.poll() is not None:
            lines = queue.log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
            last = lines[-1].removeprefix("error: ") if lines else f"exit code {runner.returncode}"
            raise UserError(f"sweep {queue.name}: the queue runner stopped at once: {last}")
        time.sleep(0.05)
    return runner


def _resume(queue: SweepQueue, parallel: int | None, devices: list[str] | None) -> None:
    changes = {k: v for k, v in (("parallel", parallel), ("devices", devices)) if v is not None}
    progress = queue.take_up(**changes)
    if progress.complete:
        console.print(f"sweep {queue.name}: nothing left to run ({_progress_text(progress)})")
        return
    runner = _start_runner(queue)
    console.print(f"sweep {queue.name}: runner pid {runner.pid}; {_progress_text(progress)}")
    _print_next_steps(queue)


def _stop(queue: SweepQueue) -> None:
    stopped = queue.stop()
    progress = queue.progress()
    console.print(
        f"sweep {queue.name}: sent a stop to {len(stopped)} running run(s) (each saves a checkpoint); "
        f"the runner starts no more runs. {_progress_text(progress)}"
    )
    console.print(f"continue it: s2s-bench sweep --resume {queue.name}{runs_dir_flag(queue.runs_dir)}")


def _print_next_steps(queue: SweepQueue) -> None:
    console.print(
        f"follow it: s2s-bench compare --sweep {queue.name}{runs_dir_flag(queue.runs_dir)}   "
        f"(runner log: {queue.log_path})"
    )


def _progress_text(p: SweepProgress) -> str:
    parts = [f"{p.done}/{p.total} finished"]
    parts += [
        f"{n} {what}"
        for n, what in (
            (p.running, "running"),
            (p.interrupted, "interrupted (resumed by sweep --resume)"),
            (p.queued, "queued"),
            (p.failed, "failed"),
            (p.stopped, "stopped"),
            (p.cancelled, "cancelled"),
        )
        if n
    ]
    return ", ".join(parts)


def _runner_text(queue: SweepQueue, progress: SweepProgress) -> str:
    """The queue runner's state: running, done, not running, or stopping / stopped after `sweep --stop`."""
    alive = queue.runner_alive()
    if queue.held and not progress.complete:
        return "stopping" if alive else "stopped"
    return "running" if alive else "done" if progress.complete else "not running"


def _list(runs_dir: Path, as_json: bool) -> None:
    queues = list_sweeps(runs_dir)
    if as_json:
        print_json_lines(
            {"name": q.name, **dataclasses.asdict(p), "runner": _runner_text(q, p)}
            for q, p in ((q, q.progress()) for q in queues)
        )
        return
    if not queues:
        console.print(
            f"no sweeps in {runs_dir}; queue one with: s2s-bench sweep FILE{runs_dir_flag(runs_dir)}"
        )
        return
    columns = [Column("name"), Column("runs", 2, "right"), Column("progress", wrap=True), Column("runner", 1)]
    rows = []
    for queue in queues:
        progress = queue.progress()
        rows.append(
            [queue.name, str(progress.total), _progress_text(progress), _runner_text(queue, progress)]
        )
    console.print(fitted_table(columns, rows, console.width, "sweeps"))


def sweep_runner(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The sweep's name."),
    runs_dir: Path | None = RunsDir,
) -> None:
    """Run a sweep's queue in this process (started in the background by `sweep`)."""
    from workbench.jobs.sweep_runner import run_queue

    run_queue(SweepQueue.open(runs_dir_option(ctx, runs_dir), name))


def compare(
    ctx: typer.Context,
    runs: list[Path] | None = typer.Argument(None, help="Runs to compare: names or folders."),
    sweep_name: str | None = typer.Option(None, "--sweep", help="Compare the runs of this sweep."),
    sort: str | None = typer.Option(None, "--sort", help="Sort by a metric (best first) or a varied key."),
    as_json: bool = AsJsonLines,
    runs_dir: Path | None = RunsDir,
) -> None:
    """One table of runs: the recipe keys they differ in, their best validation scores, speed and state."""
    queue = None
    if sweep_name and runs:
        raise UserError("give run folders or --sweep NAME, not both")
    if sweep_name:
        queue = SweepQueue.open(runs_dir_option(ctx, runs_dir), sweep_name)
        comparison = compare_runs(queue.runs(), queue.varied_keys())
    elif runs:
        comparison = compare_runs([RunFolder.open(run_path(ctx, path, runs_dir)) for path in runs])
    else:
        raise UserError("give the run folders to compare, or --sweep NAME")
    if sort:
        comparison.rows = sort_rows(comparison.rows, sort)
    if as_json:
        print_json_lines(row.as_dict() for row in comparison.rows)
        return
    console.print(
        comparison_table(
            comparison,
            title=f"sweep {queue.name}" if queue else "runs",
            marks=not (console.is_terminal and not console.no_color),
            width=console.width,
        )
    )
    if queue is not None:
        progress = queue.progress()
        console.print(f"{_progress_text(progress)}; runner {_runner_text(queue, progress)}")


def comparison_table(comparison: Comparison, title: str, marks: bool, width: int) -> Table:
    """The comparison as a table of the columns that fit in `width`; each metric column's best cell bold
    green (and marked * in plain text). A run's name is what `control`, `decode` and `resume` take: it is
    never cut short."""
    varied = comparison.varied
    titles = column_titles(["run", *varied, *COLUMNS])
    columns = [
        Column(titles["run"]),
        *(Column(titles[key], drop=VARIED_DROP) for key in varied),
        *(Column(titles[key], DROP[key], "left" if key == "state" else "right") for key in COLUMNS),
    ]
    best = {metric: comparison.best(metric) for metric in METRICS}
    rows = []
    for row in comparison.rows:
        cells: list[Cell] = [row.name, *(value_text(row.values.get(k)) for k in varied)]
        for column in COLUMNS:
            value = getattr(row, column)
            text = column_text(column, value)
            if column in METRICS and value is not None and value == best[column] and len(comparison.rows) > 1:
                cells.append(Text(text + ("*" if marks else ""), style="bold green"))
            else:
                cells.append(text + (" " if marks and column in METRICS and value is not None else ""))
        rows.append(cells)
    return fitted_table(columns, rows, width, title, caption="* best in its column" if marks else "")
