"""The command lines the job system starts: a trainer (`resume`), a sweep's queue runner, and torchrun's
options; and the `train` line a run started from the workbench stands for. Built here only, so that they
always say what the CLI's `train`, `resume` and `sweep-runner` read."""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from workbench.engine.run_folder import RunFolder


@dataclass(frozen=True)
class TrainerCommand:
    """`resume RUN --headless ...`: what a background trainer, and each of torchrun's processes, runs.
    With `nproc`, the process it starts launches torchrun's processes in turn."""

    run: RunFolder
    device: str = "auto"
    max_steps: int | None = None
    max_minutes: float | None = None
    threads: int | None = None
    nproc: int | None = None
    quiet: bool = False

    def arguments(self) -> list[str]:
        """What follows the Python interpreter: `-m workbench resume ...`."""
        arguments = ["-m", "workbench", "resume", str(self.run.path), "--headless", "--device", self.device]
        if self.quiet:
            arguments.append("--quiet")
        for option, value in (
            ("--nproc", self.nproc),
            ("--threads", self.threads),
            ("--max-steps", self.max_steps),
            ("--max-minutes", self.max_minutes),
        ):
            if value is not None:
                arguments += [option, str(value)]
        return arguments

    def argv(self) -> list[str]:
        """The whole command line, run by this process's Python."""
        return [sys.executable, *self.arguments()]

    def torchrun_arguments(self, rendezvous: Rendezvous) -> list[str]:
        """torchrun's command line (after `torchrun`): `nproc` processes on this node, each running this
        command without `--nproc`; no restarts, so that a failure ends the run and says why."""
        options = [
            "--nproc-per-node",
            str(self.nproc or 1),
            "--max-restarts",
            "0",
            "--monitor-interval",
            "0.2",
        ]
        worker = replace(self, nproc=None).arguments()
        return options + rendezvous.torchrun_options(self.run) + worker


@dataclass(frozen=True)
class TrainCommand:
    """`s2s-bench train RECIPE --set ... --name ...`: a run started from a recipe. The workbench shows this
    line and starts the run from it: `recipe` and `runs_dir` as typed (a built-in name or a path)."""

    recipe: str
    overrides: tuple[str, ...] = ()
    name: str | None = None
    runs_dir: str = "runs"
    device: str = "auto"
    max_steps: int | None = None
    max_minutes: float | None = None
    threads: int | None = None
    nproc: int | None = None

    def arguments(self) -> list[str]:
        """What follows `s2s-bench`: `train RECIPE` and the options that differ from their defaults."""
        arguments = ["train", self.recipe]
        for option, value in (
            ("--runs-dir", None if self.runs_dir == "runs" else self.runs_dir),
            ("--name", self.name),
            ("--device", None if self.device == "auto" else self.device),
            ("--nproc", self.nproc),
            ("--threads", self.threads),
            ("--max-steps", self.max_steps),
            ("--max-minutes", self.max_minutes),
        ):
            if value is not None:
                arguments += [option, f"{value:g}" if isinstance(value, float) else str(value)]
        for override in self.overrides:
            arguments += ["--set", override]
        return arguments

    def shell_line(self) -> str:
        """The line a user would type: `s2s-bench train ...`, quoted for a POSIX shell."""
        return shlex.join(["s2s-bench", *self.arguments()])

    def trainer(self, run: RunFolder) -> TrainerCommand:
        """The background trainer of `run`, the folder this command made: its device, processes and limits."""
        return TrainerCommand(run, self.device, self.max_steps, self.max_minutes, self.threads, self.nproc)


def runner_argv(runs_dir: Path, name: str) -> list[str]:
    """The sweep runner's command line: `sweep-runner NAME --runs-dir DIR`."""
    return [sys.executable, "-m", "workbench", "sweep-runner", name, "--runs-dir", str(runs_dir)]


@dataclass(frozen=True)
class Rendezvous:
    """How the nodes of a distributed run find each other: torchrun's own options, passed through."""

    nnodes: int = 1
    node_rank: int = 0
    master_addr: str | None = None
    master_port: int | None = None
    rdzv_endpoint: str | None = None

    def torchrun_options(self, run: RunFolder) -> list[str]:
        options = ["--nnodes", str(self.nnodes), "--node-rank", str(self.node_rank)]
        if self.rdzv_endpoint:
            return options + [
                "--rdzv-backend",
                "c10d",
                "--rdzv-endpoint",
                self.rdzv_endpoint,
                "--rdzv-id",
                run.name,
            ]
        if self.master_addr or self.nnodes > 1:
            options += ["--master-addr", self.master_addr or "127.0.0.1"]
            return options + ["--master-port", str(self.master_port or 29500)]
        return options + ["--standalone"]  # one machine: a free port of its own, so runs never collide
