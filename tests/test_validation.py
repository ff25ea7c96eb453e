"""Validation during training and `s2s-bench eval` score a model by one function (validation.evaluate):
the same checkpoint on the same pairs gives the same numbers either way."""

import json
import os
import subprocess
import sys

from test_run_names import TINY

from workbench.engine.data.cache import CorpusCache, cache_folder
from workbench.engine.data.prepare import prepare
from workbench.engine.recipe import load_recipe
from workbench.engine.run_folder import RunFolder
from workbench.engine.session import TrainingSession

SCORES = ("bleu", "chrf", "exact", "loss", "accuracy")


def test_eval_on_the_valid_split_gives_the_scores_validation_wrote_for_that_checkpoint(tmp_path):
    run = RunFolder.create(tmp_path, load_recipe("reverse", TINY), name="rev")
    assert TrainingSession(run, "cpu").train(max_steps=10) == "finished"
    (validated,) = [r for r in run.read_metrics()[0] if r["kind"] == "valid"]
    assert validated["step"] == 10  # `last` holds the weights it scored: the run ended there
    corpus = prepare(run.recipe(), CorpusCache(cache_folder(tmp_path)), run.tokenizer_dir)
    pairs = corpus.valid_pairs()
    (tmp_path / "valid.src").write_text("".join(f"{src}\n" for src, _ in pairs))
    (tmp_path / "valid.ref").write_text("".join(f"{ref}\n" for _, ref in pairs))
    args = ["eval", str(run.path), "--checkpoint", "last", "--beam", "1", "--json",
            "--src", str(tmp_path / "valid.src"), "--ref", str(tmp_path / "valid.ref")]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "workbench", *args],
        capture_output=True, text=True, timeout=300, env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    scored = json.loads(done.stdout)
    assert scored["sentences"] == len(pairs) == 10
    assert {k: scored[k] for k in SCORES} == {k: validated[k] for k in SCORES}
