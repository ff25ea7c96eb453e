"""One run over several processes: real torchrun launches, 2 CPU processes on gloo.

The maths (N processes x B sentences take the same steps as 1 x N.B, and as accumulating), one run folder
written by rank 0 alone, faults (a killed rank, a stalled one, SIGTERM), and resuming.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench.engine.data.cache import CorpusCache, cache_folder
from workbench.engine.distributed import DistributedError, Topology, topology_from_environment
from workbench.engine.run_folder import RunFolder, list_runs
from workbench.jobs.launch import failure_message

TINY = [
    "data.train_size=600",
    "data.valid_size=40",
    "model.hidden_size=32",
    "model.embedding_size=16",
    "training.valid_every=20",
    "training.log_every=5",
    "training.threads=1",
]


def s2s(*args: str, runs: Path | None = None, sets=(), timeout: float = 300) -> subprocess.CompletedProcess:
    """`s2s-bench train ...` with the tiny recipe keys (given `runs`), or any other command as it is."""
    command = [sys.executable, "-m", "workbench", *args]
    if runs is not None:
        command += ["--runs-dir", str(runs)]
        for s in [*TINY, *sets]:
            command += ["--set", s]
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)


def train_losses(run: Path) -> list[tuple[int, float]]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in records if r["kind"] == "train"]


def start(*args: str, runs: Path, sets=()) -> subprocess.Popen:
    command = [sys.executable, "-m", "workbench", *args, "--runs-dir", str(runs)]
    for s in [*TINY, *sets]:
        command += ["--set", s]
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def training_two(tmp_path: Path, name: str, sets=()) -> tuple[subprocess.Popen, Path]:
    """`train --nproc 2` with no end in sight, once both processes train; the launcher and the run."""
    launcher = start(
        "train", "reverse", "--headless", "--nproc", "2", "--max-steps", "100000", "--name", name,
        runs=tmp_path, sets=["training.batch_size=16", *sets],
    )  # fmt: skip
    run = tmp_path / name
    wait_until(lambda: (run / "metrics.jsonl").is_file() and len(workers(run)) == 2, 120, "training")
    return launcher, run


def workers(run: Path) -> dict[int, int]:
    """rank -> pid of the training processes of a run (read from their environment)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = dict(
                v.split(b"=", 1) for v in (entry / "environ").read_bytes().split(b"\0") if b"=" in v
            )
        except OSError:
            continue
        if str(run).encode() in cmdline and b"RANK" in environ:
            found[int(environ[b"RANK"])] = int(entry.name)
    return found


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.mark.slow
def test_two_processes_take_the_same_steps_as_one_with_the_global_batch_and_as_accumulating(tmp_path):
    one = s2s(
        "train",
        "reverse",
        "--headless",
        "--max-steps",
        "40",
        "--name",
        "one",
        runs=tmp_path,
        sets=["training.batch_size=32"],
    )
    two = s2s(
        "train",
        "reverse",
        "--headless",
        "--max-steps",
        "40",
        "--name",
        "two",
        "--nproc",
        "2",
        runs=tmp_path,
        sets=["training.batch_size=16"],
    )
    acc = s2s(
        "train",
        "reverse",
        "--headless",
        "--max-steps",
        "40",
        "--name",
        "acc",
        runs=tmp_path,
        sets=["training.batch_size=16", "training.accumulate=2"],
    )
    single = s2s(  # a process group of one, through torchrun: the same as no group at all
        "train", "reverse", "--headless", "--max-steps", "40", "--name", "single", "--nproc", "1",
        runs=tmp_path, sets=["training.batch_size=32"],
    )  # fmt: skip
    assert one.returncode == two.returncode == acc.returncode == single.returncode == 0, (
        two.stdout + two.stderr
    )
    a, b, c, d = (train_losses(tmp_path / n) for n in ("one", "two", "acc", "single"))
    assert [s for s, _ in a] == [s for s, _ in b] == [s for s, _ in c] == list(range(5, 41, 5))
    assert max(abs(x - y) for (_, x), (_, y) in zip(a, b)) < 1e-4
    assert max(abs(x - y) for (_, x), (_, y) in zip(a, c)) < 1e-4
    assert max(abs(x - y) for (_, x), (_, y) in zip(a, d)) < 1e-4
    assert a[-1][1] < a[0][1]  # it learns
    status = RunFolder(tmp_path / "two").status()
    assert status["processes"] == 2 and status["global_batch"] == "32 sentences"
    assert sorted(run.name for run in list_runs(tmp_path)) == ["acc", "one", "single", "two"]
    log = (tmp_path / "two" / "train.log").read_text()
    assert log.count("training on 2 processes") == 1  # rank 0 alone writes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("rendezvous", ["master", "c10d"])
