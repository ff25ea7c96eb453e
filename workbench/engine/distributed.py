"""Several training processes on one run: torch.distributed set-up, shared decisions, failure reports.

torchrun (or `srun`) starts one process per GPU, or N on a CPU; each reads its rank from the usual
environment variables. Gradients travel through DistributedDataParallel on the training backend (nccl
on CUDA, gloo on a CPU); the decisions every process must take together (stop, pause, checkpoint,
early stopping, the learning rate) travel over a second, gloo group on the CPU, so that they never
wait on a GPU stream. Rank 0 alone writes the run folder.

A peer that dies is first seen by that gloo group, which every step uses (`Team.agree`): the survivors
raise "connection closed by peer" and say so in one line. A survivor that waits on the GPU for the
gradient all-reduce instead is freed by NCCL's watchdog after `training.collective_timeout`; in
torch's "clean up only" mode the watchdog aborts the communicator and leaves the process alive, so the
next collective raises and the same one-line report follows (torchrun's agent exports the mode that
kills the process with SIGABRT instead, and no rank is named).
"""

from __future__ import annotations

import ctypes
import datetime
import gc
import json
import os
import re
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from workbench.engine.errors import UserError

# Control codes rank 0 sends with every step's flags (see `Team.agree`).
COMMANDS = ("", "checkpoint", "pause", "resume", "stop")
# ProcessGroupNCCL's TORCH_NCCL_ASYNC_ERROR_HANDLING: 2 aborts the failed communicator and lets the
# process raise; torchrun's agent sets 1 (abort the process) and torch's own default is 3 (the same,
# without clean-up).
NCCL_CLEAN_UP_ONLY = "2"


class DistributedError(UserError):
    """A distributed set-up that cannot work (missing variables, a rank that lost its peers...)."""


@dataclass(frozen=True)
class Topology:
    """Where this process stands among the processes of one run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    launched: bool = False  # started by torchrun or srun: a process group, even of one process
    own_gpu: bool = False  # srun bound one GPU to this task alone (--gpus-per-task=1)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1 or self.launched

    @property
    def main(self) -> bool:
        return self.rank == 0


def topology_from_environment(env: dict[str, str] | None = None) -> Topology:
    """torchrun's RANK / WORLD_SIZE / LOCAL_RANK / LOCAL_WORLD_SIZE, else the variables `srun` sets for
    each task of a job step of several (SLURM_PROCID, SLURM_STEP_NUM_TASKS, SLURM_LOCALID,
    SLURM_STEP_TASKS_PER_NODE; MASTER_ADDR and MASTER_PORT set by the user), else one process.

    An sbatch script exports SLURM_PROCID=0 and the job's SLURM_NTASKS to every command it runs; only
    srun sets the SLURM_STEP_* variables, so a command of the script itself trains alone.
    """
    env = os.environ if env is None else env
    own_gpu = False
    if "RANK" in env and "WORLD_SIZE" in env:
        keys = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")
        local_world = env.get("LOCAL_WORLD_SIZE", "1")
    elif "SLURM_PROCID" in env and int(env.get("SLURM_STEP_NUM_TASKS", "1")) > 1:
        keys = ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_LOCALID", "SLURM_STEP_TASKS_PER_NODE")
        for name in ("MASTER_ADDR", "MASTER_PORT"):
            if name not in env:
                raise DistributedError(
                    f"a SLURM job step of several tasks needs {name} set (the first node's address and a "
                    "free port), or start each node with torchrun (docs/distributed.md)"
                )
        local_world = _tasks_on_this_node(env.get(keys[3], "1"), env.get("SLURM_NODEID", "0"))
        visible = env.get("CUDA_VISIBLE_DEVICES", "")
        own_gpu = bool(visible) and "," not in visible
    else:
        return Topology()
    try:
        rank, world = int(env[keys[0]]), int(env[keys[1]])
        local_rank = int(env.get(keys[2], "0"))
        local = int(local_world)
    except ValueError as exc:
        raise DistributedError(f"{', '.join(keys)}: not whole numbers ({exc})") from None
    if not 0 <= rank < world:
        raise DistributedError(f"{keys[0]}={rank} is not a rank of {keys[1]}={world}")
    return Topology(rank, world, local_rank, max(local, 1), launched=True, own_gpu=own_gpu)


def _tasks_on_this_node(tasks_per_node: str, node: str) -> str:
    """This node's count in SLURM's compressed list of tasks per node ("2(x3),1": 2, 2, 2, 1)."""
    counts = []
    for part in tasks_per_node.split(","):
        count, _, times = part.partition("(x")
        counts += [count] * (int(times.rstrip(")")) if times.rstrip(")").isdigit() else 1)
    index = int(node) if node.isdigit() else 0
    return counts[index] if index < len(counts) else counts[0]


def local_gpu(topology: Topology, visible: int) -> int:
    """The index, among the GPUs this process sees, of the one it trains on.

    Its local rank where the process sees a GPU for each process of its machine; the only one where srun
    bound one GPU to each task (each then sees one while SLURM_LOCALID counts on). Any other count would
    put two processes on one GPU, or none on a GPU: an error that names the counts.
    """
    if topology.local_rank < visible and topology.local_world_size <= visible:
        return topology.local_rank
    if visible == 1 and topology.own_gpu:
        return 0
    raise DistributedError(
        f"{topology.local_world_size} training processes on this machine need a GPU each, but this "
        f"process (local rank {topology.local_rank}) sees {visible} GPU(s){visible_devices_note()}: start "
        f"at most {visible} per machine, or bind one GPU to each task (srun --gpus-per-task=1)"
    )


def visible_devices_note() -> str:
    """" (CUDA_VISIBLE_DEVICES=...)" where it is set: why a process may see fewer GPUs than there are."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return f" (CUDA_VISIBLE_DEVICES={visible})" if visible else ""


