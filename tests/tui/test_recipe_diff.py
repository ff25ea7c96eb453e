from workbench.engine.recipe import recipe_from_dict
from workbench.tui.recipe_diff import recipe_differences

from .fixture_runs import recipe_dict


def test_differences_list_only_the_keys_that_differ():
    a = recipe_from_dict(recipe_dict("a"))
    b = recipe_from_dict(recipe_dict("b", cell="lstm"))
    assert recipe_differences(a, b) == [("name", "a", "b"), ("model.cell", "gru", "lstm")]
    assert recipe_differences(a, a) == []
