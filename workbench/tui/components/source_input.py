"""The decode panel's input line: typed or pasted text is shown and translated without control characters."""

from __future__ import annotations

from textual.widgets import Input

from ..display_format import printable


class SourceInput(Input):
    def validate_value(self, value: str) -> str:
        # A pasted escape sequence would otherwise be drawn as is, and act on the terminal (or the browser's).
        return printable(value)
