"""Each choice a recipe offers is defined once: its registry, the recipe's checks and the docs name the
same options, and every name builds what it says."""

import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from workbench.engine.attention import SCORES
from workbench.engine.decoders import CELL_CLASSES
from workbench.engine.encoders import RNN_CLASSES
from workbench.engine.model import build_model
from workbench.engine.optimizers import OPTIMIZERS, build_optimizer
from workbench.engine.recipe import _CHOICES, ModelConfig, RecipeError, load_recipe
from workbench.engine.schedules import LR_SCHEDULES, SCHEDULED_SAMPLING

ROOT = Path(__file__).parents[1]

# Recipe key -> the registries (name -> builder) that the torch code reads for it.
REGISTRIES = {
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


@pytest.mark.parametrize(
    "key", [*sorted(k for k in _CHOICES if k.startswith("model.")), "training.optimizer"]
)
def test_the_recipes_page_lists_exactly_the_choices_of_each_key_it_documents(key):
    rows = re.findall(r"^\| `([\w.]+)` \| ([^|]+) \|", (ROOT / "docs/recipes.md").read_text(), re.M)
    documented = {name: re.findall(r"`([\w-]+)`", values) for name, values in rows}
    assert documented.get(key) == list(_CHOICES[key])
