"""A key means one thing on every screen where it is bound."""

from collections import defaultdict
from pathlib import Path

from workbench.tui import keys

# Keys that stand for "the obvious thing here" on every screen: leave, toggle the highlighted item.
CONTEXTUAL = {"escape", "space"}
# Known to mean two things still (the decode screen's n-best and checkpoint, the compare screen's sort).
TWO_MEANINGS = {"n", "k", "o"}


def meanings() -> dict[str, set[str]]:
    found = defaultdict(set)
    for name in dir(keys):
        if name.endswith("_BINDINGS") and name != "GRID_BINDINGS":
            for binding in getattr(keys, name):
                for key in binding.key.split(","):
                    found[key.strip()].add(binding.description)
    return found


def test_a_key_has_one_meaning_across_the_screens():
    shared = {key: what for key, what in meanings().items() if len(what) > 1}
    assert set(shared) <= CONTEXTUAL | TWO_MEANINGS, shared


def test_l_is_the_log_and_g_the_system_on_every_screen():
    found = meanings()
    assert found["l"] == {"Log"} and found["g"] == {"System"}
    assert found["y"] == {"Log y"} and found["x"] == {"Step/time"}


def test_docs_workbench_md_lists_every_key_with_its_name():
    """docs/workbench.md has a row `| key | Name |` for every binding the app offers."""
    text = (Path(__file__).parents[2] / "docs" / "workbench.md").read_text()
    names = {"slash": "/", "escape": "esc", "space": "space"}
    for name in dir(keys):
        if name.endswith("_BINDINGS") and name != "GRID_BINDINGS":
            for binding in getattr(keys, name):
                shown = binding.key_display or names.get(binding.key, binding.key)
                assert f"| `{shown}` | {binding.description} |" in text, (name, shown, binding.description)
