"""Starting a trainer, a sweep's queue runner or torchrun's processes, so that they outlive the terminal."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from typing import Any

from workbench.engine.run_folder import RunFolder
from workbench.jobs.commands import Rendezvous, TrainerCommand, runner_argv
from workbench.jobs.sweep_queue import SweepQueue


def start_training(
    run: RunFolder,
    device: str = "auto",
    max_steps: int | None = None,
    max_minutes: float | None = None,
    nproc: int | None = None,
    threads: int | None = None,
) -> subprocess.Popen:
    """Train `run` in a background process in a new session (closing the TUI or SSH does not stop it);
    with nproc, that process launches torchrun's processes."""
    command = TrainerCommand(run, device, max_steps, max_minutes, threads, nproc, quiet=True)
    with open(run.path / "console.log", "ab") as console:
        return _detached(command.argv(), console)


def start_runner(queue: SweepQueue) -> subprocess.Popen:
    """Run a sweep's queue in a background process in a new session; it writes to the queue's runner.log."""
    with open(queue.log_path, "ab") as log:
        return _detached(runner_argv(queue.runs_dir, queue.name), log)


def _detached(command: list[str], output) -> subprocess.Popen:
    return subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
    )


def train_distributed(command: TrainerCommand, rendezvous: Rendezvous = Rendezvous()) -> str:
    """Train `command.run` in `command.nproc` processes on this machine through torchrun
    (torch.distributed.run), and return how it ended: "finished", "stopped" or "failed" (then the failing
    rank's message is in the run's status). torchrun's agent stops every process when one fails, and on
    Ctrl-C or SIGTERM."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args
    from torch.distributed.run import run as torchrun

    from workbench.engine.devices import resolve_device, usable_cpus

    run, nproc = command.run, command.nproc or 1
    if resolve_device(command.device).type == "cuda":
        check_gpu_count(nproc)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, len(usable_cpus()) // nproc)))
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # failures: said below
    try:
        torchrun(parse_args(command.torchrun_arguments(rendezvous)))
    except ChildFailedError as exc:
        message = failure_message(exc.failures)
        if rendezvous.node_rank == 0:
            run.log(f"failed: {message}")
            run.write_status("failed", reason=message)
        return "failed"
    except SignalException as exc:
        run.log(f"stopped: torchrun received signal {exc.sigval.name}")
        return "stopped"
    return run.status().get("state", "finished")


def check_gpu_count(nproc: int) -> None:
    """Refuse, before any process starts, more processes than this machine shows GPUs (one GPU each)."""
    import torch

    from workbench.engine.distributed import DistributedError, visible_devices_note

    visible = torch.cuda.device_count()
    if nproc > visible:
        raise DistributedError(
            f"--nproc {nproc}: one GPU per process, and this machine shows {visible} GPU(s)"
            f"{visible_devices_note()}; use --nproc {visible} or fewer, or --device cpu"
        )


def failure_message(failures: dict[int, Any]) -> str:
    """The failing rank's message, in words: the first failure, or one of its own accord within seconds of
    it (a killed process says nothing itself, and the others say they lost contact with it), before one that
    torchrun's agent stopped. A process that stalled is killed by torchrun later on, so the timeout its peers
    saw comes first."""
    first = min(f.timestamp for f in failures.values())
    own = {
        r: f for r, f in failures.items() if not f.error_file_data.get("peer") and f.timestamp <= first + 2
    }
    own = own or failures
    # torchrun's agent stops the survivors of a failure with SIGTERM: the rank that died otherwise caused it
    cause = {r: f for r, f in own.items() if f.exitcode != -signal.SIGTERM} or own
    rank, failure = min(cause.items(), key=lambda item: (item[1].timestamp, item[0]))
    if "peer" in failure.error_file_data:  # written by the trainer (distributed.record_failure)
        return str(failure.message)
    if failure.exitcode < 0:
        return f"rank {rank}: the process was killed by signal {failure.signal_name()}"
    return f"rank {rank}: the process exited with code {failure.exitcode}"
