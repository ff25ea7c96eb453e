"""Each choice a recipe offers is defined once: its registry, the recipe's checks and the docs name the
same options, and every name builds what it says."""

import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from workbench.engine.attention import SCORES
from workbench.engine.data import DATA_SOURCES, GENERATED_KINDS, corpus_sources
from workbench.engine.data.generated import PAIR_MAKERS
from workbench.engine.decoders import CELL_CLASSES
from workbench.engine.encoders import RNN_CLASSES
from workbench.engine.model import build_model
from workbench.engine.optimizers import OPTIMIZERS, build_optimizer
from workbench.engine.recipe import (
    _CHOICES,
    PRECISIONS,
    DataConfig,
    ModelConfig,
    RecipeError,
    TokenizerConfig,
    load_recipe,
)
from workbench.engine.schedules import LR_SCHEDULES, SCHEDULED_SAMPLING
from workbench.engine.tokenizers import TOKENIZERS, load_tokenizers, train_tokenizers

ROOT = Path(__file__).parents[1]

# Recipe key -> the registries (name -> builder) that the torch code reads for it.
REGISTRIES = {
    "data.kind": [DATA_SOURCES],
    "tokenizer.kind": [TOKENIZERS],
    "model.cell": [RNN_CLASSES, CELL_CLASSES],
    "model.attention": [{"none": None, **SCORES}],
    "training.lr_schedule": [LR_SCHEDULES],
    "training.scheduled_sampling": [SCHEDULED_SAMPLING],
    "training.optimizer": [OPTIMIZERS],
}


@pytest.mark.parametrize("key", sorted(REGISTRIES))
def test_every_registry_names_exactly_the_choices_the_recipe_checks(key):
    for registry in REGISTRIES[key]:
        assert list(registry) == list(_CHOICES[key])


# A model section in which each choice of these keys is allowed (model_problem).
OPEN = {
    "model.decoder_init": ModelConfig(),
    "model.attention_combine": ModelConfig(),
    "model.decoder_order": ModelConfig(input_feeding=False),
    "model.deep_output": ModelConfig(input_feeding=False, decoder_order="bahdanau"),
    "model.cell": ModelConfig(),
    "model.attention": ModelConfig(input_feeding=False, bidirectional=False),
}


@pytest.mark.parametrize("key", sorted(OPEN))
def test_every_choice_of_a_model_key_builds_a_model_that_says_so(key):
    field = key.removeprefix("model.")
    for name in _CHOICES[key]:
        cfg = replace(OPEN[key], embedding_size=4, hidden_size=6, **{field: name})
        if field == "attention_combine" or (field == "decoder_order" and name == "bahdanau"):
            cfg = replace(cfg, input_feeding=False)
        decoder = build_model(cfg, 7, 7).decoder
        said = {
            "decoder_init": decoder.decoder_init,
            "decoder_order": decoder.decoder_order,
            "cell": decoder.cell_type,
            "deep_output": "maxout" if decoder.maxout else "tanh",
            "attention_combine": "concat" if decoder.attentional_layer is not None else "add",
            "attention": "none" if decoder.attention is None else name,
        }[field]
        assert said == name, (key, name)


def test_every_optimizer_a_recipe_names_is_the_torch_optimizer_of_that_name():
    model = torch.nn.Linear(2, 2)
    for name in _CHOICES["training.optimizer"]:
        recipe = load_recipe("reverse", [f"training.optimizer={name!r}"])
        assert type(build_optimizer(model, recipe.training)).__name__.lower() == name


def test_a_recipe_naming_an_optimizer_outside_the_registry_is_refused_naming_the_choices():
    with pytest.raises(RecipeError, match="training.optimizer") as refused:
        load_recipe("reverse", ["training.optimizer='adagrad'"])
    assert all(name in str(refused.value) for name in OPTIMIZERS)


DOCUMENTED = sorted(
    {
        *REGISTRIES,
        "tokenizer.model_type",
        "training.optimizer",
        *(k for k in _CHOICES if k.startswith("model.")),
    }
)


@pytest.mark.parametrize("key", DOCUMENTED)
def test_the_recipes_page_lists_exactly_the_choices_of_each_key_with_a_registry_or_a_model_key(key):
    rows = re.findall(r"^\| `([\w.]+)` \| ([^|]+) \|", (ROOT / "docs/recipes.md").read_text(), re.M)
    documented = {name: re.findall(r"`([\w-]+)`", values) for name, values in rows}
    assert documented.get(key) == list(_CHOICES[key])


def test_the_data_page_has_a_row_for_every_data_kind_and_each_generated_kind_makes_its_pairs():
    table = (ROOT / "docs/data.md").read_text().split("| `data.kind` |", 1)[1].split("\n\n", 1)[0]
    first_cells = re.findall(r"^\| ([^|]+) \|", table, re.M)
    assert sorted(name for cell in first_cells for name in re.findall(r"`(\w+)`", cell)) == sorted(
        DATA_SOURCES
    )
    assert list(PAIR_MAKERS) == list(GENERATED_KINDS)
    for kind in GENERATED_KINDS:
        sources = corpus_sources(DataConfig(kind=kind, train_size=5, valid_size=2, test_size=1), seed=1)
        assert len([pair for block in sources.train.blocks() for pair in block]) == 5, kind


def test_every_tokenizer_kind_trains_saves_and_loads_back_as_its_own_class(tmp_path):
    pairs = [("the cat sat", "le chat"), ("a dog ran", "un chien"), ("the dog", "le chien")] * 4
    for kind, cls in TOKENIZERS.items():
        cfg = TokenizerConfig(kind=kind, vocab_size=40, joint=False)
        trained = train_tokenizers(cfg, pairs, tmp_path / kind, seed=1)
        loaded = load_tokenizers(tmp_path / kind)
        assert type(trained.src) is type(loaded.tgt) is cls and loaded.src.kind == kind
        assert loaded.tgt.encode("le chien") == trained.tgt.encode("le chien")


def test_the_help_of_a_precision_option_names_exactly_the_precisions_a_recipe_takes():
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "300"}
    for command in (["decode"], ["eval"], ["bench", "decode"]):
        shown = subprocess.run(
            [sys.executable, "-m", "workbench", *command, "--help"], capture_output=True, text=True, env=env
        ).stdout
        line = next(line for line in shown.splitlines() if "--precision" in line)
        assert re.search(r"--precision\s+\S+\s+([\w |]+?) \(", line)[1].split(" | ") == list(PRECISIONS)
