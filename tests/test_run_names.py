"""Every command names a run the same way: by its name in the runs folder or by its path, with
--runs-dir before or after the command; the hints commands print carry the --runs-dir they need."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from workbench.engine.recipe import load_recipe
from workbench.engine.run_folder import RunFolder
from workbench.engine.session import TrainingSession
from workbench.jobs.sweep import load_sweep
from workbench.jobs.sweep_queue import queue_sweep

TINY = [
    "data.train_size=100",
    "data.valid_size=10",
    "data.test_size=0",
    "model.embedding_size=8",
    "model.hidden_size=16",
    "training.log_every=5",
    "training.valid_every=10",
    "training.threads=1",
]


def s2s(*args, stdin=None, cwd=None, timeout=120):
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    command = [sys.executable, "-m", "workbench", *args]
    return subprocess.run(
        command, input=stdin, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A runs folder away from the working directory, with one short trained run named `rev`."""
    folder = tmp_path_factory.mktemp("elsewhere") / "runs"
    run = RunFolder.create(folder, load_recipe("reverse", TINY), name="rev")
    TrainingSession(run, "cpu").train(max_steps=10)
    return folder


@pytest.mark.parametrize("before", [True, False])
def test_decode_takes_a_runs_name_with_runs_dir_before_or_after_the_command(runs, tmp_path, before):
    where = ["--runs-dir", str(runs)]
    args = [*where, "decode", "rev"] if before else ["decode", "rev", *where]
    done = s2s(*args, stdin="a b c\n", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 1


def test_eval_resume_and_control_take_a_runs_name_too(runs, tmp_path):
    (tmp_path / "src.txt").write_text("a b c\n")
    (tmp_path / "ref.txt").write_text("c b a\n")
    scored = s2s(
        "eval", "rev", "--src", "src.txt", "--ref", "ref.txt", "--json", "--runs-dir", str(runs), cwd=tmp_path
    )
    assert scored.returncode == 0, scored.stderr
    assert json.loads(scored.stdout)["sentences"] == 1
    sent = s2s("--runs-dir", str(runs), "control", "rev", "pause", cwd=tmp_path)
    assert sent.returncode == 2 and "rev: no trainer is running this run (state: finished)" in sent.stderr
    resumed = s2s("resume", "rev", "--runs-dir", str(runs), "--max-steps", "15", "--quiet", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert RunFolder(runs / "rev").status()["step"] == 15
    by_path = s2s("decode", str(runs / "rev"), stdin="a b\n", cwd=tmp_path)  # a path works as before
    assert by_path.returncode == 0, by_path.stderr


@pytest.mark.parametrize("command", ["decode", "resume", "replay", "control"])
def test_a_name_that_is_no_run_is_one_line_and_exit_code_2(runs, tmp_path, command):
    extra = ["stop"] if command == "control" else []
    done = s2s(command, "nothing-such", *extra, "--runs-dir", str(runs), stdin="", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        f"error: nothing-such: no such run folder, and no run of that name in {runs}"
    )


def test_compare_takes_run_names(runs, tmp_path):
    done = s2s("compare", "rev", "--runs-dir", str(runs), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout)
    assert row["name"] == "rev" and row["peak_memory_mb"] > 0


GRID = """
base = "reverse"
[axes]
"training.lr" = [1e-3, 3e-3, 1e-2]
"""


def test_a_stopped_sweeps_hints_carry_its_runs_dir_and_its_progress_reads_as_its_table(tmp_path):
    (tmp_path / "grid.toml").write_text(GRID)
    runs = tmp_path / "elsewhere"
    queue = queue_sweep(runs, load_sweep(tmp_path / "grid.toml", TINY))
    first, second, third = queue.runs()
    first.write_status("stopped", reason="stopped from the control channel", step=5)
    queue.update(held=True, suspended=[first.name])  # as `sweep --stop` leaves a run it stopped
    third.write_status("finished", step=30)
    stopped = s2s("sweep", "--stop", "grid", "--runs-dir", str(runs), cwd=tmp_path)
    assert stopped.returncode == 0, stopped.stderr
    assert f"continue it: s2s-bench sweep --resume grid --runs-dir {runs}" in stopped.stdout
    listed = s2s("sweep", "--runs-dir", str(runs), cwd=tmp_path)
    assert "1/3 finished, 1 interrupted (resumed by sweep --resume), 1 queued" in listed.stdout
    assert queue.progress().interrupted == 1 and queue.progress().queued == 1
    refused = s2s("control", second.name, "stop", "--runs-dir", str(runs), cwd=tmp_path)
    assert f"cancel it with: s2s-bench control {second.name} cancel --runs-dir {runs}" in refused.stderr
    empty = s2s("sweep", "--runs-dir", str(tmp_path / "none"), cwd=tmp_path)
    assert f"queue one with: s2s-bench sweep FILE --runs-dir {tmp_path / 'none'}" in empty.stdout


def test_ctrl_c_on_a_headless_train_exits_130_and_says_how_to_resume(tmp_path):
    runs = tmp_path / "elsewhere"
    args = [
        "train",
        "reverse",
        "--headless",
        "--runs-dir",
        str(runs),
        "--name",
        "cut",
        "--max-steps",
        "100000",
    ]
    overrides = [part for setting in TINY for part in ("--set", setting)]
    env = {**os.environ, "NO_COLOR": "1"}
    trainer = subprocess.Popen(
        [sys.executable, "-m", "workbench", *args, *overrides],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    run = RunFolder(runs / "cut")
    deadline = time.monotonic() + 120
    while not (run.metrics_path.exists() and run.metrics_path.read_text().count("\n") >= 1):
        assert trainer.poll() is None and time.monotonic() < deadline, trainer.communicate()
        time.sleep(0.2)
    trainer.send_signal(signal.SIGINT)
    out, err = trainer.communicate(timeout=120)
    assert trainer.returncode == 130, (out, err)
    assert f"resume it: s2s-bench resume cut --runs-dir {runs}" in err
    assert run.status()["state"] == "stopped" and run.has_checkpoint("last")
