"""End to end, a day's work as a user lives it: `s2s-bench` in tmux, start a named run from the form with a
`--set` line, watch the machine on the system view, open the run's log and search it, clone the finished
run with a change, compare the two runs and zoom into their curves with a cursor, quit, and decode with
the first run by its name from the command line.

Trains two small models for real (about a minute on 2 CPU cores): marked slow.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from workbench.engine.recipe import load_recipe
from workbench.engine.run_folder import RunFolder, RunFolderError

from .test_tmux import save, wait
from .tmux_session import REPO, TmuxSession, s2s_bench_command, terminal_env

MAX_STEPS = "60"  # a limit of the command line, not a recipe key
SET_LINE = "training.valid_every=30"
CLONE_LINE = "training.lr=0.002"


def finished(run: Path) -> bool:
    try:
        return RunFolder.open(run).status().get("state") == "finished"
    except (RunFolderError, OSError):  # not created yet
        return False


@pytest.mark.slow
def test_a_day_form_system_log_clone_compare_zoom_and_decode_by_name(tmp_path):
    runs_dir = tmp_path / "runs"
    tmux = TmuxSession(socket=f"s2s-e2e-day-{os.getpid()}", width=100, height=32)
    try:
        tmux.start([*s2s_bench_command(), "--runs-dir", str(runs_dir)], terminal_env())
        tmux.wait_for(lambda s: "recipes" in s and "dates-en-fr" in s, 60, "the Runs screen")

        # The form: focus on the recipe; a name, a step limit and a --set line; the command it stands for.
        tmux.keys("n")
        tmux.wait_for(lambda s: "Start a run" in s, 10, "the new-run form")
        tmux.keys("Tab")  # the run name
        tmux.type("day-a")
        tmux.keys("Tab", "Tab", "Tab", "Tab")  # device, processes, threads, max steps
        tmux.type(MAX_STEPS)
        tmux.keys("Tab", "Tab")  # max minutes, the --set lines
        tmux.type(SET_LINE)
        screen = tmux.wait_for(
            lambda s: f"--set {SET_LINE}" in s, 10, "the command line of the form with its --set line"
        )
        save("day-form", screen)
        assert "s2s-bench train dates-en-fr" in screen and "--name day-a" in screen
        assert "--max-steps 60" in screen
        tmux.keys("BTab", "BTab")  # back to max steps: Enter in a field starts
        tmux.keys("Enter")
        tmux.wait_for(lambda s: "day-a" in s and "running" in s, 60, "the dashboard of day-a")
        first = runs_dir / "day-a"
        assert load_recipe(first / "recipe.toml").training.valid_every == 30  # --max-steps is no recipe key

        # The machine: the host's row, and the trainer of day-a with its process.
        tmux.keys("g")
        screen = tmux.wait_for(
            lambda s: "cores" in s and re.search(r"^│.*day-a\s", s, re.M) is not None,
            30,
            "day-a's trainer on the system view",
        )
        save("day-system", screen)

        # The run's log, searched.
        wait(lambda: finished(first), 300, "day-a to finish")
        assert RunFolder.open(first).status()["step"] == 60
        tmux.keys("l")
        tmux.wait_for(lambda s: "train.log" in s, 10, "the log screen on train.log")
        tmux.keys("/")
        tmux.type("valid")
        screen = tmux.wait_for(
            lambda s: re.search(r"\d+ of \d+ lines hold 'valid'", s) is not None, 10, "the search's count"
        )
        save("day-log", screen)
        lines = [line for line in screen.splitlines() if re.match(r"│\d{4}-\d\d-\d\d ", line)]
        assert lines and all("valid" in line.lower() for line in lines), lines
        tmux.keys("Escape")

        # Clone day-a with a change: the form opens on the run's own recipe.
        tmux.keys("r")
        tmux.wait_for(lambda s: "day-a" in s and "finished" in s, 10, "day-a finished on the runs screen")
        tmux.keys("C")
        tmux.wait_for(lambda s: "Clone day-a with changes" in s, 10, "the clone form")
        tmux.keys("Tab")
        tmux.type("day-b")
        tmux.keys("Tab", "Tab", "Tab", "Tab")  # max steps
        tmux.type(MAX_STEPS)
        tmux.keys("Tab", "Tab")  # the --set lines
        tmux.type(CLONE_LINE)
        screen = tmux.wait_for(lambda s: f"--set {CLONE_LINE}" in s, 10, "the clone's command line")
        save("day-clone-form", screen)
        assert "a/recipe.toml" in screen and "--name day-b" in screen  # the run's own recipe, by its path
        tmux.keys("BTab", "BTab")  # max steps
        tmux.keys("Enter")
        second = runs_dir / "day-b"
        tmux.wait_for(lambda s: "day-b" in s and "running" in s, 60, "the dashboard of day-b")
        source, clone = (
            load_recipe(first / "recipe.toml").dotted(),
            load_recipe(second / "recipe.toml").dotted(),
        )
        assert {key for key in source if source[key] != clone[key]} == {"training.lr"}
        wait(lambda: finished(second), 300, "day-b to finish")
        assert RunFolder.open(second).status()["step"] == 60

        # Compare the two, then zoom: pan to the earlier half and put the cursor on a step there.
        tmux.keys("r")
        tmux.wait_for(lambda s: s.count("finished") >= 2, 10, "both runs finished on the runs screen")
        tmux.keys("Home", "m", "Down", "m", "c")
        tmux.wait_for(lambda s: "day-a" in s and "day-b" in s and "┤" in s, 20, "the compare screen")
        tmux.keys("+", "[", ">")
        screen = tmux.wait_for(lambda s: re.search(r"@(\d+)", s) is not None, 10, "the cursor's step")
        save("day-compare-zoomed", screen)
        step = int(re.search(r"@(\d+)", screen).group(1))
        assert 0 < step < 60, "zoomed and panned: the cursor stands on a step before the last"

        tmux.keys("q")
        tmux.wait_for(lambda s: "EXITED 0" in s, 20, "s2s-bench to exit")
    finally:
        tmux.kill()
        for run in runs_dir.glob("day-*"):
            if not finished(run):
                RunFolder.open(run).send_control("stop")

    # Decode with day-a by its name, from the runs folder.
    decoded = subprocess.run(
        [*s2s_bench_command(), "decode", "day-a", "--runs-dir", str(runs_dir)],
        input="Saturday, November 21, 2026\n",
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert decoded.returncode == 0, decoded.stderr
    assert decoded.stdout.strip(), "one translation for the one sentence"
