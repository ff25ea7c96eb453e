"""The differences between two recipes, key by key (for comparing runs)."""

from __future__ import annotations

from typing import Any

from workbench.engine.recipe import Recipe


def recipe_differences(a: Recipe, b: Recipe) -> list[tuple[str, Any, Any]]:
    """(key, value in a, value in b) for every key whose values differ, in recipe order."""
    flat_a, flat_b = a.dotted(), b.dotted()
    return [(key, flat_a.get(key), flat_b.get(key)) for key in flat_a if flat_a.get(key) != flat_b.get(key)]
