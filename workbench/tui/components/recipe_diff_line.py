"""The highlighted run's recipe against a base recipe: each key that differs, `key base → run`."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static


class RecipeDiffLine(Static):
    def show(self, label: str, against: str, differences: list[tuple[str, str, str]] | None) -> None:
        """`differences`: (key, base value, run value) as text; None when a recipe could not be read."""
        text = Text.assemble((label, "bold"), f" vs {against}: ")
        if differences is None:
            text.append("a recipe is unreadable", style="red")
        elif not differences:
            text.append("the same recipe", style="dim")
        for n, (key, base, run) in enumerate(differences or []):
            text.append(" · " if n else "")
            text.append(key, style="dim")
            text.append(f" {base} → ")
            text.append(run, style="bold")
        self.update(text)

    def show_reference(self, label: str) -> None:
        """The highlighted run is the one the others are compared with: there is nothing to diff."""
        text = Text.assemble((label, "bold"), ": ")
        text.append("the reference run: the others' recipes are shown against it", style="dim")
        self.update(text)

    def plain(self) -> str:
        """What the line says, without styles (for tests and captures)."""
        rendered: Any = self.render()
        return str(rendered)
