"""The `s2s-bench` command line."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from workbench.engine.errors import UserError, out_of_memory, out_of_memory_message
from workbench.engine.recipe import (
    DEFAULT_RECIPE,
    RecipeError,
    builtin_recipes,
    check_precision,
    load_recipe,
    recipe_groups,
)
from workbench.engine.run_folder import CONTROL_COMMANDS, RunFolder, RunFolderError, list_runs
from workbench.jobs.commands import Rendezvous, TrainerCommand
from workbench.jobs.metric_format import metric

from .bench import Precision, bench_app
from .corpora import cache_command, prepare_command, prepare_corpus
from .openmp import release_thread_binding
from .options import (
    AsJsonLines,
    Overrides,
    RunArgument,
    RunsDir,
    device_option,
    print_json_lines,
    run_path,
    runs_dir_flag,
)
from .sweep import compare, sweep, sweep_runner
from .system import system
from .trainer_options import MaxMinutes, MaxSteps, with_trainer_options

# torch is imported by the commands that need it, so that `s2s-bench` draws its first screen at once.

WEB_DRIVER = "textual.drivers.web_driver:WebDriver"  # what textual-serve runs each session's app with
app = typer.Typer(
    help="A terminal workbench for GRU/LSTM attention sequence-to-sequence models.",
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=False,
    invoke_without_command=True,
)
app.add_typer(bench_app, name="bench")
console = Console()
err = Console(stderr=True, soft_wrap=True)  # a message is one line, never cut mid-word

Device = device_option("auto")
DecodeThreads = typer.Option(
    None, "--threads", min=1, help="CPU threads (default: one per idle core, as training.threads = 0)."
)


@app.callback()
def root(ctx: typer.Context, runs_dir: Path | None = RunsDir, precision: str | None = Precision) -> None:
    """With no command: open the workbench (TUI) on the runs folder; --precision is its decode panel's."""
    if ctx.invoked_subcommand is None:
        _open_tui(runs_dir=runs_dir or Path("runs"), precision=precision)


def _option(ctx: typer.Context, name: str, value, default=None):
    """A command's option, else the same option given before the command: `s2s-bench --runs-dir X runs`
    and `s2s-bench runs --runs-dir X` mean the same (the command's own wins where both are given)."""
    if value is None and ctx.parent is not None:
        value = ctx.parent.params.get(name)
    return default if value is None else value


@app.command()
@with_trainer_options
def train(
    ctx: typer.Context,
    recipe: str = typer.Argument(DEFAULT_RECIPE, help="A built-in recipe name or a recipe .toml file."),
    runs_dir: Path | None = RunsDir,
    name: str | None = typer.Option(None, "--name", help="Run folder name (default: recipe name and time)."),
    device: str = Device,
    overrides: list[str] = Overrides,
    max_steps: int | None = MaxSteps,
    max_minutes: float | None = MaxMinutes,
    headless: bool = typer.Option(False, "--headless", help="No dashboard: progress on the terminal."),
    *,
    threads: int | None,
    nproc: int | None,
    rendezvous: Rendezvous,
) -> None:
    """Start a run from a recipe."""
    from workbench.engine.devices import resolve_device

    runs_dir = _option(ctx, "runs_dir", runs_dir, Path("runs"))
    resolved = load_recipe(recipe, overrides)
    resolve_device(device)
    if rendezvous.nnodes > 1 and not name:
        raise UserError(
            "--nnodes: give the run a --name, the same on every node, so that they share its folder"
        )
    # Bad data is reported before a run folder is made; the trainer maps the prepared corpus itself.
    dropped = prepare_corpus(resolved, runs_dir, threads).filtered
    for note in _dropped_notes(dropped, resolved.data.max_chars):
        err.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)
    run = _distributed_run_folder(runs_dir, resolved, name, rendezvous, device)
    _train(TrainerCommand(run, device, max_steps, max_minutes, threads, nproc), rendezvous, headless)


def _dropped_notes(filtered: dict[str, dict[str, int]], max_chars: int) -> list[str]:
    """One line per split and reason of the pairs the corpus reader dropped (train.log has them too)."""
    why = {"empty": "with an empty side", "too_long": f"longer than data.max_chars = {max_chars} characters"}
    return [
        f"{count:,} {split} pair(s) {why.get(reason, reason)} dropped"
        for split, reasons in filtered.items()
        for reason, count in reasons.items()
        if count
    ]


