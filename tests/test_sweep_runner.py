"""The queue runner with real processes: parallel runs, kill -9 and --resume, compare on the result."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from workbench.engine.devices import usable_cpus
from workbench.jobs.sweep_queue import SweepQueue

TINY = """
base = "dates-en-fr"
[set]
"training.max_steps" = {steps}
"training.valid_every" = 15
"training.log_every" = 5
"data.train_size" = 500
"data.valid_size" = 50
"model.hidden_size" = 32
"model.embedding_size" = 16
"tokenizer.vocab_size" = 60
"decoding.probes" = []
"training.threads" = {threads}
[axes]
{axes}
"""


def s2s(*args):
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "workbench", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def queue_and_start(tmp_path, name, steps, axes, *options, threads=1):
    path = tmp_path / f"{name}.toml"
    path.write_text(TINY.format(steps=steps, axes=axes, threads=threads))
    done = s2s("sweep", str(path), "--runs-dir", str(tmp_path / "runs"), *options)
    assert done.returncode == 0, done.stderr
    return SweepQueue.open(tmp_path / "runs", name)


def wait_for(predicate, timeout=300, what="the sweep"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def runner_pid(queue):
    wait_for(queue.runner_alive, 60, "the runner")
    return int(queue.lock_path.read_text().split()[0])


def fingerprint(run):
    """What a retrained run would change: its metrics and its checkpoints, by content and time."""
    files = [run.metrics_path, *sorted(run.checkpoints_dir.iterdir())]
    return {f.name: (hashlib.sha256(f.read_bytes()).hexdigest(), f.stat().st_mtime_ns) for f in files}


@pytest.mark.slow
def test_a_four_run_sweep_finishes_two_at_a_time_and_compares(tmp_path):
    axes = '"model.cell" = ["gru", "lstm"]\n"training.lr" = [3e-3, 1e-2]'
    queue = queue_and_start(
        tmp_path, "four", 30, axes, "--parallel", "2", "--set", "decoding.beam_size=2", threads=0
    )
    wait_for(lambda: queue.progress().complete and not queue.runner_alive())
    statuses = [run.status() for run in queue.runs()]
    assert [s["state"] for s in statuses] == ["finished"] * 4
    assert {run.recipe().decoding.beam_size for run in queue.runs()} == {2}  # --set: every run
    share = max(1, len(usable_cpus()) // 2)  # the cores shared by the 2 runs at a time
    assert all(s["device"] == f"cpu ({share} thread{'s' if share > 1 else ''})" for s in statuses)
    spans = [(s["started"], s["updated"]) for s in statuses]
    overlapping = max(sum(a <= t < b for a, b in spans) for t, _ in spans)
    assert overlapping == 2  # two at a time, never more

    rows = [
        json.loads(line)
        for line in s2s(
            "compare", "--sweep", "four", "--runs-dir", str(tmp_path / "runs"), "--json"
        ).stdout.splitlines()
    ]
    assert [r["values"] for r in rows] == [
        {"model.cell": c, "training.lr": lr} for c in ("gru", "lstm") for lr in (3e-3, 1e-2)
    ]
    assert all(r["state"] == "finished" and r["steps"] == 30 and r["sweep"] == "four" for r in rows)
    assert all(r["bleu"] is not None and r["loss"] > 0 and r["tokens_per_s"] > 0 for r in rows)
    by_loss = s2s(
        "compare", "--sweep", "four", "--runs-dir", str(tmp_path / "runs"), "--sort", "loss", "--json"
    )
    losses = [json.loads(line)["loss"] for line in by_loss.stdout.splitlines()]
    assert losses == sorted(losses)
    table = s2s("compare", *(str(run.path) for run in queue.runs()[:2])).stdout
    header = [
        title.strip() for title in next(line for line in table.splitlines() if "┃ run" in line).split("┃")
    ]
    assert "lr" in header and "cell" not in header  # only what differs between the two, by its last part
    assert "4/4 finished" in s2s("sweep", "--runs-dir", str(tmp_path / "runs")).stdout


@pytest.mark.slow
def test_kill_9_of_the_runner_then_resume_finishes_the_rest_and_retrains_nothing(tmp_path):
    queue = queue_and_start(tmp_path, "crash", 60, '"training.lr" = [3e-3, 5e-3, 1e-2]', "--parallel", "1")
    first, second, third = queue.runs()

    def mid_run(run):
        status = run.status()
        return status.get("state") == "running" and 20 <= status.get("step", 0) < 55

    # The runner alone dies (its trainer lives on): the new runner waits for that trainer, then goes on.
    wait_for(lambda: first.status()["state"] == "finished" and mid_run(second), what="the second run")
    os.kill(runner_pid(queue), signal.SIGKILL)
    first_files = fingerprint(first)
    assert s2s("sweep", "--resume", "crash", "--runs-dir", str(tmp_path / "runs")).returncode == 0

    # A reboot: the runner and the trainer die together; the interrupted run resumes from its checkpoint.
    wait_for(lambda: second.status()["state"] == "finished" and mid_run(third), what="the third run")
    trainer = third.status()["pid"]
    os.kill(runner_pid(queue), signal.SIGKILL)
    os.kill(trainer, signal.SIGKILL)
    wait_for(lambda: third.status()["state"] == "failed", 30, "the trainer's death")
    second_files = fingerprint(second)
    again = s2s("sweep", "--resume", "crash", "--runs-dir", str(tmp_path / "runs"))
    assert again.returncode == 0, again.stderr
    refused = s2s("sweep", "--resume", "crash", "--runs-dir", str(tmp_path / "runs"))
    assert refused.returncode == 2 and "its queue runner is running it" in refused.stderr
    wait_for(lambda: queue.progress().complete and not queue.runner_alive())

    assert [run.status()["state"] for run in queue.runs()] == ["finished"] * 3
    assert fingerprint(first) == first_files and fingerprint(second) == second_files
    log = queue.log_path.read_text()
    assert log.count(f"{first.name}: started") == 1 and log.count(f"{second.name}: started") == 1
    assert f"{third.name}: resumed" in log
    records, _ = third.read_metrics()
    for kind in ("train", "valid"):
        steps = [r["step"] for r in records if r["kind"] == kind]
        assert steps == sorted(set(steps)) and steps[-1] == 60  # no doubled steps, to the end
    done = s2s("sweep", "--resume", "crash", "--runs-dir", str(tmp_path / "runs"))
    assert done.returncode == 0 and "nothing left to run" in done.stdout


@pytest.mark.slow
def test_a_paused_run_keeps_its_slot_and_stopped_or_cancelled_runs_are_not_started_again(tmp_path):
    queue = queue_and_start(tmp_path, "ctl", 5000, '"training.lr" = [3e-3, 1e-2]', "--parallel", "1")
    first, second = queue.runs()
    wait_for(lambda: first.status().get("state") == "running" and first.status().get("step", 0) >= 5)
    assert s2s("control", str(first.path), "pause").returncode == 0
    wait_for(lambda: first.status()["state"] == "paused", 60, "the pause")
    time.sleep(2)  # several polls of the runner: the paused run still holds the only slot
    assert second.status()["state"] == "queued"
    assert s2s("control", str(second.path), "cancel").returncode == 0
    assert s2s("control", str(first.path), "stop").returncode == 0
    wait_for(lambda: not queue.runner_alive(), 60, "the runner to leave")
    assert first.status()["state"] == "stopped" and second.status()["state"] == "cancelled"
    progress = queue.progress()
    assert (progress.stopped, progress.cancelled, progress.complete) == (1, 1, True)
    assert queue.log_path.read_text().count(f"{first.name}: started") == 1
    assert not (second.path / "metrics.jsonl").exists()


@pytest.mark.slow
def test_stopping_a_sweep_stops_its_running_runs_starts_no_more_and_resume_finishes_them_all(tmp_path):
    runs_dir = str(tmp_path / "runs")
    queue = queue_and_start(tmp_path, "halt", 300, '"training.lr" = [3e-3, 5e-3, 1e-2]', "--parallel", "2")
    first, second, third = queue.runs()
    wait_for(lambda: all(r.status().get("state") == "running" and r.status().get("step", 0) >= 5
                         for r in (first, second)), what="two runs training")  # fmt: skip
    stopped = s2s("sweep", "--stop", "halt", "--runs-dir", runs_dir)
    assert stopped.returncode == 0, stopped.stderr
    assert "sent a stop to 2 running run(s)" in stopped.stdout and "sweep --resume halt" in stopped.stdout
    wait_for(lambda: not queue.runner_alive(), 60, "the runner to leave")
    assert [r.status()["state"] for r in queue.runs()] == ["stopped", "stopped", "queued"]
    cut = [r.status()["step"] for r in (first, second)]
    assert all(0 < step < 300 for step in cut) and all(r.has_checkpoint("last") for r in (first, second))
    progress = queue.progress()
    assert (progress.interrupted, progress.queued, progress.stopped, progress.complete) == (2, 1, 0, False)
    assert "stopped" in s2s("sweep", "--runs-dir", runs_dir).stdout  # the runner column

    resumed = s2s("sweep", "--resume", "halt", "--runs-dir", runs_dir)
    assert resumed.returncode == 0, resumed.stderr
    wait_for(lambda: queue.progress().complete and not queue.runner_alive())
    assert [r.status()["state"] for r in queue.runs()] == ["finished"] * 3
    log = queue.log_path.read_text()
    for run in (first, second):
        assert log.count(f"{run.name}: started") == 1 and f"{run.name}: resumed" in log
        steps = [r["step"] for r in run.read_metrics()[0] if r["kind"] == "train"]
        assert steps == list(range(5, 301, 5))  # continued from the checkpoint: nothing doubled or lost
    # The sweep took them up again: a later stop of theirs is a user's own, which a runner never undoes.
    assert queue.read()["suspended"] == []
