"""The differences between two recipes, key by key (for comparing runs)."""

from __future__ import annotations

from typing import Any

from workbench.engine.recipe import Recipe


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"model": {"cell": "gru"}}` -> `{"model.cell": "gru"}`."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def recipe_differences(a: Recipe, b: Recipe) -> list[tuple[str, Any, Any]]:
    """(key, value in a, value in b) for every key whose values differ, in recipe order."""
    flat_a, flat_b = flatten(a.to_dict()), flatten(b.to_dict())
    return [(key, flat_a.get(key), flat_b.get(key)) for key in flat_a if flat_a.get(key) != flat_b.get(key)]
