"""The latest validation's sentences: source, reference and the model's output, fitted to the width."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from ..display_format import printable


class SamplesTable(Static):
    """A plain Rich table (not a DataTable): it always fits its width and draws in one pass."""

    _shown: object = ()  # the validation on screen (never a validation: the first show always draws)

    def show(self, validation: dict[str, Any] | None) -> None:
        if validation is self._shown:
            return  # polled again, no new validation: nothing to lay out
        self._shown = validation
        self.rows: list[tuple[str, str, str, str]] = []
        if not validation:
            self.border_title = "samples · none yet"
            self.update(Text("The samples of each validation appear here.", style="dim"))
            return
        self.border_title = f"samples · step {validation.get('step', '?')}"
        table = Table(expand=True, box=None, padding=(0, 1), show_edge=False, header_style="bold")
        table.add_column("", width=1, no_wrap=True)
        for name in ("source", "reference", "output"):
            table.add_column(name, ratio=1, no_wrap=True, overflow="ellipsis")
        for sample in validation.get("samples", []):
            ref, hyp = sample.get("ref"), sample.get("hyp", "")
            if ref is None:
                mark = Text("?", style="dim")  # a probe sentence: no reference
            elif hyp == ref:
                mark = Text("✓", style="green")
            else:
                mark = Text("✗", style="red")
            # Text, not str: a sentence is never read as Rich markup ("[b]" in a corpus stays "[b]").
            table.add_row(
                mark,
                Text(printable(sample.get("src", ""))),
                Text("(probe)", style="dim") if ref is None else Text(printable(ref)),
                Text(printable(hyp)),
            )
            self.rows.append((mark.plain, sample.get("src", ""), "(probe)" if ref is None else ref, hyp))
        self.update(table)
