"""`s2s-bench prepare` and `s2s-bench cache`: prepare a recipe's corpus once into the corpus cache that runs
share, and see or clear what that cache holds."""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from workbench.engine.data.cache import CorpusCache, cache_folder
from workbench.engine.data.progress import ProgressLine
from workbench.engine.recipe import DEFAULT_RECIPE, Recipe, load_recipe

from .fitted_table import Column, fitted_table
from .options import Overrides, RunsDir, runs_dir_option

if TYPE_CHECKING:
    from workbench.engine.data.prepare import PreparedCorpus

console = Console()
err = Console(stderr=True, soft_wrap=True)


def prepare_corpus(recipe: Recipe, runs_dir: Path, threads: int | None = None) -> PreparedCorpus:
    """The recipe's corpus from the runs folder's corpus cache, prepared now if need be, with each phase
    shown on stderr."""
    from workbench.engine.data.prepare import prepare
    from workbench.engine.devices import usable_cpus

    # A live line on a terminal; elsewhere (a log, a script) a line every 30 s, once it has taken 5 s.
    clock = ProgressLine(every=0.2 if err.is_terminal else 30.0)
    started = time.monotonic()
    with err.status("preparing data", spinner="dots") if err.is_terminal else nullcontext() as shown:

        def report(phase: str, done: int, total: int | None, fraction: float | None) -> None:
            if shown is None and time.monotonic() - started < 5 and not phase.startswith("waiting"):
                return
            if clock.due(phase):
                line = f"preparing data: {clock.line(phase, done, total, fraction)}"
                if shown is not None:
                    shown.update(line)
                else:
                    err.print(line, highlight=False, markup=False)

        cache = CorpusCache(cache_folder(runs_dir))
        data = prepare(recipe, cache, report=report, workers=threads or len(usable_cpus()))
    if data.built and (err.is_terminal or time.monotonic() - started >= 5):
        err.print(
            f"prepared {data.manifest['label']} in {time.monotonic() - started:.0f} s: {data.folder}",
            highlight=False,
            markup=False,
        )
    return data


def prepare_command(
    ctx: typer.Context,
    recipe: str = typer.Argument(DEFAULT_RECIPE, help="A built-in recipe name or a recipe .toml file."),
    runs_dir: Path | None = RunsDir,
    overrides: list[str] = Overrides,
    threads: int | None = typer.Option(
        None, "--threads", min=1, help="Processes that encode (default: all cores)."
    ),
) -> None:
    """Prepare a recipe's corpus once (read, tokenizer, encoding) into the corpus cache every run shares."""
    resolved = load_recipe(recipe, overrides)
    data = prepare_corpus(resolved, runs_dir_option(ctx, runs_dir), threads)
    pairs = data.manifest["pairs"]
    console.print(
        f"{data.key}  {data.manifest['label']}: {pairs['train']:,} train, {pairs['valid']:,} valid pairs, "
        f"{_size(_bytes(data.folder))} in {data.folder} "
        f"({'prepared now' if data.built else 'found in the cache'})",
        highlight=False,
    )


def cache_command(
    ctx: typer.Context,
    runs_dir: Path | None = RunsDir,
    remove: list[str] = typer.Option([], "--remove", help="Remove this entry (a key, or a key's start)."),
    clear: bool = typer.Option(False, "--clear", help="Remove every entry."),
    as_json: bool = typer.Option(False, "--json", help="The entries as JSON."),
) -> None:
    """The corpus cache: each prepared corpus, its size, and whether it is whole; remove entries."""
    from workbench.engine.data import CorpusError

    cache = CorpusCache(cache_folder(runs_dir_option(ctx, runs_dir)))
    entries = cache.entries()
    doomed = [entry.key for entry in entries] if clear else []
    for wanted in remove:
        matches = [entry.key for entry in entries if entry.key.startswith(wanted)]
        if len(matches) != 1:
            what = "no entry" if not matches else f"{len(matches)} entries"
            raise CorpusError(f"--remove {wanted}: {what} of {cache.folder} start with it")
        doomed += matches
    if doomed:
        freed = sum(cache.remove(key) for key in dict.fromkeys(doomed))
        console.print(
            f"removed {len(set(doomed))} entr{'y' if len(set(doomed)) == 1 else 'ies'}, {_size(freed)}"
        )
        return
    if as_json:
        rows = [
            {
                "key": e.key,
                "path": str(e.path),
                "bytes": e.bytes,
                "whole": e.manifest is not None,
                **_facts(e.manifest),
            }
            for e in entries
        ]
        console.print_json(json.dumps(rows))
        return
    if not entries:
        console.print(f"the corpus cache {cache.folder} is empty")
        return
    columns = [
        Column("key"),
        Column("corpus", wrap=True),
        *(
            Column(title, drop, "right")
            for title, drop in (("train", 1), ("valid", 2), ("tokens", 4), ("size", 3))
        ),
        Column("created", 5),
    ]
    rows = []
    for entry in entries:
        facts = _facts(entry.manifest)
        size = _size(entry.bytes)
        if entry.manifest is None:
            rows.append([entry.key, "damaged or half-built: rebuilt when next used", "", "", "", size, ""])
            continue
        counts = [f"{facts[name]:,}" for name in ("train", "valid", "tokens")]
        rows.append([entry.key, facts["label"], *counts, size, facts["created"]])
    table = fitted_table(columns, rows, console.width, f"corpus cache: {cache.folder}")
    console.print(table, crop=False)
    n = len(entries)
    console.print(
        f"{n} entr{'y' if n == 1 else 'ies'}, {_size(sum(e.bytes for e in entries))}", highlight=False
    )


def _facts(manifest: dict | None) -> dict:
    if manifest is None:
        return {}
    tokens = manifest.get("tokens", {})
    return {
        "label": manifest.get("label", ""),
        "train": manifest["pairs"]["train"],
        "valid": manifest["pairs"]["valid"],
        "tokens": sum(tokens.values()),
        "created": manifest.get("created", "")[:16].replace("T", " "),
    }


def _bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""
