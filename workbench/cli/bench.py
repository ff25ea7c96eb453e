"""`s2s-bench bench`: training and decoding speed, as a table or one JSON line (`--json`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from workbench.engine.recipe import PRECISIONS, RecipeError, load_recipe

from .options import Overrides, RecipeArgument, device_option

bench_app = typer.Typer(
    help=(
        "Benchmarks: training throughput with model FLOPs and MFU, decoding latency and throughput, "
        "and the TUI's responsiveness while training."
    ),
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
)
console = Console()
err = Console(stderr=True, highlight=False, soft_wrap=True)

AsJson = typer.Option(False, "--json", help="One JSON line on standard output instead of a table.")
Quiet = typer.Option(False, "--quiet", help="No progress lines on standard error.")


def _progress(quiet: bool) -> Any:
    return None if quiet else (lambda message: err.print(f"[dim]bench: {message}[/]"))


Precision = typer.Option(
    None, "--precision", help=f"{' | '.join(PRECISIONS)} (default: the recipe's decoding.precision)."
)


@bench_app.command("train")
def train(
    recipe: str = RecipeArgument,
    seconds: float = typer.Option(30.0, "--seconds", min=0.1, help="How long to time training steps."),
    overrides: list[str] = Overrides,
    device: str = device_option("auto"),
    warmup_steps: int = typer.Option(5, "--warmup-steps", min=0, help="Untimed steps first."),
    peak_seconds: float = typer.Option(0.5, "--peak-seconds", min=0.01, help="Matmul peak: time a shape."),
    quiet: bool = Quiet,
    as_json: bool = AsJson,
) -> None:
    """Time the real training step on a recipe: tokens/s, model FLOP/s and MFU (fraction of matmul peak)."""
    from workbench.benchmarks import bench_train

    result = bench_train(
        load_recipe(recipe, overrides), seconds, device, warmup_steps, peak_seconds, _progress(quiet)
    )
    if as_json:
        print(json.dumps(result))
        return
    table = _table(f"training: {result['recipe']} on {result['device']}", result, skip=("matmul_gemms",))
    for name, gemm in result["matmul_gemms"].items():
        table.add_row(f"matmul {name} {gemm['shape']}", f"{gemm['flops_per_s'] / 1e9:,.1f} GFLOP/s")
    console.print(table)


@bench_app.command("decode")
def decode(
    run: Path | None = typer.Argument(None, help="A run folder with a trained checkpoint."),
    recipe: str | None = typer.Option(
        None, "--recipe", help="No run: a random-weight model of this recipe (output length capped)."
    ),
    overrides: list[str] = typer.Option([], "--set", help="With --recipe: section.key=value."),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best | last"),
    beam: int = typer.Option(5, "--beam", min=2, help="The beam size timed beside greedy search."),
    latency_sentences: int = typer.Option(
        50, "--latency-sentences", min=1, help="Single-sentence translations timed per search."
    ),
    batch_sentences: int | None = typer.Option(
        None, "--batch-sentences", min=1, help="Valid sentences translated in batches (default: all)."
    ),
    precision: str | None = Precision,
    device: str = device_option("cpu"),
    threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads (default: recipe's)."),
    quiet: bool = Quiet,
    as_json: bool = AsJson,
) -> None:
    """Time decoding: single-sentence latency p50/p95 and batch sentences/s, greedy and beam."""
    from workbench.benchmarks import bench_decode, translator_from_recipe, translator_from_run

    if (run is None) == (recipe is None):
        raise RecipeError("bench decode: give a run folder or --recipe RECIPE (one of the two)")
    log = _progress(quiet)
    if run is not None:
        setup = translator_from_run(run, checkpoint, device, threads, precision)
    else:
        extra = [f"training.threads={threads}"] if threads else []
        extra += [f"decoding.precision={precision}"] if precision else []
        resolved = load_recipe(recipe, [*overrides, *extra])
        if log:
            log("preparing tokenizers and a random-weight model (not timed)")
        setup = translator_from_recipe(resolved, device)
    with setup as ready:
        result = bench_decode(ready, beam, latency_sentences, batch_sentences, log)
    if as_json:
        print(json.dumps(result))
        return
    console.print(_table(f"decoding on {result['device']}", result))


@bench_app.command("data")
def data(
    recipe: str = typer.Argument(
        "tatoeba-en-fr", help="A recipe whose corpus the generated one is made from."
    ),
    pairs: int = typer.Option(1_000_000, "--pairs", min=1000, help="Pairs in the generated corpus."),
    workdir: Path | None = typer.Option(None, "--workdir", help="Where the corpus and runs go (kept)."),
    overrides: list[str] = Overrides,
    nproc: bool = typer.Option(True, "--nproc/--no-nproc", help="Also measure train --nproc 2."),
    quiet: bool = Quiet,
    as_json: bool = AsJson,
) -> None:
    """Start-up cost of a large corpus: seconds to the first step and peak memory, cold and cached."""
    from workbench.benchmarks.data_bench import bench_data

    resolved = load_recipe(recipe, overrides)
    result = bench_data(recipe, resolved, pairs, workdir, nproc, overrides, _progress(quiet))
    if as_json:
        print(json.dumps(result))
        return
    table = Table(title=f"a {pairs:,}-pair corpus from {recipe}, {result['cores']} cores")
    for column in ("", "to the first step", "peak memory"):
        table.add_column(column, justify="right" if column else "left")
    for name in ("cold", "cached", "resume"):
        row = result[name]
        table.add_row(f"train, {name}", f"{row['seconds_to_first_step']:.1f} s", f"{row['peak_rss_mb']:,} MB")
    table.add_row(
        "prepare alone", f"{result['prepare']['seconds']:.1f} s", f"{result['prepare']['peak_rss_mb']:,} MB"
    )
    console.print(table)
    console.print(
        f"cache entry: {result['cache_bytes'] / 1e6:,.1f} MB, {result['cache_bytes_per_token']} bytes a token"
    )
    if nproc:
        console.print(
            f"private memory: --nproc 2 {result['nproc_2_private_mb']:,} MB, one process "
            f"{result['nproc_1_private_mb']:,} MB ({result['nproc_2_over_1']}x)"
        )


@bench_app.command("profile")
def profile(
    recipe: str = RecipeArgument,
    steps: int = typer.Option(20, "--steps", min=1, help="Profiled training steps."),
    overrides: list[str] = Overrides,
    device: str = device_option("auto"),
    warmup_steps: int = typer.Option(5, "--warmup-steps", min=0, help="Unprofiled steps first."),
    as_json: bool = AsJson,
) -> None:
    """Where the training step's time goes (torch.profiler): ms per step by part, busiest operators."""
    from workbench.benchmarks.profile_train import profile_train

    result = profile_train(load_recipe(recipe, overrides), steps, warmup_steps, device)
    if as_json:
        print(json.dumps(result))
        return
    title = (
        f"training step: {result['step_ms_profiled']:.1f} ms profiled, "
        f"{result['step_ms_unprofiled']:.1f} ms without the profiler ({steps} steps)"
    )
    table = Table(title=title)
    for column in ("part", "ms / step", "share"):
        table.add_column(column, justify="left" if column == "part" else "right")
    for name, ms in result["parts_ms"].items():
        table.add_row(name, f"{ms:.2f}", f"{ms / result['step_ms_profiled']:.0%}")
    console.print(table)
    ops = Table(title="busiest operators (self time)")
    for column in ("operator", "ms / step", "calls / step"):
        ops.add_column(column, justify="left" if column == "operator" else "right")
    for name, op in result["top_ops_self_ms"].items():
        ops.add_row(name, f"{op['ms']:.2f}", f"{op['calls']:g}")
    console.print(ops)
    if "matmul" in result:
        mm = result["matmul"]
        console.print(
            f"matrix products: {mm['ms_per_step']:.1f} ms a step ({mm['share_of_step']:.0%} of it) at "
            f"{mm['flops_per_s'] / 1e9:.0f} GFLOP/s, {mm['fraction_of_peak']:.0%} of the measured "
            f"{mm['peak_dtype']} matmul peak ({mm['peak_flops_per_s'] / 1e9:.0f} GFLOP/s).\n"
            f"MFU {mm['mfu']:.1%} without the profiler; if nothing but the products took time it "
            f"would be at most {mm['mfu_ceiling']:.1%}."
        )


