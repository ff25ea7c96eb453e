"""The Python API (docs/python-api.md) and the one decode path, on a real run trained for a few steps."""

import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from workbench.engine.recipe import load_recipe
from workbench.engine.run_folder import RunFolder
from workbench.engine.search import greedy_search, max_lengths
from workbench.engine.session import TrainingSession
from workbench.engine.translator import Translator

DOC = Path(__file__).parents[1] / "docs" / "python-api.md"
TINY = [
    "data.train_size=200",
    "data.valid_size=20",
    "data.test_size=0",
    "model.embedding_size=16",
    "model.hidden_size=32",
    "training.batch_size=16",
    "training.valid_every=2",
    "training.max_steps=2",  # nearly the random initialisation: outputs of several tokens
    "training.threads=1",
    "tokenizer.vocab_size=60",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> RunFolder:
    recipe = load_recipe("dates-en-fr", [*TINY, "decoding.length_penalty=0.6"])
    folder = RunFolder.create(tmp_path_factory.mktemp("runs"), recipe, name="tiny")
    assert TrainingSession(folder, "cpu").train() == "finished"
    return folder


def test_the_python_api_example_runs(run, capsys):
    [code] = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    exec(compile(code, str(DOC), "exec"), {"RUN": str(run.path)})
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 + 3 * 2


def test_greedy_scores_take_the_recipes_length_penalty_as_beam_scores_do(run):
    translator = Translator.from_run(run)
    for sentence in ("Jan 3, 1999", "Saturday, November 21, 2026", "March 14, 1879", "Dec 31, 2000"):
        [[greedy]] = translator.translate([sentence], beam_size=1)
        ids = translator.tokenizers.src.encode(sentence)
        src, lengths = torch.tensor([ids]), torch.tensor([len(ids)])
        limits = max_lengths(
            lengths, translator.decoding.max_length_ratio, translator.decoding.max_length_offset
        )
        [[at_06]] = greedy_search(translator.model, src, lengths, limits, alpha=0.6)
        [[at_1]] = greedy_search(translator.model, src, lengths, limits, alpha=1.0)
        if at_06.tokens:  # an empty output has length 1 (its end) whatever the penalty
            break
    else:
        pytest.fail("the tiny model decodes every sentence to nothing")
    assert at_06.score != at_1.score
    assert greedy.score == pytest.approx(at_06.score)


def test_eval_opens_the_run_folder_once(run, tmp_path, monkeypatch):
    from workbench.cli.main import app

    opened = []
    real_open = RunFolder.open.__func__
    monkeypatch.setattr(
        RunFolder, "open", classmethod(lambda cls, path: opened.append(path) or real_open(cls, path))
    )
    (tmp_path / "src").write_text("Jan 3, 1999\n", encoding="utf-8")
    (tmp_path / "ref").write_text("3 janvier 1999\n", encoding="utf-8")
    args = ["eval", str(run.path), "--src", str(tmp_path / "src"), "--ref", str(tmp_path / "ref"), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert len(opened) == 1
