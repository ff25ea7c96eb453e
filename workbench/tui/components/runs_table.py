"""The runs under the runs folder: name, recipe, state, step, best score, start time."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.widgets import DataTable

from ..display_format import metric, metric_label, state_badge, timestamp
from ..runs_index import RunSummary


class RunsTable(DataTable):
    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        self.add_columns("run", "recipe", "state", "step", "best", "started")
        self.summaries: list[RunSummary] = []
        self.marked: Path | None = None

    def show(self, summaries: list[RunSummary], filter_text: str = "") -> None:
        """Replace the rows, keeping the cursor on the same run."""
        current = self.highlighted_run()
        needle = filter_text.lower().strip()
        self.summaries = [s for s in summaries if needle in f"{s.name} {s.recipe} {s.state}".lower()]
        self.clear()
        for s in self.summaries:
            name = Text(("▶ " if s.path == self.marked else "") + s.name, style="bold" if s.live else "")
            best = f"{metric_label(s.metric)} {metric(s.metric, s.best)}" if s.best is not None else "—"
            self.add_row(
                name,
                s.recipe,
                state_badge(s.state),
                f"{s.step:,}",
                best,
                timestamp(s.started),
                key=str(s.path),
            )
        self.border_title = f"runs ({len(self.summaries)})"
        if current is not None:
            for row, s in enumerate(self.summaries):
                if s.path == current.path:
                    self.move_cursor(row=row, animate=False)
                    break

    def highlighted_run(self) -> RunSummary | None:
        if not self.summaries or not (0 <= self.cursor_row < len(self.summaries)):
            return None
        return self.summaries[self.cursor_row]