def test_two_nodes_train_one_run_folder_on_the_same_steps_as_two_processes_of_one_node(tmp_path, rendezvous):
    port = str(free_port())
    where = (
        ["--master-addr", "127.0.0.1", "--master-port", port]
        if rendezvous == "master"
        else ["--rdzv-endpoint", f"127.0.0.1:{port}"]
    )
    nodes = [  # the second node first: it waits for the run folder that the first one makes
        start("train", "reverse", "--headless", "--nproc", "1", "--nnodes", "2", "--node-rank", str(rank),
              *where, "--max-steps", "20", "--name", "n", runs=tmp_path, sets=["training.batch_size=16"])
        for rank in (1, 0)
    ]  # fmt: skip
    for node in nodes:
        out, _ = node.communicate(timeout=180)
        assert node.returncode == 0, out
    one_node = s2s(
        "train", "reverse", "--headless", "--nproc", "2", "--max-steps", "20", "--name", "one-node",
        runs=tmp_path, sets=["training.batch_size=16"],
    )  # fmt: skip
    assert one_node.returncode == 0, one_node.stdout + one_node.stderr
    status = RunFolder(tmp_path / "n").status()
    assert status["state"] == "finished" and status["processes"] == 2, status
    assert train_losses(tmp_path / "n") == train_losses(tmp_path / "one-node")
    assert sorted(run.name for run in list_runs(tmp_path)) == ["n", "one-node"]


@pytest.mark.slow
def test_killing_one_rank_ends_the_other_with_that_ranks_message_and_leaves_no_process(tmp_path):
    launcher, run = training_two(tmp_path, "k")
    os.kill(workers(run)[1], signal.SIGKILL)
    killed = time.monotonic()
    out, _ = launcher.communicate(timeout=60)
    assert time.monotonic() - killed < 15
    assert launcher.returncode == 1
    assert "rank 1: the process was killed by signal SIGKILL" in out
    assert "Traceback" not in out
    assert workers(run) == {}
    status = RunFolder(run).status()
    assert (
        status["state"] == "failed" and status["reason"] == "rank 1: the process was killed by signal SIGKILL"
    )


def test_the_rank_that_died_is_named_before_the_ranks_torchrun_stopped_after_it(tmp_path):
    from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

    def failure(rank: int, exitcode: int) -> ProcessFailure:
        return ProcessFailure(rank, 1000 + rank, exitcode, str(tmp_path / "no-error-file"))

    aborted = {0: failure(0, -signal.SIGTERM), 1: failure(1, -signal.SIGABRT)}
    assert failure_message(aborted) == "rank 1: the process was killed by signal SIGABRT"
    exited = {0: failure(0, -signal.SIGTERM), 1: failure(1, 3), 2: failure(2, -signal.SIGTERM)}
    assert failure_message(exited) == "rank 1: the process exited with code 3"
    stopped = {0: failure(0, -signal.SIGTERM), 1: failure(1, -signal.SIGTERM)}
    assert failure_message(stopped) == "rank 0: the process was killed by signal SIGTERM"


