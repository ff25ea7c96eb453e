"""Several processes on one runs folder: two runs training at once, two workbenches watching one of them, a
second trainer on a run refused, and a workbench killed while the run it started trains on (real trainer
processes; the last one in a real terminal, tmux)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench.engine.run_folder import RunFolder, list_runs

TINY = [
    "data.train_size=400",
    "data.valid_size=30",
    "model.hidden_size=32",
    "model.embedding_size=16",
    "training.valid_every=20",
    "training.log_every=5",
    "training.threads=1",
    "training.batch_size=16",
]
ENV = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}


def s2s(*args: str) -> list[str]:
    return [sys.executable, "-m", "workbench", *args]


def train(runs: Path, recipe: str, name: str, steps: int) -> subprocess.Popen:
    sets = [arg for s in TINY for arg in ("--set", s)]
    args = s2s(
        "train", recipe, "--headless", "--max-steps", str(steps), "--name", name, "--runs-dir", str(runs)
    )
    return subprocess.Popen(
        [*args, *sets], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def train_steps(run: RunFolder) -> list[int]:
    return [r["step"] for r in run.read_metrics()[0] if r["kind"] == "train"]


def wait(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


async def watch(runs: Path, run: RunFolder, trainers: list[subprocess.Popen]) -> list[list[int]]:
    """Two workbenches open on `run` until every trainer has exited; the train steps each one saw."""
    from workbench.tui.app import S2SBenchApp

    first, second = (S2SBenchApp(runs, run=run.path, recipes={}, sweeps={}, poll_interval=0.1) for _ in "ab")
    async with first.run_test() as one, second.run_test() as two:
        while any(t.poll() is None for t in trainers):
            await one.pause(0.1)
            await two.pause(0.1)
        for app, pilot in ((first, one), (second, two)):
            await app.sync_run()
            await pilot.pause()
            assert app.history.state == "finished"
        return [[r["step"] for r in app.history.train] for app in (first, second)]


@pytest.mark.slow
def test_two_runs_train_at_once_two_workbenches_watch_one_and_a_second_trainer_is_refused(
    tmp_path, record_property
):
    runs = tmp_path / "runs"
    # 600 steps (about 8 s alone) outlast the second trainer's start (about 2 s), even on a quiet machine
    reverse, dates = train(runs, "reverse", "rev", 600), train(runs, "dates-en-fr", "dat", 40)
    rev, dat = RunFolder(runs / "rev"), RunFolder(runs / "dat")
    wait(lambda: rev.trainer_alive() and dat.trainer_alive(), 60, "both trainers to start")
    second = subprocess.run(
        s2s("resume", str(rev.path)), env=ENV, capture_output=True, text=True, timeout=120
    )
    assert second.returncode == 2 and "Traceback" not in second.stderr
    assert f"another process (pid {reverse.pid}) is training this run" in " ".join(second.stderr.split())
    seen = asyncio.run(watch(runs, rev, [reverse, dates]))
    for trainer in (reverse, dates):
        out, err = trainer.communicate(timeout=60)
        assert trainer.returncode == 0, out + err
    assert train_steps(rev) == list(range(5, 601, 5)) and train_steps(dat) == list(range(5, 41, 5))
    assert seen == [train_steps(rev)] * 2  # each workbench saw the whole run, once, and nothing of the other
    letters = set("abcdefghijklmnopqrstuvwxyz ")
    assert all(set(s["src"]) <= letters for v in rev.read_samples()[0] for s in v["samples"])
    assert all(any(c.isdigit() for c in s["src"]) for v in dat.read_samples()[0] for s in v["samples"])
    assert rev.recipe().data.kind == "reverse" and dat.recipe().data.kind == "dates"
    assert {run.name for run in list_runs(runs)} == {"rev", "dat"}
    record_property("inputs", 4)
    record_property("shows", "both runs finish, each with its own curve; the second trainer: exit 2, "
                             "another process (pid N) is training this run")  # fmt: skip


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_a_workbench_killed_with_kill_9_leaves_the_run_it_started_training_to_the_end(
    tmp_path, record_property
):
    from e2e.tmux_session import TmuxSession, s2s_bench_command, terminal_env

    runs = tmp_path / "runs"
    sets = [arg for s in TINY for arg in ("--set", s)]
    command = [*s2s_bench_command(), "train", "reverse", "--runs-dir", str(runs), "--name", "bg"]
    tmux = TmuxSession(socket=f"s2s-kill-{os.getpid()}")
    tmux.start([*command, "--max-steps", "60", *sets], terminal_env())
    run = RunFolder(runs / "bg")
    try:
        tmux.wait_for(lambda s: "Dashboard" in s and "bg" in s, 60, "the dashboard of the new run")
        wait(lambda: run.status_path.is_file() and run.trainer_alive(), 60, "the trainer to start")
        pane = int(tmux.tmux("display-message", "-p", "-t", tmux.session, "#{pane_pid}").strip())
        tui = _child_running(pane, "train")
        os.kill(tui, 9)
        tmux.wait_for(lambda s: "EXITED 137" in s, 20, "the workbench to die")
        wait(lambda: run.status()["state"] != "running", 120, "the trainer to finish")
        assert run.status()["state"] == "finished" and train_steps(run) == list(range(5, 61, 5))
    finally:
        tmux.kill()
        if run.trainer_alive():
            run.send_control("stop")
    record_property("inputs", 1)
    record_property("shows", "the trainer is unaffected and finishes")


def _child_running(shell: int, word: str) -> int:
    """The pid of the process under the pane's shell whose command line holds `word` (the workbench)."""
    import psutil

    for child in psutil.Process(shell).children(recursive=True):
        if word in child.cmdline():
            return child.pid
    raise AssertionError(f"no process running {word!r} under pid {shell}")
