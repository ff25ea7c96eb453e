"""Comparing runs: which keys differ, the best validation scores, speed, sorting."""

import pytest

from workbench.engine.errors import UserError
from workbench.engine.recipe import load_recipe
from workbench.engine.run_folder import RunFolder
from workbench.jobs.comparison import METRICS, compare_runs, sort_rows


def make_run(runs, name, overrides, valid, train_speeds, state="finished"):
    run = RunFolder.create(runs, load_recipe("reverse", overrides), name)
    for step, (loss, bleu) in enumerate(valid, 1):
        run.append_metrics(
            {
                "kind": "valid",
                "step": step * 10,
                "wall": step * 2.0,
                "loss": loss,
                "bleu": bleu,
                "chrf": bleu + 10,
            }
        )
    for step, speed in enumerate(train_speeds, 1):
        run.append_metrics({"kind": "train", "step": step * 5, "wall": step * 1.0, "tgt_tokens_per_s": speed})
    run.write_status(state, step=10 * len(valid))
    return run


@pytest.fixture
def runs(tmp_path):
    return [
        make_run(tmp_path, "a", ["model.cell=gru"], [(2.0, 10.0), (1.5, 30.0), (1.7, 25.0)], [100, 300]),
        make_run(tmp_path, "b", ["model.cell=lstm"], [(1.2, 20.0)], [400]),
        make_run(tmp_path, "c", ["model.cell=lstm", "training.lr=0.01"], [], [], state="queued"),
    ]


def test_the_varied_keys_are_those_that_differ_and_metrics_are_the_best_of_each_run(runs):
    comparison = compare_runs(runs)
    assert comparison.varied == ["model.cell", "training.lr"]
    a, b, c = comparison.rows
    assert a.values == {"model.cell": "gru", "training.lr": 0.003}
    assert (a.bleu, a.chrf, a.loss, a.steps, a.seconds, a.tokens_per_s) == (30.0, 40.0, 1.5, 30, 6.0, 200.0)
    assert (b.loss, b.state) == (1.2, "finished")
    assert (c.bleu, c.loss, c.seconds, c.tokens_per_s, c.state) == (None, None, None, None, "queued")
    assert comparison.best("bleu") == 30.0 and comparison.best("loss") == 1.2
    assert comparison.best("tokens_per_s") == 400
    assert a.as_dict()["values"] == a.values and a.as_dict()["path"] == str(runs[0].path)


def test_given_keys_are_the_columns_even_where_runs_agree(runs):
    assert compare_runs(runs[:2], ["training.lr"]).rows[0].values == {"training.lr": 0.003}


def test_sorting_puts_the_best_first_and_runs_without_a_value_last(runs):
    rows = compare_runs(runs).rows
    assert [r.name for r in sort_rows(rows, "bleu")] == ["a", "b", "c"]
    assert [r.name for r in sort_rows(rows, "loss")] == ["b", "a", "c"]
    assert [r.name for r in sort_rows(rows, "loss", descending=True)] == ["a", "b", "c"]
    assert [r.name for r in sort_rows(rows, "model.cell")] == ["a", "b", "c"]
    assert [r.name for r in sort_rows(rows, "training.lr", descending=True)] == ["c", "a", "b"]
    with pytest.raises(UserError, match="--sort blue: no such column"):
        sort_rows(rows, "blue")
    assert set(METRICS.values()) == {"max", "min"}
