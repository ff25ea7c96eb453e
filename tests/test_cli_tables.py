"""The command line's tables fit the terminal: at 80 or 120 columns every run's name stands whole, no cell
is cut to `…`, the columns that do not fit are named; `--json` lists every column of every listing."""

import json
import os
import subprocess
import sys

import pytest
from rich.console import Console

from workbench.cli.fitted_table import Column, fitted_table
from workbench.cli.sweep import comparison_table
from workbench.engine.run_folder import list_runs
from workbench.jobs.comparison import COLUMNS, METRICS, compare_runs
from workbench.jobs.sweep import load_sweep
from workbench.jobs.sweep_queue import queue_sweep
from workbench.tui.components.comparison_table import ComparisonTable

SWEEP = "dates-cell-attention"


def s2s(*args, columns=200):
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": str(columns)}
    cmd = [sys.executable, "-m", "workbench", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    """The built-in sweep's six runs, queued, each with three validations and a speed (never trained)."""
    runs = tmp_path_factory.mktemp("runs")
    queue = queue_sweep(runs, load_sweep(SWEEP), parallel=1)
    for i, run in enumerate(queue.runs()):
        for step in (1, 2, 3):
            scores = {"loss": 1.0 / step + i / 100, "bleu": 10.0 * step + i, "chrf": 20.0 * step + i}
            run.append_metrics(
                {
                    "kind": "valid",
                    "step": 10 * step,
                    "wall": 2.0 * step,
                    **scores,
                    "accuracy": 0.5,
                    "exact": 0.25,
                }
            )
        run.append_metrics(
            {"kind": "train", "step": 5, "wall": 1.0, "tgt_tokens_per_s": 1234.5, "peak_host_mb": 456.0}
        )
        run.write_status("finished", step=30)
    return runs


def table_lines(text):
    """The body rows of a rich table: lines between the header's rule and the bottom rule."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("┡"))
    end = next(i for i, line in enumerate(lines) if line.startswith("└"))
    return lines[start + 1 : end]


def cells(line):
    return [cell.strip() for cell in line.strip("│").split("│")]


@pytest.mark.parametrize("columns", [80, 120])
@pytest.mark.parametrize("command", [["compare", "--sweep", SWEEP], ["runs"], ["compare"]])
def test_a_table_fits_the_terminal_with_every_run_name_whole_and_no_cell_cut(runs_dir, columns, command):
    names = sorted(path.name for path in runs_dir.iterdir() if not path.name.startswith("."))
    if command == ["compare"]:
        command = ["compare", *names]
    out = s2s(*command, "--runs-dir", str(runs_dir), columns=columns)
    rows = table_lines(out)
    assert all(len(line) <= columns for line in out.splitlines() if line.startswith(("│", "┃", "┏")))
    assert sorted(cells(line)[0] for line in rows) == names
    assert "…" not in out
    assert all(cells(line)[1:] and all(cells(line)[1:]) for line in rows)  # every shown cell has its value
    if command[0] == "compare":
        assert "BLEU" in out and (columns == 120) == ("chrF" in out.split("not shown")[0])


def test_the_columns_left_out_are_named_and_json_has_them_all(runs_dir):
    narrow = s2s("compare", "--sweep", SWEEP, "--runs-dir", str(runs_dir), columns=80)
    assert "not shown at 80 columns: chrF, acc, loss" in narrow.replace("\n", " ")
    rows = [
        json.loads(line)
        for line in s2s(
            "compare", "--sweep", SWEEP, "--runs-dir", str(runs_dir), "--json", columns=80
        ).splitlines()
    ]
    assert len(rows) == 6 and all(set(COLUMNS) <= set(row) for row in rows)
    assert (
        rows[-1]["values"] == {"model.cell": "lstm", "model.attention": "concat"} and rows[-1]["bleu"] == 35.0
    )


def test_runs_sweep_and_recipes_list_every_column_as_json(runs_dir):
    runs = [json.loads(line) for line in s2s("runs", "--runs-dir", str(runs_dir), "--json").splitlines()]
    assert {run["name"]: (run["state"], run["step"], run["bleu"], run["exact"]) for run in runs}[
        f"{SWEEP}-lstm-concat"
    ] == ("finished", 30, 35.0, 0.25)
    assert all(run["recipe"] == "dates-en-fr" and run["started"] for run in runs)
    (sweep,) = [json.loads(line) for line in s2s("sweep", "--runs-dir", str(runs_dir), "--json").splitlines()]
    assert (sweep["name"], sweep["total"], sweep["done"], sweep["runner"]) == (SWEEP, 6, 6, "done")
    recipes = [json.loads(line) for line in s2s("recipes", "--json").splitlines()]
    assert {"dates-en-fr", "reverse"} <= {r["name"] for r in recipes}
    assert all(r["description"] and r["path"].endswith(".toml") for r in recipes)


def test_a_metric_cell_of_the_cli_table_reads_as_the_same_cell_of_the_workbench(runs_dir):
    comparison = compare_runs(list_runs(runs_dir))
    console = Console(width=300, record=True, no_color=True)
    console.print(comparison_table(comparison, "runs", marks=False, width=300))
    best = {metric: comparison.best(metric) for metric in METRICS}
    for row, line in zip(comparison.rows, table_lines(console.export_text())):
        shown = dict(zip(["run", *comparison.varied, *COLUMNS], cells(line)))
        for key in ("bleu", "chrf", "accuracy", "loss", "seconds", "tokens_per_s", "steps"):
            assert shown[key] == ComparisonTable.cell(row, key, best).plain, key


def test_a_column_that_never_drops_widens_the_table_rather_than_cut_a_cell():
    name = "a-run-name-longer-than-the-terminal-" * 3
    table = fitted_table([Column("run"), Column("BLEU", 1, "right")], [[name, "30.0"]], width=60)
    console = Console(width=60, record=True, no_color=True)
    console.print(table, crop=False)
    text = console.export_text()
    assert name in text and "BLEU" not in text.split("not shown")[0] and "…" not in text