class Team:
    """The process group of one run, seen from one of its processes."""

    def __init__(self, topology: Topology, device: torch.device, timeout_s: float):
        self.topology = topology
        self.timeout_s = timeout_s
        if not topology.distributed:
            self.control = None
            return
        os.environ.setdefault("RANK", str(topology.rank))
        os.environ.setdefault("WORLD_SIZE", str(topology.world_size))
        timeout = datetime.timedelta(seconds=timeout_s)
        cuda = device.type == "cuda"
        if cuda:  # read as the NCCL group is created; see the module's docstring
            os.environ["TORCH_NCCL_ASYNC_ERROR_HANDLING"] = NCCL_CLEAN_UP_ONLY
        if not dist.is_initialized():
            dist.init_process_group("cpu:gloo,cuda:nccl" if cuda else "gloo", timeout=timeout)
        self.control = dist.new_group(backend="gloo", timeout=timeout) if cuda else None

    @property
    def main(self) -> bool:
        return self.topology.main

    @property
    def size(self) -> int:
        return self.topology.world_size

    def agree(self, stop_here: bool, command: str = "", limit: bool = False) -> tuple[bool, str, bool]:
        """Every process's stop request, rank 0's control command and rank 0's time limit, for all.

        One small all-reduce (maximum) on the CPU group: any process's signal stops every process at
        the same step; what only rank 0 reads (the control folder, the clock) is rank 0's to say.
        """
        if not self.topology.distributed:
            return stop_here, command, limit
        flags = torch.tensor(
            [int(stop_here), COMMANDS.index(command) if self.main else 0, int(limit) if self.main else 0]
        )
        self._collective(dist.all_reduce, flags, op=dist.ReduceOp.MAX, group=self.control)
        return bool(flags[0]), COMMANDS[int(flags[1])], bool(flags[2])

    def share(self, value: Any) -> Any:
        """Rank 0's value (any JSON-able object), on every process."""
        if not self.topology.distributed:
            return value
        box = [value if self.main else None]
        self._collective(dist.broadcast_object_list, box, src=0, group=self.control)
        return box[0]

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """The element-wise sum of a tensor over every process (on the training backend)."""
        if self.topology.distributed:
            self._collective(dist.all_reduce, value)
        return value

    def wait_for_all(self) -> None:
        if self.topology.distributed:
            self._collective(dist.barrier, group=self.control)

    def _collective(self, operation, *args: Any, **kwargs: Any) -> None:
        try:
            operation(*args, **kwargs)
        except (RuntimeError, dist.DistBackendError) as exc:
            if own_failure(exc):
                raise
            raise peer_error(exc, self.timeout_s) from None

    def close(self) -> None:
        if self.topology.distributed and dist.is_initialized():
            gc.collect()  # what still refers to the groups (a DistributedDataParallel) goes before them
            dist.destroy_process_group()


