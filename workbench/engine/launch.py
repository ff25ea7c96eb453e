"""Starting a trainer, a sweep's queue runner or torchrun's processes, so that they outlive the terminal."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from .run_folder import RunFolder
from .sweep_queue import SweepQueue


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
    command = [sys.executable, "-m", "workbench", "resume", str(run.path), "--headless", "--quiet"]
    command += ["--device", device]
    if nproc is not None:
        command += ["--nproc", str(nproc)]
    if threads is not None:
        command += ["--threads", str(threads)]
    if max_steps is not None:
        command += ["--max-steps", str(max_steps)]
    if max_minutes is not None:
        command += ["--max-minutes", str(max_minutes)]
    with open(run.path / "console.log", "ab") as console:
        return _detached(command, console)


def start_runner(queue: SweepQueue) -> subprocess.Popen:
    """Run a sweep's queue in a background process in a new session; it writes to the queue's runner.log."""
    command = [
        sys.executable,
        "-m",
        "workbench",
        "sweep-runner",
        queue.name,
        "--runs-dir",
        str(queue.runs_dir),
    ]
    with open(queue.log_path, "ab") as log:
        return _detached(command, log)


def _detached(command: list[str], output) -> subprocess.Popen:
    return subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
    )


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


def train_distributed(
    run: RunFolder,
    nproc: int,
    device: str = "auto",
    max_steps: int | None = None,
    max_minutes: float | None = None,
    rendezvous: Rendezvous = Rendezvous(),
    quiet: bool = False,
    threads: int | None = None,
) -> str:
    """Train `run` in `nproc` processes on this machine through torchrun (torch.distributed.run), and
    return how it ended: "finished", "stopped" or "failed" (then the failing rank's message is in the run's
    status). torchrun's agent stops every process when one fails, and on Ctrl-C or SIGTERM."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args
    from torch.distributed.run import run as torchrun

    from .devices import resolve_device, usable_cpus

    if resolve_device(device).type == "cuda":
        check_gpu_count(nproc)
    worker = ["-m", "workbench", "resume", str(run.path), "--headless", "--device", device]
    if quiet:
        worker.append("--quiet")
    if threads is not None:
        worker += ["--threads", str(threads)]
    if max_steps is not None:
        worker += ["--max-steps", str(max_steps)]
    if max_minutes is not None:
        worker += ["--max-minutes", str(max_minutes)]
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, len(usable_cpus()) // nproc)))
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # failures: said below
    options = ["--nproc-per-node", str(nproc), "--max-restarts", "0", "--monitor-interval", "0.2"]
    try:
        torchrun(parse_args(options + rendezvous.torchrun_options(run) + worker))
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

    from .distributed import DistributedError, visible_devices_note

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
