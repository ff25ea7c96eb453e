"""Run folders from elsewhere: tampered weights, malformed, huge or deeply nested files, and recipes that
point outside the folder are refused with a message naming the file (or ignored where decoding does not
need them), never a traceback and never code run or a file read that decoding does not need."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import tomli_w
import tomllib
import torch
from safetensors.torch import load_file, save_file

from workbench.engine.checkpoint import CheckpointError
from workbench.engine.recipe import load_recipe
from workbench.engine.run_folder import RunFolder, RunFolderError
from workbench.engine.session import TrainingSession
from workbench.engine.tokenizers import TokenizerError
from workbench.engine.translator import Translator

TINY = [
    "data.train_size=200",
    "data.valid_size=20",
    "model.hidden_size=16",
    "model.embedding_size=8",
    "training.valid_every=4",
    "training.threads=1",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    run = RunFolder.create(runs, load_recipe("reverse", TINY), name="r")
    TrainingSession(run, "cpu").train(max_steps=4)
    return run


@pytest.fixture
def copy(trained, tmp_path):
    """A copy of the trained run, to damage."""
    import shutil

    return RunFolder(shutil.copytree(trained.path, tmp_path / "copy"))


def rewrite_weights(run: RunFolder, change) -> None:
    path = run.checkpoints_dir / "best.safetensors"
    tensors = load_file(path)
    change(tensors)
    save_file(tensors, path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.pop("decoder.output_layer.weight"), "tensor 'decoder.output_layer.weight' is missing"),
        (lambda t: t.update(smuggled=torch.zeros(1)), "tensor 'smuggled' is not one of the model's"),
        (
            lambda t: t.update({"decoder.output_layer.weight": torch.zeros(3, 3)}),
            "tensor 'decoder.output_layer.weight' has shape [3, 3], the model's is [",
        ),
        (
            lambda t: t.update({"decoder.output_layer.weight": t["decoder.output_layer.weight"].double()}),
            "tensor 'decoder.output_layer.weight' is float64, the model's is float32",
        ),
    ],
    ids=["a tensor missing", "a tensor added", "a tensor of another shape", "a tensor of another dtype"],
)
def test_tampered_weights_are_refused_naming_the_tensor(copy, change, message, record_property):
    rewrite_weights(copy, change)
    with pytest.raises(CheckpointError, match="best.safetensors: does not fit this run's model: ") as error:
        Translator.from_run(copy.path, "best")
    assert message in str(error.value)
    record_property("inputs", 1)
    record_property("shows", str(error.value).replace(str(copy.path) + "/", ""))


def test_a_checkpoints_metadata_too_large_or_nested_too_deeply_is_refused(copy, record_property):
    meta = copy.checkpoints_dir / "best.json"
    meta.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(
        CheckpointError, match="best.json: not a readable checkpoint file \\(nested too deeply\\)"
    ):
        Translator.from_run(copy.path, "best")
    with open(meta, "wb") as f:
        f.write(b" " * (17 * 2**20))
    with pytest.raises(
        CheckpointError, match="best.json: not a readable checkpoint file \\(larger than"
    ) as e:
        Translator.from_run(copy.path, "best")
    record_property("inputs", 2)
    record_property("shows", str(e.value).replace(str(copy.path) + "/", ""))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"kind": ' + "[" * 50_000 + "]" * 50_000 + "}", "nested too deeply"),
        ("[1, 2]", "not a JSON object"),
        ("\xff\xfe not text", "not valid JSON"),
    ],
    ids=["nested too deeply", "not an object", "not JSON"],
)
def test_a_malformed_tokenizer_file_is_refused_naming_it(copy, content, message, record_property):
    (copy.tokenizer_dir / "tokenizer.json").write_bytes(content.encode("latin-1", "replace"))
    with pytest.raises(TokenizerError, match=message) as error:
        Translator.from_run(copy.path, "best")
    record_property("inputs", 1)
    record_property("shows", str(error.value).replace(str(copy.path) + "/", ""))


def test_a_malformed_status_file_reads_as_a_run_without_a_state(copy, record_property):
    copy.status_path.write_text("[" * 100_000)
    assert copy.status() == {"state": "new"}
    copy.status_path.write_text('["not", "an", "object"]')
    assert copy.status() == {"state": "new"}
    record_property("inputs", 2)
    record_property("shows", "the run lists without a state (new)")


@pytest.mark.parametrize(
    "content",
    ["a = " + "[" * 50_000 + "]" * 50_000, "# " + "x" * (2**20 + 10)],
    ids=["nested too deeply", "larger than 1 MiB"],
)
def test_a_recipe_too_large_or_nested_too_deeply_is_refused(copy, content, record_property):
    copy.recipe_path.write_text(content)
    with pytest.raises(RunFolderError, match="recipe.toml: (nested too deeply|larger than)") as error:
        copy.recipe()
    record_property("inputs", 1)
    record_property("shows", str(error.value).replace(str(copy.path) + "/", ""))


def test_decoding_reads_nothing_a_run_folders_recipe_points_at_outside_it(copy, tmp_path, record_property):
    """Decoding needs the tokenizer and the weights only: a recipe naming a FIFO as its corpus would make
    any read of it hang, and decoding does not."""
    trap = tmp_path / "trap"
    os.mkfifo(trap)
    recipe = tomllib.loads(copy.recipe_path.read_text())
    recipe["data"].update(kind="files", train_src=str(trap), train_tgt=str(trap))
    recipe["data"].update(valid_src=str(trap), valid_tgt=str(trap))
    copy.recipe_path.write_text(tomli_w.dumps(recipe))
    assert copy.recipe().data.train_src == str(trap)
    out = subprocess.run(
        [sys.executable, "-m", "workbench", "decode", str(copy.path)],
        input="a b c\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.splitlines()) == 1
    assert json.loads((copy.checkpoints_dir / "best.json").read_text())  # untouched
    record_property("inputs", 1)
    record_property("shows", "decodes; the recipe's corpus paths are never opened")
