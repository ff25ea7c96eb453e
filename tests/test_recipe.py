"""Recipes: loading, overrides, and one clear error (file and key) for every kind of mistake."""

import pytest
import tomli_w

from workbench.engine.recipe import (
    DEFAULT_RECIPE,
    PRECISIONS,
    RecipeError,
    builtin_recipes,
    check_precision,
    dotted_keys,
    find_recipe,
    load_recipe,
)

REQUIRED_BUILTINS = {"dates-en-fr", "dates-en-zh", "reverse", "multi30k-de-en", "bench-gru512"}


def write(tmp_path, text, name="r.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_every_builtin_recipe_loads(monkeypatch):
    monkeypatch.setenv("S2S_DATA", "/data")
    found = builtin_recipes()
    assert REQUIRED_BUILTINS <= set(found)
    for name in found:
        recipe = load_recipe(name)
        assert recipe.name == name
        assert recipe.description


def test_overrides_change_any_key_with_its_type():
    recipe = load_recipe(
        "dates-en-fr",
        [
            "model.hidden_size=64",
            "model.cell=lstm",
            "training.lr=1e-4",
            "decoding.probes=['a', 'b']",
            "model.bidirectional=false",
            "training.max_minutes=2",
        ],
    )
    assert recipe.model.hidden_size == 64
    assert recipe.model.cell == "lstm"
    assert recipe.training.lr == 1e-4
    assert recipe.decoding.probes == ["a", "b"]
    assert recipe.model.bidirectional is False
    assert recipe.training.max_minutes == 2.0


def test_bare_string_override_for_paths():
    recipe = load_recipe("multi30k-de-en", ["data.dir=/some/where/multi30k"])
    assert recipe.data.dir == "/some/where/multi30k"


def test_environment_variable_sets_the_data_folder(monkeypatch):
    monkeypatch.setenv("S2S_DATA", "/corpora")
    assert load_recipe("multi30k-de-en").data.dir == "/corpora/multi30k"
    monkeypatch.delenv("S2S_DATA")
    assert load_recipe("multi30k-de-en").data.dir == "data/multi30k"


def test_resolved_recipe_round_trips(tmp_path):
    recipe = load_recipe("dates-en-zh", ["model.hidden_size=32"])
    path = write(tmp_path, recipe.to_toml())
    assert load_recipe(path) == recipe


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[model]\nhiden_size = 3\n", "unknown key 'model.hiden_size' (did you mean 'model.hidden_size'?)"),
        ("[modle]\n", "unknown key 'modle' (did you mean 'model'?)"),
        ("[model]\nhidden_size = 'big'\n", "'model.hidden_size' must be int, got 'big'"),
        ("[model]\nhidden_size = 2.5\n", "'model.hidden_size' must be int"),
        ("[model]\nbidirectional = 1\n", "'model.bidirectional' must be bool"),
        ("[model]\nhidden_size = true\n", "'model.hidden_size' must be int, got True"),
        ("[model]\nhidden_size = 0\n", "'model.hidden_size' must be > 0; got 0"),
        ("[model]\ndropout = 1.5\n", "'model.dropout' must be in [0, 1); got 1.5"),
        ("[model]\ncell = 'transformer'\n", "'model.cell' must be one of gru, lstm, rnn"),
        ("[decoding]\nprecision = 'fp16'\n", "'decoding.precision' must be one of fp32, bf16, int8"),
        ("[model]\nattention = 'none'\ninput_feeding = true\n", "'model.input_feeding' needs attention"),
        ("[model]\nattention = 'dot'\nbidirectional = true\n", "'model.attention' = 'dot' needs keys"),
        ("[model]\nattention = 'none'\ninput_feeding = false\ndecoder_init = 'zeros'\n", "blind to the"),
        ("[model]\ndecoder_init = 'final'\nencoder_layers = 2\n", "must equal model.decoder_layers"),
        ("[data]\nkind = 'folder'\n", "'data.dir' is required when data.kind = 'folder'"),
        ("[decoding]\nbeam_size = 2\nn_best = 3\n", "'decoding.n_best' must be <= decoding.beam_size"),
        ("model = 3\n", "'model' must be a table"),
        ("[decoding]\nprobes = 'x'\n", "'decoding.probes' must be a list"),
        (
            "[data]\nkind = 'folder'\ndir = '${NO_SUCH_VAR_S2S}/x'\n",
            "needs the environment variable NO_SUCH_VAR_S2S",
        ),
        ("[model\n", "not valid TOML"),
    ],
)
def test_bad_recipes_name_the_file_and_the_key(tmp_path, text, message):
    needs_data = "[data]" not in text and not text.startswith("[model\n")
    path = write(tmp_path, text + ("\n[data]\nkind = 'dates'\n" if needs_data else ""))
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.hidden_size", "expected section.key=value"),
        ("model.hidden_size=abc", "'model.hidden_size' must be int"),
        ("model.nope=1", "unknown key 'model.nope'"),
        ("seed.x=1", "'seed' is not a section"),
    ],
)
def test_bad_overrides(override, message):
    with pytest.raises(
        RecipeError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")
    ):
        load_recipe("dates-en-fr", [override])


def test_unknown_recipe_name_suggests_the_closest():
    with pytest.raises(RecipeError, match="did you mean 'dates-en-fr'"):
        find_recipe("dates-en-fn")


def test_invalid_utf8_recipe(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_bytes(b"name = '\xff'\n")
    with pytest.raises(RecipeError, match="not UTF-8"):
        load_recipe(path)


def test_the_command_line_and_the_workbench_start_from_one_default_recipe():
    from workbench.cli import main
    from workbench.tui import app

    assert DEFAULT_RECIPE in builtin_recipes()
    assert main.DEFAULT_RECIPE is DEFAULT_RECIPE and app.DEFAULT_RECIPE is DEFAULT_RECIPE


def test_a_precision_given_outside_a_recipe_is_checked_against_the_recipes_choices():
    assert [check_precision(p) for p in PRECISIONS] == list(PRECISIONS)
    with pytest.raises(RecipeError, match="precision must be one of fp32, bf16, int8; got 'fp16'"):
        check_precision("fp16")


def test_a_recipe_as_dotted_keys_names_every_key_as_set_does_in_recipe_order():
    recipe = load_recipe("dates-en-fr", ["model.cell=lstm"])
    dotted = recipe.dotted()
    assert list(dotted)[:3] == ["name", "description", "seed"] and dotted["model.cell"] == "lstm"
    for key, value in dotted.items():  # each key, set back with --set, is the same recipe
        text = tomli_w.dumps({"v": value}).partition("=")[2].strip()
        assert load_recipe("dates-en-fr", ["model.cell=lstm", f"{key}={text}"]).dotted() == dotted, key


def test_dotted_keys_keep_dotted_names_and_a_table_that_is_a_value():
    table = {"model": {"cell": ["gru"]}, "training.lr": {"log_uniform": [1e-4, 1e-3]}, "seed": 1}
    assert dotted_keys(table, is_value=lambda t: set(t) == {"log_uniform"}) == {
        "model.cell": ["gru"],
        "training.lr": {"log_uniform": [1e-4, 1e-3]},
        "seed": 1,
    }