# The process that started this one (torchrun's agent, srun's step daemon...), read as this module loads.
LAUNCHER = os.getppid()


def follow_launcher(launcher_gone: Callable[[], None]) -> None:
    """Have the kernel send this process SIGTERM when the process that started it dies (Linux's
    PR_SET_PDEATHSIG). torchrun's agent stops its workers when it is stopped; SIGKILLed, it cannot, and
    they would train on as orphans. With the signal they stop together at one step, with a checkpoint.
    `launcher_gone` is called at once if the launcher died before the request was made."""
    if not sys.platform.startswith("linux"):
        return
    pr_set_pdeathsig = 1
    if ctypes.CDLL(None).prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0) != 0:
        return
    if launcher_died():
        launcher_gone()


def launcher_died(within_s: float = 0.0) -> bool:
    """Whether this process was adopted: the process that started it is gone. The kernel sends the signal
    as the launcher's threads exit, and may hand this process to another of its threads first (the same
    pid): `within_s` waits that long for the adoption."""
    deadline = time.monotonic() + within_s
    while os.getppid() == LAUNCHER:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


class PeerError(DistributedError):
    """A collective that failed because another process died, stalled or cannot be reached."""


def peer_error(exc: BaseException, timeout_s: float) -> PeerError:
    """A collective's failure in words: another process died, or it stalled past the timeout."""
    text = str(exc)
    if "timed out" in text.lower() or "timeout" in text.lower():
        return PeerError(
            f"a collective operation timed out after {timeout_s:g} s: another process stalled or cannot be "
            "reached (training.collective_timeout)"
        )
    found = re.search(r"[Cc]onnection (closed|reset) by peer", text)
    why = found.group(0).lower() if found else text.splitlines()[0][:160]
    return PeerError(f"lost contact with another training process ({why})")


# The words of a collective's failure that another process caused: gloo's, and NCCL's for a peer that
# is gone (ncclRemoteError, a communicator that the watchdog aborted).
PEER_CLUES = (
    "connection closed by peer",
    "connection reset",
    "timed out",
    "gloo",
    "processgroup",
    "remote process",
    "ncclremoteerror",
    "communicator was aborted",
)
# A rank's own failure, even inside a collective: its GPU out of memory as NCCL creates the
# communicator (ncclUnhandledCudaError), a wrong set-up (ncclInvalidUsage).
OWN_CLUES = ("out of memory", "ncclunhandledcudaerror", "ncclinvalidusage", "ncclinvalidargument")


def is_peer_failure(exc: BaseException) -> bool:
    """Whether an error came from a collective (another process's fault, not this one's)."""
    if isinstance(exc, PeerError):
        return True
    if not isinstance(exc, (RuntimeError, dist.DistBackendError)) or own_failure(exc):
        return False
    return any(clue in str(exc).lower() for clue in PEER_CLUES)


def own_failure(exc: BaseException) -> bool:
    """Whether a collective's error is this process's own (its GPU's memory, its set-up)."""
    return any(clue in str(exc).lower() for clue in OWN_CLUES)


def record_failure(message: str, peer: bool) -> None:
    """Leave this process's failure where torchrun's agent reads it (TORCHELASTIC_ERROR_FILE), so that the
    launcher can say which rank failed and why; `peer` marks a failure caused by another rank's."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path:
        return
    data = {"message": message, "timestamp": int(time.time()), "peer": peer}
    try:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f)
    except OSError:
        pass  # the agent then reports the exit code alone
