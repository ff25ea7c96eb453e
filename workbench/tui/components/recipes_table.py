"""The built-in recipes a run can start from."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable

from workbench.engine.recipe import RecipeError, load_recipe


class RecipesTable(DataTable):
    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.add_columns("recipe", "model", "description")
        self.names: list[str] = []
        self._described: dict[Path, tuple[str, str]] = {}

    def show(self, recipes: dict[str, Path], filter_text: str = "", preferred: str | None = None) -> None:
        current = self.highlighted_recipe() or preferred
        needle = filter_text.lower().strip()
        self.clear()
        self.names = []
        for name, path in recipes.items():
            if path not in self._described:
                self._described[path] = _describe(path)
            model, description = self._described[path]
            if needle and needle not in f"{name} {model} {description}".lower():
                continue
            self.names.append(name)
            self.add_row(name, model, description, key=name)
        self.border_title = f"recipes ({len(self.names)})"
        if current in self.names:
            self.move_cursor(row=self.names.index(current), animate=False)

    def highlighted_recipe(self) -> str | None:
        if not self.names or not (0 <= self.cursor_row < len(self.names)):
            return None
        return self.names[self.cursor_row]


def _describe(path: Path) -> tuple[str, str]:
    """(model summary, first line of the description) of a recipe file."""
    try:
        recipe = load_recipe(path)
    except RecipeError as exc:
        return "?", f"unreadable: {exc}"
    model = f"{recipe.model.cell} {recipe.model.attention} {recipe.model.hidden_size}"
    lines = recipe.description.strip().splitlines()
    return model, lines[0] if lines else ""