def _distributed_run_folder(runs_dir: Path, recipe, name: str | None, rendezvous, device: str) -> RunFolder:
    """A new run folder, made once for all the processes of a run wherever they were started."""
    from workbench.engine.distributed import Team, topology_from_environment

    topology = topology_from_environment()
    if rendezvous.node_rank > 0:  # node 0 makes it; the runs folder must be one that every node mounts
        return _wait_for_run(runs_dir / name)
    if not topology.distributed:
        return RunFolder.create(runs_dir, recipe, name)
    # Started by the user's own torchrun or srun line: rank 0 makes the folder and tells the others.
    from workbench.engine.devices import resolve_device

    team = Team(topology, resolve_device(device), recipe.training.collective_timeout)
    path = team.share(str(RunFolder.create(runs_dir, recipe, name).path) if team.main else None)
    return _wait_for_run(Path(path))


def _wait_for_run(path: Path, seconds: float = 120.0) -> RunFolder:
    import time

    deadline = time.monotonic() + seconds
    while not (path / "recipe.toml").is_file():
        if time.monotonic() > deadline:
            raise RunFolderError(
                f"{path}: the run folder did not appear on this machine within {seconds:g} s; training on "
                "several machines needs the runs folder on a filesystem they all mount"
            )
        time.sleep(0.5)
    return RunFolder.open(path)