@pytest.mark.slow
def test_a_stalled_rank_times_out_with_a_message_instead_of_hanging(tmp_path):
    launcher, run = training_two(tmp_path, "s", ["training.collective_timeout=4"])
    os.kill(workers(run)[1], signal.SIGSTOP)
    out, _ = launcher.communicate(timeout=90)
    assert launcher.returncode == 1
    assert "timed out after 4 s: another process stalled or cannot be reached" in out
    assert workers(run) == {}
    assert "timed out" in RunFolder(run).status()["reason"]


@pytest.mark.slow
def test_sigterm_stops_every_process_and_the_run_resumes_on_the_uninterrupted_curve(tmp_path):
    sets = ["training.batch_size=16"]
    whole = s2s(
        "train",
        "reverse",
        "--headless",
        "--nproc",
        "2",
        "--max-steps",
        "60",
        "--name",
        "whole",
        runs=tmp_path,
        sets=sets,
    )
    assert whole.returncode == 0, whole.stdout + whole.stderr
    launcher = start(
        "train",
        "reverse",
        "--headless",
        "--nproc",
        "2",
        "--max-steps",
        "60",
        "--name",
        "cut",
        runs=tmp_path,
        sets=sets,
    )
    run = tmp_path / "cut"
    wait_until(lambda: len(train_losses(run) if (run / "metrics.jsonl").is_file() else []) >= 3, 120, "steps")
    launcher.send_signal(signal.SIGTERM)
    launcher.communicate(timeout=60)
    assert workers(run) == {}
    status = RunFolder(run).status()
    assert status["state"] == "stopped", status
    assert status["step"] < 60
    resumed = s2s("resume", str(run), "--headless", "--nproc", "2", "--max-steps", "60")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert train_losses(run) == train_losses(tmp_path / "whole")  # no step missing or doubled, same values


@pytest.mark.slow
def test_kill_9_of_the_launcher_stops_every_process_with_a_checkpoint_and_the_run_resumes(tmp_path):
    launcher, run = training_two(tmp_path, "o")
    launcher.kill()  # torchrun's agent with it: nobody is left to stop the workers
    launcher.wait(timeout=10)
    wait_until(lambda: workers(run) == {}, 60, "the orphaned workers to stop")
    status = RunFolder(run).status()
    assert status["state"] == "stopped" and status["reason"] == "stopped: its launcher died", status
    stopped_at = status["step"]
    assert RunFolder(run).has_checkpoint("last")
    resumed = s2s("resume", str(run), "--headless", "--nproc", "2", "--max-steps", str(stopped_at + 5))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert RunFolder(run).status()["step"] == stopped_at + 5


@pytest.mark.slow
def test_resuming_on_another_number_of_processes_continues_and_says_the_data_order_changed(tmp_path):
    first = s2s(
        "train",
        "reverse",
        "--headless",
        "--nproc",
        "2",
        "--max-steps",
        "20",
        "--name",
        "r",
        runs=tmp_path,
        sets=["training.batch_size=16"],
    )
    assert first.returncode == 0, first.stdout + first.stderr
    again = s2s("resume", str(tmp_path / "r"), "--headless", "--max-steps", "40")
    assert again.returncode == 0, again.stdout + again.stderr
    assert [s for s, _ in train_losses(tmp_path / "r")] == list(range(5, 41, 5))
    log = (tmp_path / "r" / "train.log").read_text()
    assert "resumed on 1 process(es) after 2: the global batch is now 16 sentences" in log


