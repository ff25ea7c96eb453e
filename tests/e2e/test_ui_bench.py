"""A seconds-long smoke of `s2s-bench bench ui` (benchmarks are not timed tests; CI runs a smoke of
each so that it cannot rot). The numbers themselves are measured with the bench command on a
real model, not asserted here.
"""

from __future__ import annotations

import json

from typer.testing import CliRunner

from workbench.cli.bench import bench_app
from workbench.engine.recipe import load_recipe
from workbench.engine.run_folder import RunFolder
from workbench.engine.session import TrainingSession

TINY = [
    "data.train_size=200",
    "data.valid_size=10",
    "data.test_size=0",
    "model.embedding_size=8",
    "model.hidden_size=16",
    "training.batch_size=16",
    "training.valid_every=5",
    "training.max_steps=5",
    "training.threads=1",
]


def test_bench_ui_types_while_a_copy_of_the_run_trains(tmp_path):
    # Trained here, before any app runs, to its first validation (a checkpoint and samples).
    run = RunFolder.create(tmp_path / "runs", load_recipe("dates-en-fr", TINY), name="tiny")
    # Finished at the recipe's own step limit, as a user's runs are: the bench's copy must train on past it.
    assert TrainingSession(run, "cpu").train() == "finished"
    before = sorted(p.name for p in run.path.rglob("*"))

    result = CliRunner().invoke(
        bench_app,
        ["ui", str(run.path), "--sentences", "2", "--key-interval", "0.02", "--quiet", "--json"],
        catch_exceptions=False,
    )

    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, "--json prints one line"
    out = json.loads(lines[0])
    assert out["sentences"] == out["translations"] == 2 and out["missed"] == 0
    assert out["keystrokes"] >= 2 and out["decodes"] >= 2 and out["lag_samples"] > 0
    for key in ("keystroke_to_translation_ms", "event_loop_lag_ms"):
        assert 0 < out[f"{key}_p50"] <= out[f"{key}_{'p95' if key.startswith('key') else 'p99'}"]
    assert out["decode_ms_p50"] > 0
    assert out["train"] is True and out["trainer_running"] is True
    assert out["trainer_steps_while_typing"] > 0, "the copy trained on while the sentences were typed"
    assert out["trainer_tgt_tokens_per_s"] > 0 and out["system_sampling"] is True
    assert sorted(p.name for p in run.path.rglob("*")) == before, "the bench works on a copy"