@app.command()
@with_trainer_options
def resume(
    ctx: typer.Context,
    run: Path = RunArgument,
    runs_dir: Path | None = RunsDir,
    device: str = Device,
    max_steps: int | None = MaxSteps,
    max_minutes: float | None = MaxMinutes,
    headless: bool = typer.Option(True, "--headless/--dashboard", help="Progress here, or the dashboard."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress output (background trainers)."),
    *,
    threads: int | None,
    nproc: int | None,
    rendezvous: Rendezvous,
) -> None:
    """Continue a run from its last checkpoint: steps, schedule, optimizer and data order carry on."""
    folder = RunFolder.open(run_path(ctx, run, runs_dir))
    command = TrainerCommand(folder, device, max_steps, max_minutes, threads, nproc, quiet)
    _train(command, rendezvous, headless)


def _train(command: TrainerCommand, rendezvous: Rendezvous, headless: bool) -> None:
    """Train in the background and open the dashboard (one node, on a terminal, not headless); else train
    here, or launch torchrun's processes (which then each train here)."""
    run = command.run
    if rendezvous.nnodes == 1 and not headless and sys.stdout.isatty() and sys.stdin.isatty():
        from workbench.jobs.launch import start_training

        c = command
        start_training(run, c.device, c.max_steps, c.max_minutes, nproc=c.nproc, threads=c.threads)
        _open_tui(runs_dir=run.path.parent, run=run.path)
        return
    if command.nproc is None and rendezvous.nnodes == 1:
        _train_here(command)
        return
    from workbench.jobs.launch import train_distributed

    state = train_distributed(command, rendezvous)
    status = run.status()
    if state == "failed":
        err.print(
            f"[bold red]error:[/] {escape(str(status.get('reason', 'a process failed')))}", highlight=False
        )
        raise typer.Exit(1)
    if state == "stopped":  # rank 0 has said how far it got
        _say_how_to_resume(run)
        raise typer.Exit(130)


def _train_here(command: TrainerCommand) -> None:
    from workbench.engine.distributed import topology_from_environment
    from workbench.engine.session import TrainingSession

    from .display import TrainingDisplay

    run = command.run
    quiet = command.quiet or not topology_from_environment().main  # rank 0 speaks for a distributed run
    with TrainingDisplay(console, run, quiet) as display:
        session = TrainingSession(run, command.device, on_event=display.event, threads=command.threads)
        state = session.train(max_steps=command.max_steps, max_minutes=command.max_minutes)
    status = run.status()
    if not quiet:
        console.print(f"{state}: {status.get('reason', '')} (step {status.get('step')})")
        console.print(str(run.path))
    if state == "failed":
        raise typer.Exit(1)
    if state == "stopped":  # interrupted or stopped: not a success for a script, and it can go on
        _say_how_to_resume(run)
        raise typer.Exit(130)


def _say_how_to_resume(run: RunFolder) -> None:
    hint = f"resume it: s2s-bench resume {run.name}{runs_dir_flag(run.path.parent)}"
    err.print(hint, highlight=False, markup=False)


@app.command()
def decode(
    ctx: typer.Context,
    run: Path = RunArgument,
    runs_dir: Path | None = RunsDir,
    beam: int | None = typer.Option(None, "--beam", min=1, help="Beam size (1: greedy; default: recipe)."),
    n_best: int = typer.Option(1, "--n-best", min=1, help="Print the N best translations with scores."),
    attention: bool = typer.Option(False, "--attention", help="Print the alignment as a coloured grid."),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best | last | averaged"),
    precision: str | None = Precision,
    device: str = device_option("cpu"),
    threads: int | None = DecodeThreads,
) -> None:
    """Translate standard input, one sentence a line, to standard output."""
    from workbench.engine.translator import Translator

    run = run_path(ctx, run, runs_dir)
    translator = Translator.from_run(run, checkpoint, device, _option(ctx, "precision", precision))
    _cpu_threads(translator, threads)
    beam_size = beam or translator.decoding.beam_size
    if n_best > beam_size:
        raise RecipeError(f"--n-best {n_best} needs --beam of at least {n_best}")
    out = Console(highlight=False, soft_wrap=True)
    interactive = sys.stdin.isatty()
    batch: list[str] = []
    first = 1  # the line number of batch[0]
    try:
        for line in _stdin_lines(interactive):
            batch.append(line)
            if interactive or len(batch) == 64:
                _print_translations(out, translator, batch, first, beam_size, n_best, attention)
                first, batch = first + len(batch), []
    except UserError:  # the lines before a bad one are translated before its error
        if batch:
            _print_translations(out, translator, batch, first, beam_size, n_best, attention)
        raise
    if batch:
        _print_translations(out, translator, batch, first, beam_size, n_best, attention)


def _cpu_threads(translator, threads: int | None) -> None:
    """decode's and eval's intra-op threads on the CPU: as asked, or one per idle core. torch's own
    default, one per core, stalls beside a training: each of its parallel regions waits for the thread
    on the training's busy core."""
    import torch

    from workbench.engine.devices import cpu_threads

    if translator.device.type == "cpu":
        torch.set_num_threads(cpu_threads(threads or 0))


def _stdin_lines(interactive: bool) -> Iterator[str]:
    """Standard input's lines, read as they come on a terminal and all at once from a pipe."""
    stream = sys.stdin.buffer
    return _utf8_lines(
        iter(stream.readline, b"") if interactive else stream.read().splitlines(), "standard input"
    )


def _utf8_lines(lines: Iterable[bytes], where: str) -> Iterator[str]:
    """Lines as UTF-8 text without their ends (and without a byte-order mark): a line that is not UTF-8
    stops with a clear error naming it, never a traceback or a guessed character."""
    for number, raw in enumerate(lines, 1):
        try:
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise UserError(f"{where}, line {number}: not UTF-8 text (byte {exc.start})") from None


def _print_translations(
    out: Console, translator, lines: list[str], first: int, beam: int, n_best: int, attention: bool
) -> None:
    from .display import attention_grid

    for number, nbest in enumerate(translator.translate(lines, beam, n_best, attention=attention), first):
        if nbest[0].dropped_pieces:
            err.print(
                f"note: line {number}: {_cut_notice(nbest[0])}", highlight=False, markup=False, soft_wrap=True
            )
        for t in nbest:
            print(f"{t.score:.4f}\t{t.text}" if n_best > 1 else t.text, flush=True)
        if attention:
            out.print(attention_grid(nbest[0], color=not out.no_color))


def _cut_notice(translation) -> str:
    """What the input cap (decoding.max_input_pieces) did to a source, for decode's note."""
    kept = len(translation.src_pieces)
    return (
        f"{kept + translation.dropped_pieces:,} pieces long: translated its first {kept:,} "
        "(decoding.max_input_pieces)"
    )


@app.command("eval")
def evaluate(
    ctx: typer.Context,
    run: Path = RunArgument,
    runs_dir: Path | None = RunsDir,
    src: Path = typer.Option(..., "--src", help="Source sentences, one a line."),
    ref: Path = typer.Option(..., "--ref", help="Reference translations, one a line."),
    beam: int | None = typer.Option(None, "--beam", min=1, help="Beam size (default: recipe)."),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best | last | averaged"),
    as_json: bool = typer.Option(False, "--json", help="One JSON object instead of a table."),
    precision: str | None = Precision,
    device: str = device_option("cpu"),
    threads: int | None = DecodeThreads,
) -> None:
    """Score a run on a test set with sacreBLEU (BLEU and chrF, with signatures)."""
    from workbench.engine.evaluation import teacher_forced
    from workbench.engine.translator import Translator
    from workbench.engine.validation import encode_pairs, evaluate

    sources, references = _read_lines(src), _read_lines(ref)
    if len(sources) != len(references):
        raise UserError(f"{src} has {len(sources)} lines but {ref} has {len(references)}")
    if not sources:
        raise UserError(f"{src}: no sentences to score (the file is empty)")
    folder = RunFolder.open(run_path(ctx, run, runs_dir))
    translator = Translator.from_run(folder, checkpoint, device, _option(ctx, "precision", precision))
    _cpu_threads(translator, threads)
    beam_size = beam or translator.decoding.beam_size
    # Loss and token accuracy with each reference fed as the decoder's input (int8 weights cannot run that
    # pass: it takes the checkpoint in fp32). Pairs with a side that tokenizes to nothing are left out.
    model = translator.model
    if translator.decoding.precision == "int8":
        model = Translator.from_run(folder, checkpoint, str(translator.device), "fp32").model
    encoded = encode_pairs(translator.tokenizers, sources, references, translator.decoding.max_input_pieces)
    forced = teacher_forced(model, encoded) if len(encoded) else None
    result = evaluate(translator, sources, references, beam_size, folder.recipe().data.tgt, forced)
    cut = sum(1 for t in result.translations if t.dropped_pieces)
    if cut:
        err.print(
            f"note: {cut} of {len(sources)} sources were longer than decoding.max_input_pieces "
            f"({translator.decoding.max_input_pieces}): each was translated up to that many pieces",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    scores, accuracy = result.scores, result.accuracy
    if as_json:
        print(
            json.dumps(
                {
                    **scores.as_dict(),
                    "accuracy": None if accuracy is None else round(accuracy, 4),
                    "loss": None if result.loss is None else round(result.loss, 5),
                    "bleu_signature": scores.bleu_signature,
                    "chrf_signature": scores.chrf_signature,
                    "sentences": len(sources),
                    "beam": beam_size,
                    "precision": translator.decoding.precision,
                    "seconds": round(result.seconds, 2),
                }
            )
        )
        return
    table = Table(title=f"{run} on {src.name}")
    table.add_column("metric")
    table.add_column("score", justify="right")
    table.add_column("signature")
    table.add_row("BLEU", metric("bleu", scores.bleu), scores.bleu_signature)
    table.add_row("chrF", metric("chrf", scores.chrf), scores.chrf_signature)
    table.add_row("exact", metric("exact", scores.exact), "")
    table.add_row("accuracy", metric("accuracy", accuracy), "tokens, teacher-forced")
    console.print(table)
    console.print(f"{len(sources)} sentences, beam {beam_size}, {result.seconds:.1f} s")


def _read_lines(path: Path) -> list[str]:
    try:  # lines end at \n, \r\n or \r only, as `wc -l` and decode's standard input count them
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except OSError as exc:  # a folder, no permission...
        raise UserError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    return list(_utf8_lines(data.splitlines(), str(path)))


@app.command()
def runs(ctx: typer.Context, runs_dir: Path | None = RunsDir, as_json: bool = AsJsonLines) -> None:
    """List the runs in the runs folder."""
    from .display import run_listing, runs_table

    runs_dir = _option(ctx, "runs_dir", runs_dir, Path("runs"))
    found = list_runs(runs_dir)
    if as_json:
        print_json_lines(run_listing(run) for run in found)
        return
    if not found:
        console.print(f"no runs in {runs_dir}")
        return
    console.print(runs_table(found, console.width), crop=False)


@app.command()
def recipes(as_json: bool = AsJsonLines) -> None:
    """List the built-in recipes."""
    groups = recipe_groups(builtin_recipes())
    if as_json:
        print_json_lines(
            {"name": name, "group": title, "description": load_recipe(path).description, "path": str(path)}
            for title, group in groups
            for name, path in group.items()
        )
        return
    table = Table(title="built-in recipes")
    table.add_column("name", no_wrap=True)  # what `train` takes: never cut or folded
    table.add_column("description")
    for index, (title, group) in enumerate(groups):
        if len(groups) > 1:  # a title row over each group, a line between groups
            table.add_row(Text(title or "other recipes", style="bold"), "")
        for name, path in group.items():
            table.add_row(name, load_recipe(path).description)
        if index < len(groups) - 1:
            table.add_section()
    console.print(table)


@app.command()
def control(
    ctx: typer.Context,
    run: Path = typer.Argument(
        ..., help="A run (name or folder): its trainer is running, or it is queued in a sweep."
    ),
    command: str = typer.Argument(..., help="pause | resume | stop | checkpoint | cancel (a queued run)"),
    runs_dir: Path | None = RunsDir,
) -> None:
    """Send a control message to a running trainer, or cancel a sweep's queued run."""
    folder = RunFolder.open(run_path(ctx, run, runs_dir))
    if command == "cancel":
        info = folder.sweep_info()
        if info is None:
            raise RunFolderError(f"{run}: not a run of a sweep (cancel takes a queued run out of its sweep)")
        from workbench.jobs.sweep_queue import SweepQueue

        SweepQueue.open(folder.path.parent, info["sweep"]).cancel(folder.name)
        console.print(f"cancelled {run}")
        return
    if command not in CONTROL_COMMANDS:
        raise RunFolderError(f"unknown command {command!r}: one of {', '.join(CONTROL_COMMANDS)}, cancel")
    if not folder.trainer_alive():
        state = folder.status()["state"]
        where = runs_dir_flag(folder.path.parent)
        hint = f"; cancel it with: s2s-bench control {folder.name} cancel{where}" if state == "queued" else ""
        raise RunFolderError(f"{run}: no trainer is running this run (state: {state}){hint}")
    folder.send_control(command)
    console.print(f"sent {command} to {run}")


app.command()(sweep)
app.command("prepare")(prepare_command)
app.command("cache")(cache_command)
app.command()(compare)
app.command()(system)
app.command("sweep-runner", hidden=True)(sweep_runner)


@app.command()
def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback: this machine)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
    runs_dir: Path | None = RunsDir,
    max_sessions: int = typer.Option(3, "--max-sessions", min=1, help="Browser tabs served at once."),
    precision: str | None = Precision,
) -> None:
    """Serve the workbench to a browser: every screen and key, behind a random access token in the URL."""
    from workbench.serve.server import WorkbenchServer, is_loopback

    precision = _option(ctx, "precision", precision)
    if precision is not None:
        check_precision(precision)
    runs_dir = _option(ctx, "runs_dir", runs_dir, Path("runs"))
    server = WorkbenchServer(runs_dir, host, port, max_sessions=max_sessions, precision=precision)
    if not is_loopback(host):
        err.print(
            f"[bold yellow]warning:[/] serving on {escape(host)}, not a loopback address: whoever reaches "
            "this port and holds the URL controls the workbench (starts trainings, deletes runs, reads "
            f"files). Prefer the default and `ssh -L {port}:localhost:{port} HOST`.",
            highlight=False,
        )
    say = {"highlight": False, "markup": False, "soft_wrap": True}  # a path or [::1] is not markup
    console.print(f"s2s-bench serves {runs_dir} on {server.url}", **say)
    console.print(
        f"Open that URL (it holds the access token); from a laptop: ssh -L {port}:localhost:{port} "
        "THIS-MACHINE, then open it there. Ctrl+C stops serving; trainers go on.",
        **say,
    )
    try:
        server.serve()
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


