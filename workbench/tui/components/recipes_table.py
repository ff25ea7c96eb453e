"""The built-in recipes a run can start from, and the built-in sweeps (tagged `sweep`) over them."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.widgets import DataTable

from workbench.engine.errors import UserError
from workbench.engine.recipe import RecipeError, load_recipe
from workbench.engine.sweep import load_sweep

SWEEP_PREFIX = "sweep:"  # row keys of sweeps (recipe names cannot hold a colon)


class RecipesTable(DataTable):
    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.add_columns("recipe", "model", "description")
        self.names: list[str] = []  # recipes shown
        self.sweep_names: list[str] = []  # sweeps shown, after the recipes
        self._described: dict[Path, tuple[str, str]] = {}

    def show(
        self,
        recipes: dict[str, Path],
        filter_text: str = "",
        preferred: str | None = None,
        sweeps: dict[str, Path] | None = None,
    ) -> None:
        current = self._row_key() or preferred
        needle = filter_text.lower().strip()
        self.clear()
        self.names, self.sweep_names = [], []
        for kind, entries in (("recipe", recipes), ("sweep", sweeps or {})):
            for name, path in entries.items():
                if path not in self._described:
                    self._described[path] = _describe(path) if kind == "recipe" else _describe_sweep(path)
                model, description = self._described[path]
                if needle and needle not in f"{name} {model} {description}".lower():
                    continue
                if kind == "recipe":
                    self.names.append(name)
                    self.add_row(name, model, description, key=name)
                else:
                    self.sweep_names.append(name)
                    label = Text.assemble((name, ""), (" sweep", "bold magenta"))
                    self.add_row(label, model, description, key=SWEEP_PREFIX + name)
        self.border_title = f"recipes ({len(self.names)}) · sweeps ({len(self.sweep_names)})"
        keys = self.names + [SWEEP_PREFIX + n for n in self.sweep_names]
        if current in keys:
            self.move_cursor(row=keys.index(current), animate=False)

    def _row_key(self) -> str | None:
        keys = self.names + [SWEEP_PREFIX + n for n in self.sweep_names]
        return keys[self.cursor_row] if 0 <= self.cursor_row < len(keys) else None

    def highlighted_recipe(self) -> str | None:
        key = self._row_key()
        return key if key is not None and not key.startswith(SWEEP_PREFIX) else None

    def highlighted_sweep(self) -> str | None:
        key = self._row_key()
        return key.removeprefix(SWEEP_PREFIX) if key is not None and key.startswith(SWEEP_PREFIX) else None


def _describe(path: Path) -> tuple[str, str]:
    """(model summary, first line of the description) of a recipe file."""
    try:
        recipe = load_recipe(path)
    except RecipeError as exc:
        return "?", f"unreadable: {exc}"
    model = f"{recipe.model.cell} {recipe.model.attention} {recipe.model.hidden_size}"
    lines = recipe.description.strip().splitlines()
    return model, lines[0] if lines else ""


def _describe_sweep(path: Path) -> tuple[str, str]:
    """(how many runs over which keys, first line of the description) of a sweep file."""
    try:
        sweep = load_sweep(path)
    except UserError as exc:
        return "?", f"unreadable: {exc}"
    lines = sweep.description.strip().splitlines()
    return f"{len(sweep.points())} runs", lines[0] if lines else f"over {', '.join(sweep.varied())}"
