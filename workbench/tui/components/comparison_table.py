"""Compared runs, one row each: the varied recipe values and the metrics, sortable and filterable, with
the best value of each metric highlighted and the runs whose curves are overlaid marked in their colour."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from workbench.jobs.comparison import COLUMNS, METRICS, Comparison, RunRow, column_titles, sort_rows
from workbench.jobs.metric_format import column_text, value_text

from ..display_format import rgb, run_color, state_badge

MAX_OVERLAID = 8
BEST_STYLE = "bold reverse green"


class ComparisonTable(DataTable):
    """Rows of an engine `Comparison`; `show()` keeps the sort, the filter, the cursor and the overlay."""

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        self.comparison: Comparison | None = None
        self.rows_shown: list[RunRow] = []
        self.color_index: dict[Path, int] = {}  # run -> its index in the compared set: its colour everywhere
        self.overlaid: set[Path] | None = None  # None until the first rows: then the first MAX_OVERLAID
        self.sort_key: str | None = None  # None: the compared set's own order (a sweep's order)
        self.descending = False
        self.filter_text = ""
        self.with_names = True
        self._drawn: tuple[list, list, list] = ([], [], [])  # header, row keys, cells on screen

    def columns_shown(self) -> list[str]:
        """The column keys: the run's name (unless the varied values name it), varied keys, metrics."""
        varied = self.comparison.varied if self.comparison else []
        return (["run"] if self.with_names or not varied else []) + list(varied) + list(COLUMNS)

    def show(self, comparison: Comparison) -> None:
        """Replace the rows, keeping the cursor on the same run."""
        current = self.highlighted_row()
        self.comparison = comparison
        for row in comparison.rows:
            self.color_index.setdefault(row.run.path, len(self.color_index))
        if self.overlaid is None and comparison.rows:
            self.overlaid = {row.run.path for row in comparison.rows[:MAX_OVERLAID]}
        rows = comparison.rows
        if self.sort_key == "run":
            rows = sorted(rows, key=lambda row: row.name, reverse=self.descending)
        elif self.sort_key is not None:
            rows = sort_rows(rows, self.sort_key, self.descending)
        needle = self.filter_text.lower().strip()
        self.rows_shown = [row for row in rows if needle in self.row_text(row).lower()]
        columns = self.columns_shown()
        titles = column_titles(columns)
        header = [("overlay", " ")]
        for key in columns:
            title = titles[key]
            if key == self.sort_key:
                title += " ▼" if self.descending else " ▲"
            header.append((key, title))
        best = {m: comparison.best(m) for m in METRICS}
        cells = [
            [self.swatch(row), *(self.cell(row, key, best) for key in columns)] for row in self.rows_shown
        ]
        keys = [str(row.run.path) for row in self.rows_shown]
        if (header, keys) == self._drawn[:2]:
            # the same rows in the same order: change only the cells that changed (a rebuild would
            # scroll the table back to its left edge on every refresh of a training sweep)
            for key, old_cells, new_cells in zip(keys, self._drawn[2], cells):
                for (column, _), old, new in zip(header, old_cells, new_cells):
                    if old != new:
                        self.update_cell(key, column, new, update_width=True)
        else:
            self.clear(columns=True)
            for column, title in header:
                self.add_column(title, key=column)
            for key, row_cells in zip(keys, cells):
                self.add_row(*row_cells, key=key)
        self._drawn = (header, keys, cells)
        self.border_title = f"runs ({len(self.rows_shown)}/{len(comparison.rows)})"
        if current is not None:
            self.move_to(current.run.path)

    def swatch(self, row: RunRow) -> Text:
        """The run's colour: filled when its curves are overlaid."""
        overlaid = row.run.path in (self.overlaid or set())
        return Text("●" if overlaid else "○", style=rgb(run_color(self.color_index[row.run.path])))

    @staticmethod
    def cell(row: RunRow, key: str, best: dict[str, Any]) -> Text:
        value = row.name if key == "run" else row.get(key)
        if key == "state":
            return state_badge(row.state)
        text = column_text(key, value)
        is_best = key in METRICS and value is not None and value == best.get(key)
        justify = "right" if key in METRICS or key == "steps" else "left"
        return Text(text, style=BEST_STYLE if is_best else "", justify=justify)

    def row_text(self, row: RunRow) -> str:
        """What the filter matches: the run's name, its varied values and its state."""
        return " ".join([row.name, row.state, *(value_text(v) for v in row.values.values())])

    def move_to(self, path: Path) -> None:
        for index, row in enumerate(self.rows_shown):
            if row.run.path == path:
                self.move_cursor(row=index, animate=False)
                return

    def highlighted_row(self) -> RunRow | None:
        if not self.rows_shown or not (0 <= self.cursor_row < len(self.rows_shown)):
            return None
        return self.rows_shown[self.cursor_row]

    # What the screen changes --------------------------------------------------------------------
    def sort_by(self, key: str) -> None:
        """Sort by a column, best first for a metric; the same column again reverses the order."""
        if key == self.sort_key:
            self.descending = not self.descending
        else:
            self.sort_key = key
            self.descending = METRICS.get(key) == "max" or key == "steps"
        self._redraw()

    def next_sort(self) -> None:
        """Sort by the next column (after the last one: the compared set's own order)."""
        columns = self.columns_shown()
        index = columns.index(self.sort_key) + 1 if self.sort_key in columns else 0
        if index >= len(columns):
            self.sort_key = None
            self._redraw()
        else:
            self.sort_key = None
            self.sort_by(columns[index])

    def set_filter(self, text: str) -> None:
        self.filter_text = text
        self._redraw()

    def toggle_overlay(self, row: RunRow) -> bool:
        """Overlay the run's curves or take them off; False when MAX_OVERLAID are overlaid already."""
        overlaid = self.overlaid if self.overlaid is not None else set()
        if row.run.path in overlaid:
            overlaid.discard(row.run.path)
        elif len(overlaid) >= MAX_OVERLAID:
            return False
        else:
            overlaid.add(row.run.path)
        self.overlaid = overlaid
        self._redraw()
        return True

    def overlaid_rows(self) -> list[RunRow]:
        """The overlaid runs, in the compared set's order (so the legend reads the same way every time)."""
        if self.comparison is None:
            return []
        return [row for row in self.comparison.rows if row.run.path in (self.overlaid or set())]

    def _redraw(self) -> None:
        if self.comparison is not None:
            self.show(self.comparison)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        if event.column_key.value != "overlay":
            self.sort_by(str(event.column_key.value))
