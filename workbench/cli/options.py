"""Options that several commands share: the runs folder, a run named by its name or its path, a recipe's
overrides, a device, and a listing's `--json`."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import typer

from workbench.engine.run_folder import RunFolderError

RunsDir = typer.Option(None, "--runs-dir", help="Folder that holds the run folders (default: runs).")
RecipeArgument = typer.Argument(..., help="A built-in recipe name or a recipe .toml file.")
RunArgument = typer.Argument(..., help="A run: its name in the runs folder, or the path of its folder.")
Overrides = typer.Option([], "--set", help="Override a recipe key: section.key=value.")
AsJsonLines = typer.Option(False, "--json", help="Every column, one JSON object a line, instead of a table.")


def runs_dir_option(ctx: typer.Context, value: Path | None) -> Path:
    """--runs-dir given after the command or before it (`s2s-bench --runs-dir X decode NAME`); the
    command's own wins where both are given."""
    while value is None and ctx.parent is not None:
        ctx = ctx.parent
        value = ctx.params.get("runs_dir")
    return value or Path("runs")


def run_path(ctx: typer.Context, run: Path, runs_dir: Path | None) -> Path:
    """The folder of `run`: a path to a run folder as given, else the run of that name in the runs folder."""
    if (run / "recipe.toml").is_file():
        return run
    folder = runs_dir_option(ctx, runs_dir)
    if len(run.parts) == 1 and (folder / run).is_dir():
        return folder / run
    if run.is_dir():
        return run  # a folder that is not a run: RunFolder.open says so
    raise RunFolderError(f"{run}: no such run folder, and no run of that name in {folder}")


def runs_dir_flag(runs_dir: Path) -> str:
    """` --runs-dir X` for a command line printed as a hint, empty for the default folder."""
    default = Path(runs_dir).resolve() == Path("runs").resolve()
    return "" if default else f" --runs-dir {shlex.quote(str(runs_dir))}"


def print_json_lines(rows: Iterable[dict[str, Any]]) -> None:
    """A listing as `--json` writes it: one JSON object a line, every column, values unformatted."""
    for row in rows:
        print(json.dumps(row, ensure_ascii=False), flush=True)


def device_option(default: str, what: str = "") -> Any:
    """--device, `default` where not given; `what` says whose device it is."""
    return typer.Option(default, "--device", help=f"{what}auto | cpu | cuda")
