"""End to end, as a user would: `s2s-bench` in tmux, start the default recipe, watch the loss fall, decode a
date, read the translation and its attention grid off the screen, quit, reopen, find the run still training.

Trains the default recipe for real (a few minutes on 2 CPU cores): marked slow.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from workbench.engine.run_folder import RunFolder, list_runs

from .tmux_session import TmuxSession, s2s_bench_command, terminal_env

DATE = "Saturday, November 21, 2026"
EXPECTED = "samedi 21 novembre 2026"
CAPTURES = os.environ.get("S2S_E2E_CAPTURES")  # a folder to keep each screen's text in


def save(name: str, screen: str) -> None:
    if CAPTURES:
        Path(CAPTURES).mkdir(parents=True, exist_ok=True)
        (Path(CAPTURES) / f"{name}.txt").write_text(screen)


def grid_labels(screen: str) -> str:
    """The target pieces down the left of the attention grid, joined (the grid's rows, top to bottom)."""
    lines = screen.splitlines()
    start = next(i for i, line in enumerate(lines) if "─ attention " in line)
    labels = []
    for line in lines[start + 2 :]:
        if line.startswith("╰"):
            break
        cell = line.strip("│").split()
        if cell and cell[0] == "</s>":
            break
        labels.append(cell[0] if cell else "")
    return "".join(labels)


def loss_fell(run: RunFolder) -> bool:
    train = [r for r in run.read_metrics()[0] if r.get("kind") == "train"]
    return len(train) >= 5 and train[-1]["loss"] < 0.5 * train[0]["loss"]


def probe_translated(run: RunFolder) -> bool:
    validations = run.read_samples()[0]
    return bool(validations) and any(
        s["src"] == DATE and s["hyp"] == EXPECTED for s in validations[-1]["samples"]
    )


def wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(1)


@pytest.mark.slow
def test_start_watch_decode_quit_and_reattach(tmp_path):
    runs_dir = tmp_path / "runs"
    command = [*s2s_bench_command(), "--runs-dir", str(runs_dir)]
    tmux = TmuxSession(socket=f"s2s-e2e-{os.getpid()}")
    run: RunFolder | None = None
    try:
        tmux.start(command, terminal_env())
        screen = tmux.wait_for(lambda s: "recipes" in s and "dates-en-fr" in s, 60, "the Runs screen")
        save("runs-empty", screen)

        # Start the default recipe from the Runs screen: n opens the form, Enter (on its first field) starts.
        tmux.keys("n")
        screen = tmux.wait_for(lambda s: "Start a run" in s, 10, "the new-run form")
        save("new-run-form", screen)
        tmux.keys("Enter")
        screen = tmux.wait_for(
            lambda s: "Dashboard" in s and "running" in s, 60, "the dashboard of the new run"
        )
        (run,) = [RunFolder(r.path) for r in list_runs(runs_dir)]

        wait(lambda: loss_fell(run), 300, "the training loss to halve")
        screen = tmux.wait_for(lambda s: "valid exact" in s and "┤" in s, 30, "the loss curve")
        save("dashboard", screen)

        wait(lambda: probe_translated(run), 600, f"a validation that translates the probe to '{EXPECTED}'")
        time.sleep(2)  # the dashboard shows the validation's samples
        save("dashboard-validated", tmux.screen())

        # Decode: type the date, read the translation and its attention grid back.
        tmux.keys("d")
        tmux.wait_for(lambda s: "Type a sentence" in s, 10, "the decode screen")
        tmux.type(DATE)
        screen = tmux.wait_for(
            lambda s: re.search(rf"1\.\s+-?\d+\.\d+\s+{EXPECTED}", s) is not None,
            30,
            "the translation of the date",
        )
        save("decode", screen)
        assert grid_labels(screen).replace("▁", "") == EXPECTED.replace(" ", "")
        assert "</s>" in screen and "←" in screen  # the end-of-sentence row, the weight under the cursor

        tmux.keys("Escape", "a")
        screen = tmux.wait_for(lambda s: "decode panel" in s and EXPECTED in s, 10, "the attention screen")
        save("attention", screen)
        tmux.keys("v")
        save(
            "attention-validations", tmux.wait_for(lambda s: "validation " in s, 10, "validation alignments")
        )
        tmux.keys("r")
        save(
            "runs",
            tmux.wait_for(lambda s: "● running" in s and run.name in s, 10, "the run listed as running"),
        )

        # Quit: training goes on in its own process.
        tmux.keys("q")
        tmux.wait_for(lambda s: "EXITED 0" in s, 20, "s2s-bench to exit")
        time.sleep(1)
        assert run.status()["state"] in ("running", "paused"), run.status()
        tmux.kill()

        # Reopen: the app attaches to the live run.
        tmux = TmuxSession(socket=f"s2s-e2e-{os.getpid()}-2")
        tmux.start(command, terminal_env())
        screen = tmux.wait_for(
            lambda s: "Dashboard" in s and run.name in s and "running" in s,
            60,
            "the reopened app to attach to the live run",
        )
        save("reattached", screen)
        tmux.keys("q")
        tmux.wait_for(lambda s: "EXITED 0" in s, 20, "s2s-bench to exit")
    finally:
        tmux.kill()
        if run is not None and run.status().get("state") in ("running", "paused"):
            run.send_control("stop")
            deadline = time.monotonic() + 60
            while run.trainer_alive() and time.monotonic() < deadline:
                time.sleep(0.5)
