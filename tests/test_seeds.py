"""The five seed systems (recipes/seed-*.toml) as their articles wrote them, and the two ladders.

The slow test reads ../shared/data (S2S_DATA) and is skipped where it is absent: each seed trains for a
short budget on a small sample of its corpus (so that CI can afford five), validates twice and must
have learned between the two validations, then decodes its probes through the CLI.
"""

import json
import math
import os
import subprocess
import sys

import pytest

from workbench.engine.recipe import builtin_recipes, load_recipe
from workbench.engine.run_folder import RunFolder
from workbench.engine.session import TrainingSession
from workbench.jobs.sweep import load_sweep

SEEDS = sorted(name for name in builtin_recipes() if name.startswith("seed-"))
LADDERS = {"ladder-seed-3": "tatoeba-en-zh", "ladder-seed-5": "tatoeba-en-fr"}


def test_there_are_five_seeds_each_with_a_description_and_a_listing_map():
    assert [name.split("-")[1] for name in SEEDS] == ["1", "2", "3", "4", "5"]
    for name in SEEDS:
        recipe = load_recipe(name)
        assert recipe.description.startswith(f"Seed {name.split('-')[1]} as written")
        header = builtin_recipes()[name].read_text().split("description =")[0]
        assert "-> recipe key" in header and "Chosen where" in header


@pytest.mark.parametrize(("ladder", "best"), sorted(LADDERS.items()))
def test_a_ladder_starts_at_its_seed_and_ends_at_the_best_recipe_for_the_pair(ladder, best):
    sweep = load_sweep(ladder)
    points = sweep.points()
    assert points[0].values == {} and points[0].run_name.endswith("-1-as-written")
    target = load_recipe(best, [f"{key}={json.dumps(value)}" for key, value in sweep.fixed.items()])

    def comparable(recipe):
        values = recipe.to_dict()
        for key in ("name", "description"):
            values.pop(key)
        values["decoding"].pop("probes")
        return values

    assert comparable(points[-1].recipe) == comparable(target)
    assert comparable(points[0].recipe) != comparable(target)


def _log_uniform_loss(run: RunFolder) -> float:
    from workbench.engine.tokenizers import load_tokenizers

    return math.log(load_tokenizers(run.path / "tokenizer").tgt.vocab_size)


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.parametrize("name", SEEDS)
def test_each_seed_trains_learns_and_decodes_its_probes(name, shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("S2S_DATA", str(shared_data))
    recipe = load_recipe(
        name,
        [
            "data.max_pairs=1000",
            "data.valid_fraction=0.1",
            "training.max_epochs=0",
            "training.max_steps=60",
            "training.batch_size=16",
            "training.valid_every=30",
            "training.log_every=10",
            "training.threads=1",
            "decoding.valid_sentences=40",
        ],
    )
    run = RunFolder.create(tmp_path, recipe.with_absolute_paths(), name=name)
    assert TrainingSession(run, "cpu").train() == "finished"

    records, _ = run.read_metrics()
    valid = [r for r in records if r["kind"] == "valid"]
    assert [r["step"] for r in valid] == [30, 60]
    first, last = valid
    assert last["loss"] < first["loss"] < _log_uniform_loss(run)
    assert last["accuracy"] > first["accuracy"]

    probes = recipe.decoding.probes
    env = {**os.environ, "NO_COLOR": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "workbench", "decode", str(run.path), "--beam", "1"],
        input="\n".join(probes) + "\n", capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == len(probes)
