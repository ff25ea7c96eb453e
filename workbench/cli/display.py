"""Rich renderings for the command line: training progress, attention grids, tables of runs."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from workbench.engine.run_folder import PROCESS_DIED, RunFolder, eta_seconds
from workbench.jobs.metric_format import MISSING, metric

from .fitted_table import Column, fitted_table

if TYPE_CHECKING:
    from workbench.engine.translator import Translation


# A validation's scores in headless progress: key, label.
VALID_SCORES = (
    ("loss", "loss"),
    ("accuracy", "accuracy"),
    ("bleu", "BLEU"),
    ("chrf", "chrF"),
    ("exact", "exact"),
)


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
            scores = "  ".join(f"{label} {metric(key, record.get(key))}" for key, label in VALID_SCORES)
            self.console.print(f"valid step {record['step']}: {scores}")


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


# The runs table's columns: key, title, justify, where the terminal is narrow the order they are left
# out in (the highest first; the run's name never: `resume`, `decode` and `control` take it).
RUNS_COLUMNS = (
    ("name", "name", "left", 0),
    ("recipe", "recipe", "left", 5),
    ("state", "state", "left", 1),
    ("step", "step", "right", 3),
    ("bleu", "BLEU", "right", 2),
    ("exact", "exact", "right", 4),
    ("started", "started", "left", 6),
)


def run_listing(run: RunFolder) -> dict[str, Any]:
    """A run as `runs` lists it: every column as a plain value (`runs --json`); BLEU and exact match are
    those of its validation with the best BLEU."""
    status = run.status()
    records, _ = run.read_metrics()
    valid = [r for r in records if r.get("kind") == "valid"]
    best = max(valid, key=lambda r: (r.get("bleu", 0), r.get("exact", 0))) if valid else {}
    return {
        "name": run.name,
        "path": str(run.path),
        "recipe": _recipe_name(run),
        "state": status.get("state", "?"),
        "reason": status.get("reason"),
        "step": status.get("step", 0),
        "bleu": best.get("bleu"),
        "exact": best.get("exact"),
        "started": status.get("started"),
    }


def runs_table(runs: list[RunFolder], width: int) -> Table:
    """One row per run, in the columns that fit in `width`: name, recipe, state, step, the best
    validation's BLEU and exact match, when it started."""
    listings = [run_listing(run) for run in runs]
    columns = [Column(title, drop, justify) for _, title, justify, drop in RUNS_COLUMNS]
    rows = [[_runs_cell(key, listing) for key, *_ in RUNS_COLUMNS] for listing in listings]
    return fitted_table(columns, rows, width, title="runs")


def _runs_cell(key: str, listing: dict[str, Any]) -> str:
    value = listing[key]
    if key in ("bleu", "exact"):
        return metric(key, value)
    if key == "started":
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(value)) if value else MISSING
    if key == "state" and listing["reason"] == PROCESS_DIED:  # read as failed: its file says running
        return f"{value} (the process died)"
    return str(value)


def _recipe_name(run: RunFolder) -> str:
    try:
        return run.recipe().name
    except ValueError:
        return "?"
