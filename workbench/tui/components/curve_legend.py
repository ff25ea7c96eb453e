"""Which curve is which run: a coloured line per overlaid run, named by the values it varies."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from ..display_format import rgb


class CurveLegend(Static):
    def show(self, entries: list[tuple[str, tuple[int, int, int]]]) -> None:
        """`entries`: (label, colour) per overlaid run."""
        text = Text()
        for label, color in entries:
            if text:
                text.append("  ")
            text.append("━━ ", style=rgb(color))
            text.append(label)
        self.update(text if entries else Text("no curves: space overlays the highlighted run", style="dim"))