@bench_app.command("ui")
def ui(
    run: Path = typer.Argument(..., help="A run folder with a checkpoint (trained to a validation)."),
    sentences: int = typer.Option(20, "--sentences", min=1, help="Sentences typed into the decode panel."),
    key_interval: float = typer.Option(
        0.08, "--key-interval", min=0.0, help="Seconds between keystrokes (0.08: a quick typist)."
    ),
    train: bool = typer.Option(True, "--train/--no-train", help="Train a copy of the run meanwhile."),
    device: str = device_option("cpu", "The trainer's device: "),
    system: bool = typer.Option(
        True, "--system/--no-system", help="The app reads the machine for the system view, as in use."
    ),
    quiet: bool = Quiet,
    as_json: bool = AsJson,
) -> None:
    """The TUI while a trainer runs: event-loop lag p50/p99 and keystroke-to-translation p50/p95.

    Opens the app headless on a copy of RUN, trains the copy on in its own process, and types
    sentences into the decode panel; the copy is removed at the end.
    """
    from workbench.benchmarks.ui_latency import bench_ui

    result = bench_ui(
        run, sentences, key_interval, train, device=device, system=system, progress=_progress(quiet)
    )
    if as_json:
        print(json.dumps(result))
        return
    trainer = "while training" if result["trainer_running"] else "no trainer running"
    console.print(_table(f"the TUI on {Path(run).name}, {trainer}", result))


def _table(title: str, result: dict[str, Any], skip: tuple[str, ...] = ()) -> Table:
    table = Table(title=title)
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in result.items():
        if key in skip or value is None:
            continue
        table.add_row(key, _format(key, value))
    return table


def _format(key: str, value: Any) -> str:
    if key == "mfu" or key.endswith("fraction"):
        return f"{value:.1%}"
    if key.endswith("flops_per_s"):
        return f"{value / 1e9:,.1f} GFLOP/s"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if "_ms_" in key or key.endswith("_ms"):
        return f"{value:,.1f} ms"
    if key.endswith("flops_per_tgt_token"):
        return f"{value / 1e6:,.1f} MFLOP"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
