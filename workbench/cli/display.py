"""Rich renderings for the command line: training progress, attention grids, tables of runs."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from workbench.engine.run_folder import PROCESS_DIED, RunFolder, eta_seconds

if TYPE_CHECKING:
    from workbench.engine.translator import Translation


class TrainingDisplay:
    """Headless progress: a live bar on a terminal, one plain line per event elsewhere; the bar's length
    and the ETA come from the limits the trainer writes into status.json."""

    def __init__(self, console: Console, run: RunFolder, quiet: bool = False):
        self.console = console
        self.run = run
        self.quiet = quiet
        self.live = console.is_terminal and not quiet
        self.last_plain = 0.0
        self.train: list[dict[str, Any]] = []
        self.progress = Progress(
            TextColumn("step {task.completed:>6.0f}"),
            BarColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[eta]}"),
            console=console,
            disable=not self.live,
        )
        start = run.status().get("step", 0)
        self.task = self.progress.add_task("train", total=None, completed=start, info="preparing", eta="")

    def __enter__(self) -> TrainingDisplay:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def event(self, kind: str, record: dict[str, Any]) -> None:
        if kind == "train":
            info = (
                f"loss {record['loss']:.3f}  {record['tgt_tokens_per_s']:,.0f} tok/s  lr {record['lr']:.2g}"
            )
            self.train = [*self.train[-9:], record]  # the ETA reads the speed of the last ten
            status = self.run.status()
            left = eta_seconds(status, self.train)
            eta = "" if left is None else f"ETA {clock(left)}"
            total = status.get("max_steps") or None
            self.progress.update(self.task, total=total, completed=record["step"], info=info, eta=eta)
            if not self.live and not self.quiet and time.monotonic() - self.last_plain > 10:
                self.console.print(f"step {record['step']}: {info}  {eta}".rstrip())
                self.last_plain = time.monotonic()
        elif kind == "valid" and not self.quiet:
            self.console.print(
                f"valid step {record['step']}: loss {record['loss']:.3f}  accuracy {record['accuracy']:.1%}  "
                f"BLEU {record['bleu']:.2f}  chrF {record['chrf']:.2f}  exact {record['exact']:.1%}"
            )


def clock(seconds: float) -> str:
    """h:mm:ss, as rich's own time columns print it."""
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def attention_grid(translation: Translation, color: bool = True) -> Table:
    """Source pieces across, target pieces down; a cell's shade is its attention weight."""
    table = Table(show_header=True, header_style="bold", box=None, padding=(0, 1))
    table.add_column("")
    for piece in translation.src_pieces:
        table.add_column(piece, justify="center")
    rows = translation.attention or []
    for piece, row in zip([*translation.tgt_pieces, "</s>"], rows):
        cells = [_cell(w, color) for w in row]
        table.add_row(Text(piece, style="bold"), *cells)
    return table


def _cell(weight: float, color: bool) -> Text:
    label = f"{round(weight * 100):>2d}" if weight >= 0.005 else " ·"
    if not color:
        return Text(label)
    level = int(round(weight * 255))
    fg = "black" if weight > 0.5 else "white"
    return Text(label, style=f"{fg} on rgb({level},{level // 3},{255 - level})" if weight >= 0.005 else "dim")


def runs_table(runs: list[RunFolder]) -> Table:
    """One row per run: its name, recipe, state, step and best validation score."""
    table = Table(title="runs")
    for column in ("name", "recipe", "state", "step", "best", "started"):
        table.add_column(column)
    for run in runs:
        status = run.status()
        best = _best_valid(run)
        started = status.get("started")
        table.add_row(
            run.name,
            _recipe_name(run),
            _state(status),
            str(status.get("step", 0)),
            best,
            time.strftime("%Y-%m-%d %H:%M", time.localtime(started)) if started else "",
        )
    return table


def _state(status: dict) -> str:
    """The run's state; a run read as failed because its trainer is gone says so (its file says running)."""
    state = str(status.get("state", "?"))
    return f"{state} (the process died)" if status.get("reason") == PROCESS_DIED else state


def _recipe_name(run: RunFolder) -> str:
    try:
        return run.recipe().name
    except ValueError:
        return "?"


def _best_valid(run: RunFolder) -> str:
    records, _ = run.read_metrics()
    valid = [r for r in records if r.get("kind") == "valid"]
    if not valid:
        return ""
    best = max(valid, key=lambda r: (r.get("bleu", 0), r.get("exact", 0)))
    return f"BLEU {best['bleu']:.1f}, exact {best['exact']:.0%}"