SRUN_TASK = {  # what srun sets for task 3 of a 4-task step over two nodes (and the user's rendezvous)
    "SLURM_PROCID": "3",
    "SLURM_NTASKS": "4",
    "SLURM_STEP_ID": "0",
    "SLURM_STEP_NUM_TASKS": "4",
    "SLURM_LOCALID": "1",
    "SLURM_NODEID": "1",
    "SLURM_STEP_TASKS_PER_NODE": "2(x2)",
    "MASTER_ADDR": "node1",
    "MASTER_PORT": "29500",
}
# What an `sbatch --ntasks=4` script exports to each command it runs itself (no srun).
SBATCH_SCRIPT = {
    "SLURM_PROCID": "0",
    "SLURM_NTASKS": "4",
    "SLURM_LOCALID": "0",
    "SLURM_NODEID": "0",
    "SLURM_NTASKS_PER_NODE": "4",
    "SLURM_TASKS_PER_NODE": "4",
    "MASTER_ADDR": "node1",
    "MASTER_PORT": "29500",
}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, Topology()),
        (
            {"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"},
            Topology(1, 4, 1, 2, launched=True),
        ),
        (SRUN_TASK, Topology(3, 4, 1, 2, launched=True)),
        ({**SRUN_TASK, "SLURM_STEP_TASKS_PER_NODE": "3,1"}, Topology(3, 4, 1, 1, launched=True)),
        ({**SRUN_TASK, "CUDA_VISIBLE_DEVICES": "3"}, Topology(3, 4, 1, 2, launched=True, own_gpu=True)),
        ({**SRUN_TASK, "CUDA_VISIBLE_DEVICES": "2,3"}, Topology(3, 4, 1, 2, launched=True)),
        (SBATCH_SCRIPT, Topology()),  # the batch script itself, and what it runs without srun
        ({**SBATCH_SCRIPT, "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "1"}, Topology()),  # srun -n 1
    ],
)
def test_the_topology_comes_from_torchrun_or_from_the_tasks_of_an_srun_step(env, expected):
    assert topology_from_environment(env) == expected


def test_an_srun_step_without_a_rendezvous_address_is_a_clear_error():
    with pytest.raises(DistributedError, match="needs MASTER_ADDR set"):
        topology_from_environment({"SLURM_PROCID": "0", "SLURM_STEP_NUM_TASKS": "2", "SLURM_NTASKS": "2"})


def test_a_plain_train_inside_an_sbatch_script_trains_alone(tmp_path):
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **SBATCH_SCRIPT}
    env.pop("MASTER_ADDR")  # a script that sets no rendezvous: a rank would stop on its absence
    command = [sys.executable, "-m", "workbench", "train", "reverse", "--headless", "--max-steps", "5"]
    command += ["--name", "alone", "--runs-dir", str(tmp_path)]
    for option in [*TINY, "training.batch_size=16"]:
        command += ["--set", option]
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert RunFolder(tmp_path / "alone").status()["processes"] == 1


@pytest.mark.parametrize(
    ("topology", "visible", "gpu"),
    [
        (Topology(1, 4, 1, 2, launched=True), 2, 1),  # torchrun, one process per GPU
        (Topology(1, 2, 1, 2, launched=True), 4, 1),  # more GPUs than processes
        (Topology(3, 4, 3, 4, launched=True, own_gpu=True), 1, 0),  # srun --gpus-per-task=1
    ],
)
def test_each_process_trains_on_a_gpu_of_its_own_among_those_it_sees(topology, visible, gpu):
    from workbench.engine.distributed import local_gpu

    assert local_gpu(topology, visible) == gpu


@pytest.mark.parametrize(
    ("topology", "visible", "words"),
    [
        (Topology(3, 4, 3, 4, launched=True), 2, "4 training processes on this machine need a GPU each, "
         "but this process (local rank 3) sees 2 GPU(s)"),  # fmt: skip
        (Topology(0, 2, 0, 2, launched=True), 1, "sees 1 GPU(s)"),  # two processes, one GPU, no binding
    ],
)
def test_more_processes_than_gpus_is_refused_in_one_line_naming_the_counts(topology, visible, words):
    from workbench.engine.distributed import local_gpu

    with pytest.raises(DistributedError, match=re.escape(words)):
        local_gpu(topology, visible)


