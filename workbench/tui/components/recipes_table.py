"""The built-in recipes a run can start from (the seed systems first, under their title), and the
built-in sweeps (tagged `sweep`) over them; descriptions cut to the panel's width."""

from __future__ import annotations

from pathlib import Path

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import DataTable

from workbench.engine.errors import UserError
from workbench.engine.recipe import RecipeError, load_recipe, recipe_groups
from workbench.jobs.sweep import load_sweep

from ..keys import TABLE_BINDINGS

SWEEP_PREFIX = "sweep:"  # row keys of sweeps (recipe names cannot hold a colon)
COLUMNS = ("recipe", "model", "description")
MIN_DESCRIPTION = 12  # narrower than this, the description is not cut but scrolls sideways


class RecipesTable(DataTable):
    BINDINGS = TABLE_BINDINGS

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.rows_cells: list[tuple[tuple[Text | str, str, str], str | None]] = []  # cells, key
        self.names: list[str] = []  # recipes shown
        self.sweep_names: list[str] = []  # sweeps shown, after the recipes
        self.row_keys: list[str | None] = []  # each row's key; None: a group's title row
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
        self.names, self.sweep_names, self.row_keys, self.rows_cells = [], [], [], []
        groups = recipe_groups(recipes)
        for title, group in groups:
            title = title or ("other recipes" if len(groups) > 1 else "")  # one group needs no title
            shown = [(name, path) for name, path in group.items() if self._matches(name, path, needle)]
            if shown and title:
                self.rows_cells.append(((Text(title, style="bold"), "", ""), None))
                self.row_keys.append(None)
            for name, path in shown:
                model, description = self._described[path]
                self.names.append(name)
                self.row_keys.append(name)
                self.rows_cells.append(((Text("  " + name) if title else name, model, description), name))
        for name, path in (sweeps or {}).items():
            if not self._matches(name, path, needle, sweep=True):
                continue
            model, description = self._described[path]
            self.sweep_names.append(name)
            self.row_keys.append(SWEEP_PREFIX + name)
            label = Text.assemble((name, ""), (" sweep", "bold magenta"))
            self.rows_cells.append(((label, model, description), SWEEP_PREFIX + name))
        self._fill()
        self.border_title = f"recipes ({len(self.names)}) · sweeps ({len(self.sweep_names)})"
        if current in self.row_keys:
            self.move_cursor(row=self.row_keys.index(current), animate=False)

    def _fill(self) -> None:
        """Put the rows in the table, each description cut to the room the other columns leave."""
        room = self.content_region.width
        if len(self.rows_cells) + 1 > self.content_region.height:  # a vertical scrollbar takes its share
            room -= self.styles.scrollbar_size_vertical
        padding = 2 * self.cell_padding
        used = sum(
            max([cell_len(COLUMNS[i]), *(cell_len(str(cells[i])) for cells, _ in self.rows_cells)]) + padding
            for i in (0, 1)
        )
        width = room - used - padding
        cursor = self.cursor_row
        self.clear(columns=True)
        self.add_columns(*COLUMNS)
        for (name, model, description), key in self.rows_cells:
            if room > 0 and width >= MIN_DESCRIPTION and cell_len(description) > width:
                description = Text(description)
                description.truncate(width, overflow="ellipsis")
            self.add_row(name, model, description, key=key)
        if 0 <= cursor < self.row_count:
            self.move_cursor(row=cursor, animate=False)

    def on_resize(self) -> None:
        if self.rows_cells:
            self._fill()

    def _matches(self, name: str, path: Path, needle: str, sweep: bool = False) -> bool:
        if path not in self._described:
            self._described[path] = _describe_sweep(path) if sweep else _describe(path)
        model, description = self._described[path]
        return not needle or needle in f"{name} {model} {description}".lower()

    def _row_key(self) -> str | None:
        keys = self.row_keys
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
