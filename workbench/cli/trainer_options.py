"""The options of the commands that train (`train`, `resume`): limits, threads, and several processes
through torchrun, whose multi-node options are passed through as a `Rendezvous`."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import typer

from workbench.jobs.commands import Rendezvous

MaxSteps = typer.Option(None, "--max-steps", min=1, help="Train until this step.")
MaxMinutes = typer.Option(None, "--max-minutes", min=0.01, help="Train at most this long.")

# name, type, option: each added to a training command by `with_trainer_options`
TRAINER_OPTIONS: tuple[tuple[str, Any, Any], ...] = (
    (
        "threads",
        int | None,
        typer.Option(
            None,
            "--threads",
            min=1,
            help="CPU threads for this process (overrides training.threads, not recipe.toml).",
        ),
    ),
    (
        "nproc",
        int | None,
        typer.Option(
            None,
            "--nproc",
            min=1,
            help="Processes on this machine, through torchrun: one per GPU, or N on the CPU.",
        ),
    ),
    ("nnodes", int, typer.Option(1, "--nnodes", min=1, help="Machines taking part (torchrun --nnodes).")),
    (
        "node_rank",
        int,
        typer.Option(0, "--node-rank", min=0, help="This machine's rank among them (torchrun)."),
    ),
    (
        "master_addr",
        str | None,
        typer.Option(None, "--master-addr", help="Address of the node of rank 0 (torchrun)."),
    ),
    (
        "master_port",
        int | None,
        typer.Option(None, "--master-port", help="A free port on that node (torchrun)."),
    ),
    (
        "rdzv_endpoint",
        str | None,
        typer.Option(None, "--rdzv-endpoint", help="host:port of a c10d rendezvous (torchrun)."),
    ),
)
RENDEZVOUS_FIELDS = ("nnodes", "node_rank", "master_addr", "master_port", "rdzv_endpoint")


def with_trainer_options(command: Callable[..., None]) -> Callable[..., None]:
    """`command` with --threads, --nproc and torchrun's node options on its command line (after its own);
    it takes `threads`, `nproc` and `rendezvous` (a Rendezvous of the node options)."""
    given = {"rendezvous", *(name for name, _, _ in TRAINER_OPTIONS)}
    own = [p for p in inspect.signature(command).parameters.values() if p.name not in given]
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind)
        for name, kind, option in TRAINER_OPTIONS
    ]

    @functools.wraps(command)
    def wrapper(**values: Any) -> None:
        rendezvous = Rendezvous(**{name: values.pop(name) for name in RENDEZVOUS_FIELDS})
        command(**values, rendezvous=rendezvous)

    wrapper.__signature__ = inspect.Signature([*own, *added])  # type: ignore[attr-defined]  # what typer reads
    return wrapper