@pytest.mark.parametrize(
    ("env", "visible", "expected"),
    [
        ({**SRUN_TASK, "CUDA_VISIBLE_DEVICES": "3"}, 1, "cuda:0"),  # srun --gpus-per-task=1, local id 1
        ({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}, 2, "cuda:1"),
        ({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}, 1, "sees 1 GPU(s)"),
    ],
)
def test_a_trainer_takes_its_gpu_among_those_it_sees_or_says_why_it_cannot(
    tmp_path, monkeypatch, tf32_flags, env, visible, expected
):
    import torch

    from workbench.engine.recipe import load_recipe
    from workbench.engine.session import TrainingSession

    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: visible)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    run = RunFolder.create(tmp_path, load_recipe("reverse", TINY), name="r")
    if expected.startswith("cuda"):
        assert TrainingSession(run, "cuda").device == torch.device(expected)
        assert chosen == [torch.device(expected)]
    else:
        with pytest.raises(DistributedError, match=re.escape(expected)):
            TrainingSession(run, "cuda")
        assert chosen == []


def test_nproc_above_the_gpus_is_refused_before_any_process_starts(tmp_path, monkeypatch, tf32_flags):
    import torch
    import torch.distributed.run

    from workbench.engine.recipe import load_recipe
    from workbench.jobs.commands import TrainerCommand
    from workbench.jobs.launch import train_distributed

    launched = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.distributed.run, "run", launched.append)
    run = RunFolder.create(tmp_path, load_recipe("reverse", TINY), name="r")
    with pytest.raises(DistributedError, match="--nproc 4: one GPU per process, and this machine shows 2"):
        train_distributed(TrainerCommand(run, "cuda", nproc=4))
    assert launched == []


@pytest.mark.parametrize(
    ("message", "peer"),
    [
        ("[gloo/transport/tcp/pair.cc:534] Connection closed by peer [10.0.0.2]:5000", True),
        ("NCCL error in: ProcessGroupNCCL.cpp:1970, remote process exited or there was a network error, "
         "NCCL version 2.21.5\nncclRemoteError: A call failed possibly due to a network error", True),
        ("NCCL error in: ProcessGroupNCCL.cpp:1970, unhandled cuda error (run with NCCL_DEBUG=INFO for "
         "details), NCCL version 2.21.5\nncclUnhandledCudaError: Call to CUDA function failed.\n"
         "Last error:\nCuda failure 'out of memory'", False),  # this rank's own GPU, as NCCL starts
        ("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.10 GiB total capacity)", False),
    ],
)
def test_an_nccl_error_of_a_ranks_own_is_not_taken_for_a_peers(message, peer):
    import torch.distributed as dist

    from workbench.engine.distributed import is_peer_failure

    assert is_peer_failure(dist.DistBackendError(message)) is peer


def test_a_cuda_team_lets_nccl_abort_a_failed_communicator_without_killing_the_process(monkeypatch):
    import torch
    import torch.distributed as dist

    from workbench.engine.distributed import Team

    seen = {}
    monkeypatch.setattr(os, "environ", dict(os.environ))  # Team sets RANK and WORLD_SIZE: this test's only
    os.environ["TORCH_NCCL_ASYNC_ERROR_HANDLING"] = "1"  # as torchrun's agent exports it
    monkeypatch.setattr(dist, "is_initialized", lambda: False)

    def init_process_group(backend, timeout):
        mode = os.environ["TORCH_NCCL_ASYNC_ERROR_HANDLING"]
        seen.update(backend=backend, timeout=timeout.total_seconds(), mode=mode)

    monkeypatch.setattr(dist, "init_process_group", init_process_group)
    monkeypatch.setattr(dist, "new_group", lambda backend, timeout: "control")
    Team(Topology(0, 2, 0, 2, launched=True), torch.device("cuda", 0), 120.0)
    # Clean-up-only (2): the watchdog aborts the communicator at the timeout, and the process raises.
    assert seen == {"backend": "cpu:gloo,cuda:nccl", "timeout": 120.0, "mode": "2"}


