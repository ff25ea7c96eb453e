"""Comparing runs: one row per run with the recipe values that differ and the metrics that matter."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from workbench.engine.errors import UserError
from workbench.engine.recipe import RecipeError
from workbench.engine.run_folder import RunFolder

# Each metric column and which end of it is best (the CLI and the TUI highlight the same cells).
METRICS: dict[str, str] = {
    "bleu": "max",
    "chrf": "max",
    "accuracy": "max",
    "loss": "min",
    "seconds": "min",
    "tokens_per_s": "max",
    "peak_memory_mb": "min",
}
# The columns after the varied keys, in order.
COLUMNS = ("bleu", "chrf", "accuracy", "loss", "steps", "seconds", "tokens_per_s", "state", "peak_memory_mb")
IGNORED_KEYS = ("description",)
# Each column's title, in the CLI's table and the workbench's alike; a varied key's is `column_titles`'.
TITLES = {
    "run": "run",
    "name": "recipe",  # a varied key: the recipe's name
    "bleu": "BLEU",
    "chrf": "chrF",
    "accuracy": "acc",
    "loss": "loss",
    "steps": "steps",
    "seconds": "time",
    "tokens_per_s": "tok/s",
    "peak_memory_mb": "peak MB",
    "state": "state",
}


@dataclass
class RunRow:
    run: RunFolder
    name: str
    sweep: str | None
    values: dict[str, Any]  # the varied keys' values
    state: str
    bleu: float | None  # best valid BLEU
    chrf: float | None  # best valid chrF
    accuracy: float | None  # best valid token accuracy (teacher-forced)
    loss: float | None  # lowest valid loss
    steps: int
    seconds: float | None  # training wall time, pauses excluded
    tokens_per_s: float | None  # target tokens/s, mean of the train records
    peak_memory_mb: float | None = None  # the CUDA allocator's peak on a GPU, else the host's resident peak

    def as_dict(self) -> dict[str, Any]:
        """The row as plain values (`compare --json`)."""
        fields = (
            "name",
            "sweep",
            "values",
            "state",
            "bleu",
            "chrf",
            "accuracy",
            "loss",
            "steps",
            "seconds",
            "tokens_per_s",
            "peak_memory_mb",
        )
        return {"path": str(self.run.path), **{f: getattr(self, f) for f in fields}}

    def get(self, key: str) -> Any:
        """A column's value: a metric, `name`, `state`, `steps` or a varied key."""
        return self.values.get(key) if key in self.values else getattr(self, key, None)


@dataclass
class Comparison:
    varied: list[str]
    rows: list[RunRow]

    def best(self, metric: str) -> Any:
        """The best value of a metric column (None when no run has it)."""
        values = [v for row in self.rows if (v := getattr(row, metric)) is not None]
        if not values:
            return None
        return max(values) if METRICS[metric] == "max" else min(values)


def column_titles(keys: list[str]) -> dict[str, str]:
    """Titles of columns: TITLES's, and for a recipe key its last part (`model.cell` -> `cell`) unless two
    keys share it."""
    last = [key.rsplit(".", 1)[-1] for key in keys]
    return {
        key: TITLES.get(key) or (short if last.count(short) == 1 else key) for key, short in zip(keys, last)
    }


def recipe_values(run: RunFolder) -> dict[str, Any]:
    """A run's recipe as dotted keys and values ({} when the recipe cannot be read)."""
    try:
        recipe = run.recipe()
    except (RecipeError, OSError):
        return {}
    return {key: value for key, value in recipe.dotted().items() if key not in IGNORED_KEYS}


def compare_runs(runs: list[RunFolder], varied: list[str] | None = None) -> Comparison:
    """A row per run; `varied` defaults to the recipe keys whose values differ among the runs."""
    recipes = [recipe_values(run) for run in runs]
    if varied is None:
        keys = list(dict.fromkeys(k for values in recipes for k in values))
        varied = [
            k for k in keys if len({json.dumps(values.get(k), sort_keys=True) for values in recipes}) > 1
        ]
    rows = [_row(run, {k: values.get(k) for k in varied}) for run, values in zip(runs, recipes)]
    return Comparison(list(varied), rows)


def _row(run: RunFolder, values: dict[str, Any]) -> RunRow:
    status = run.status()
    records, _ = run.read_metrics()
    valid = [r for r in records if r.get("kind") == "valid"]
    train = [r for r in records if r.get("kind") == "train" and "tgt_tokens_per_s" in r]
    info = run.sweep_info() or {}
    if info.get("values"):  # the values the sweep gave, exactly as given
        values = {k: info["values"].get(k, v) for k, v in values.items()}
    walls = [r["wall"] for r in records if isinstance(r.get("wall"), (int, float))]
    steps = max([r.get("step", 0) for r in records] + [status.get("step", 0) or 0])
    return RunRow(
        run=run,
        name=run.name,
        sweep=info.get("sweep"),
        values=values,
        state=status.get("state", "new"),
        bleu=_extreme(valid, "bleu", max),
        chrf=_extreme(valid, "chrf", max),
        accuracy=_extreme(valid, "accuracy", max),
        loss=_extreme(valid, "loss", min),
        steps=steps,
        seconds=max(walls) if walls else None,
        tokens_per_s=round(sum(r["tgt_tokens_per_s"] for r in train) / len(train), 1) if train else None,
        peak_memory_mb=peak_memory_mb(train),
    )


def peak_memory_mb(train: list[dict[str, Any]]) -> float | None:
    """The most memory the run's trainer held, over its train records (a resumed trainer's peaks start
    over): on CUDA the allocator's, else the resident memory's."""
    peaks = [r.get("peak_cuda_mb", r.get("peak_host_mb")) for r in train]
    values = [p for p in peaks if isinstance(p, (int, float))]
    return max(values) if values else None


def _extreme(records: list[dict[str, Any]], key: str, pick: Any) -> float | None:
    values = [r[key] for r in records if isinstance(r.get(key), (int, float))]
    return pick(values) if values else None


def sort_rows(rows: list[RunRow], key: str, descending: bool | None = None) -> list[RunRow]:
    """Rows sorted by a column (best first for a metric, unless `descending` says); None values last."""
    known = {"name", "state", "steps", *METRICS, *(k for row in rows for k in row.values)}
    if key not in known:
        raise UserError(f"--sort {key}: no such column; one of {', '.join(sorted(known))}")
    if descending is None:
        descending = METRICS.get(key) == "max" or key == "steps"
    present = [row for row in rows if row.get(key) is not None]
    missing = [row for row in rows if row.get(key) is None]
    try:
        ordered = sorted(present, key=lambda row: row.get(key), reverse=descending)
    except TypeError:  # values of mixed types in one column: compare them as text
        ordered = sorted(present, key=lambda row: str(row.get(key)), reverse=descending)
    return ordered + missing