@app.command()
def replay(
    ctx: typer.Context,
    run: Path = RunArgument,
    precision: str | None = Precision,
    runs_dir: Path | None = RunsDir,
) -> None:
    """Open a saved run in the workbench: curves, samples and alignments over time."""
    folder = RunFolder.open(run_path(ctx, run, runs_dir))
    precision = _option(ctx, "precision", precision)
    _open_tui(runs_dir=folder.path.parent, run=folder.path, replay=True, precision=precision)


def _open_tui(
    runs_dir: Path,
    run: Path | None = None,
    replay: bool = False,
    precision: str | None = None,
    mode: str | None = None,
) -> None:
    if precision is not None:
        check_precision(precision)
    served = os.environ.get("TEXTUAL_DRIVER") == WEB_DRIVER  # started by `serve`: the browser is its terminal
    if not served and not (sys.stdin.isatty() and sys.stdout.isatty()):  # else it would paint into a file
        raise UserError(
            "the workbench needs a terminal, and standard input or output is not one; without one use "
            "`s2s-bench runs`, `train --headless`, `decode`, `eval` or `system --once`"
        )
    from workbench.tui.app import run_app

    recipe = DEFAULT_RECIPE if run is None else None
    run_app(runs_dir=runs_dir, recipe=recipe, run=run, replay=replay, precision=precision, mode=mode)


def main() -> None:
    """Entry point: user errors print one line and exit with code 2, never a traceback."""
    dropped = release_thread_binding()  # before any command imports torch (see openmp.py)
    if dropped:
        err.print(
            f"note: ignoring {', '.join(dropped)}: OpenMP thread binding puts torch's threads on one "
            "core; s2s-bench sets its own thread count (training.threads)",
            highlight=False,
        )
    try:
        app()
    except UserError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(2)
    except Exception as exc:
        if not out_of_memory(exc):
            raise  # a bug: its traceback is what a report needs
        err.print(f"[bold red]error:[/] {escape(out_of_memory_message(exc))}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