@pytest.mark.slow
def test_control_messages_reach_every_rank_and_ctrl_c_stops_every_process(tmp_path):
    command = [
        sys.executable,
        "-m",
        "workbench",
        "train",
        "reverse",
        "--headless",
        "--nproc",
        "2",
        "--name",
        "c",
    ]
    command += ["--runs-dir", str(tmp_path), "--max-steps", "100000"]
    for s in [*TINY, "training.batch_size=16"]:
        command += ["--set", s]
    launcher = subprocess.Popen(  # its own process group, as a terminal's foreground job
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    run = RunFolder(tmp_path / "c")
    wait_until(lambda: run.metrics_path.is_file() and len(workers(run.path)) == 2, 120, "training")
    assert s2s("control", str(run.path), "pause").returncode == 0
    wait_until(lambda: run.status()["state"] == "paused", 30, "the pause")
    paused_at = run.status()["step"]
    time.sleep(1.5)
    assert len(workers(run.path)) == 2 and run.status()["step"] == paused_at  # both wait, neither trains
    assert s2s("control", str(run.path), "resume").returncode == 0
    wait_until(lambda: run.status().get("step", 0) > paused_at, 30, "training to go on")
    os.killpg(launcher.pid, signal.SIGINT)  # Ctrl-C reaches the launcher and every process
    out, _ = launcher.communicate(timeout=60)
    assert workers(run.path) == {}
    status = run.status()
    assert status["state"] == "stopped", (status, out)
    assert "Traceback" not in out
    assert run.has_checkpoint("last")


@pytest.mark.slow
def test_a_users_own_torchrun_line_makes_one_run_folder_trained_by_every_process(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    command += ["-m", "workbench", "train", "reverse", "--headless", "--max-steps", "10"]
    command += ["--runs-dir", str(tmp_path)]
    for s in [*TINY, "training.batch_size=16"]:
        command += ["--set", s]
    out = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    (run,) = (run.path for run in list_runs(tmp_path))  # rank 0 made it and told the other where it is
    (entry,) = CorpusCache(cache_folder(tmp_path)).entries()  # the corpus prepared once for both
    assert entry.manifest is not None
    assert RunFolder(run).status()["processes"] == 2
    assert [s for s, _ in train_losses(run)] == [5, 10]


@pytest.mark.slow
def test_early_stopping_decided_by_rank_0_stops_every_process_at_the_same_step(tmp_path):
    out = s2s("train", "reverse", "--headless", "--nproc", "2", "--name", "e", "--max-steps", "100000",
              runs=tmp_path, sets=["training.batch_size=16", "training.early_stopping=1"])  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    status = RunFolder(tmp_path / "e").status()
    # exact match stays 0 this early: the second validation is no better, and both processes stop there
    assert (status["state"], status["step"]) == ("finished", 40)
    assert status["reason"] == "early stopping: no improvement in 1 validations"
    assert workers(tmp_path / "e") == {}


@pytest.mark.slow
def test_a_loss_that_explodes_while_finite_stops_every_process_at_the_same_step(tmp_path):
    """The loss each process judges is summed over all of them at the logging step: every rank counts
    the same exploded windows and stops at the third (step 15), with no checkpoint of exploded weights."""
    exploding = ["training.optimizer=sgd", "training.lr=1e6", "training.clip_grad=0"]
    out = s2s("train", "reverse", "--headless", "--nproc", "2", "--name", "x", "--max-steps", "60",
              runs=tmp_path, sets=["training.batch_size=16", *exploding])  # fmt: skip
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    status = RunFolder(tmp_path / "x").status()
    assert status["state"] == "failed" and status["step"] == 10  # the last logged step
    # Both ranks stop at the same step; the report names whichever torchrun saw end first.
    assert re.match(r"rank [01]: step 15: the training loss has exploded, though finite", status["reason"])
    said = re.findall(r"step (\d+): the training loss has exploded", out.stdout + out.stderr)
    assert len(said) >= 2 and set(said) == {"15"}, out.stderr
    assert not list((tmp_path / "x" / "checkpoints").glob("*.safetensors"))
    assert workers(tmp_path / "x") == {}
