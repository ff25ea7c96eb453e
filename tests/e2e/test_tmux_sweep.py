"""End to end, as a user would: `s2s-bench` in tmux, start the built-in sweep from the Runs screen with
small runs (`set in every run`), two at a time, and watch its table fill in until every run has finished
with a BLEU score; then find the sweep grouped on the Runs screen.

Trains six tiny models for real (about a minute on 2 CPU cores): marked slow.
"""

from __future__ import annotations

import os
import re
import time

import pytest

from workbench.engine.errors import UserError
from workbench.engine.run_folder import RunFolder
from workbench.jobs.sweep_queue import SweepQueue, list_sweeps

from .test_tmux import save
from .tmux_session import TmuxSession, s2s_bench_command, terminal_env

SWEEP = "dates-cell-attention"
SMALL = (
    "training.max_steps=40 training.valid_every=20 model.hidden_size=32 model.embedding_size=16 "
    "data.train_size=500 data.valid_size=40 data.test_size=40 tokenizer.vocab_size=120"
)
# A row of the sweep table: overlay mark, cell, attention, BLEU, chrF, loss, steps, time, tok/s, state.
ROW = re.compile(
    r"[●○]\s+(gru|lstm)\s+(bahdanau|general|concat)\s+(—|\d+\.\d)\s.*?(✓ finished|● running|◌ queued)"
)


def table_rows(screen: str) -> list[tuple[str, str, str, str]]:
    return [m.groups() for line in screen.splitlines() if (m := ROW.search(line))]


def all_finished_with_bleu(screen: str) -> bool:
    rows = table_rows(screen)
    return len(rows) == 6 and all(state == "✓ finished" and bleu != "—" for *_, bleu, state in rows)


@pytest.mark.slow
def test_start_a_sweep_and_watch_its_table_fill_in(tmp_path):
    runs_dir = tmp_path / "runs"
    tmux = TmuxSession(socket=f"s2s-e2e-sweep-{os.getpid()}", width=100, height=32)
    try:
        tmux.start([*s2s_bench_command(), "--runs-dir", str(runs_dir)], terminal_env())
        tmux.wait_for(lambda s: re.search(r"sweeps \(\d+\)", s), 60, "the built-in sweeps among the recipes")

        # Filter the recipes down to the sweep, open its form, set small runs two at a time, start.
        tmux.keys("/")
        tmux.type(SWEEP)
        tmux.keys("Enter", "n")
        screen = tmux.wait_for(lambda s: "Start a sweep" in s and "6 runs" in s, 10, "the sweep form")
        time.sleep(1)  # the form focuses its first field, the sweep, once mounted
        tmux.keys("Tab")  # to "runs at a time"
        tmux.type("2")
        tmux.wait_for(lambda s: re.search(r"runs at a time\s+2\s", s), 10, "2 typed in")
        tmux.keys("Tab")  # to "set in every run"
        tmux.type(SMALL)
        save("sweep-form", tmux.wait_for(lambda s: "vocab_size=120" in s, 20, "the keys typed in"))
        tmux.keys("Enter")  # Enter in a field starts

        screen = tmux.wait_for(lambda s: f"sweep {SWEEP}" in s and len(table_rows(s)) == 6, 30, "the table")
        save("sweep-table-started", screen)
        (queue,) = list_sweeps(runs_dir)
        assert queue.read()["parallel"] == 2
        assert all(run.recipe().training.max_steps == 40 for run in queue.runs())

        # While it trains: some runs running, never more than two at a time, the rest queued.
        screen = tmux.wait_for(lambda s: "● running" in s, 60, "a run to start")
        assert len([r for r in table_rows(screen) if r[3] == "● running"]) <= 2
        save("sweep-table-training", screen)

        screen = tmux.wait_for(all_finished_with_bleu, 300, "every run finished with a BLEU score")
        save("sweep-table-finished", screen)
        assert "✓6/6" in screen
        assert {(cell, attention) for cell, attention, *_ in table_rows(screen)} == {
            (c, a) for c in ("gru", "lstm") for a in ("bahdanau", "general", "concat")
        }
        for run in queue.runs():  # the table says what the run folders say
            assert run.status()["state"] == "finished"

        # Back on the Runs screen the sweep's runs are grouped under it.
        tmux.keys("Escape")  # the filter still holds the sweep's name: its header and all its runs
        screen = tmux.wait_for(  # the table's title names the sweep too: wait for the grouped runs, and
            # for the Runs screen's own reading of the runs folder to catch up with the last run's end
            lambda s: (
                "├ gru-bahdanau" in s and "└ lstm-concat" in s and re.search(rf"sweep {SWEEP}\s.*✓6/6", s)
            ),
            20,
            "the finished sweep on the Runs screen",
        )
        save("runs-with-sweep", screen)
        tmux.keys("q")
        tmux.wait_for(lambda s: "EXITED 0" in s, 20, "s2s-bench to exit")
    finally:
        tmux.kill()
        _stop_everything(runs_dir)


def _stop_everything(runs_dir) -> None:
    """Leave nothing training after a failure: cancel what is queued, stop what runs."""
    for queue in list_sweeps(runs_dir):
        for run in queue.runs():
            state = run.status().get("state")
            if state == "queued":
                try:
                    SweepQueue.open(runs_dir, queue.name).cancel(run.name)
                except UserError:
                    pass  # the runner started it meanwhile: stopped below on a second pass
            elif state in ("running", "paused"):
                run.send_control("stop")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(RunFolder(r.path).trainer_alive() for r in queue.runs()):
            time.sleep(0.5)
