"""The latest validation's sentences: source, reference and the model's output."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import DataTable


class SamplesTable(DataTable):
    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        self.add_columns("", "source", "reference", "output")

    def show(self, validation: dict[str, Any] | None) -> None:
        self.clear()
        if not validation:
            self.border_title = "samples · none yet"
            return
        self.border_title = f"samples · step {validation.get('step', '?')}"
        for sample in validation.get("samples", []):
            ref, hyp = sample.get("ref"), sample.get("hyp", "")
            if ref is None:
                mark = Text("?", style="dim")  # a probe sentence: no reference
            elif hyp == ref:
                mark = Text("✓", style="green")
            else:
                mark = Text("✗", style="red")
            self.add_row(mark, sample.get("src", ""), ref if ref is not None else Text("(probe)", style="dim"), hyp)
