"""An attention matrix as a coloured text grid: source pieces across, target pieces down.

The header row and the label column stay put while the cells scroll, so long sentences stay readable
at 80x24. Cell background is the weight; where colours are unavailable (NO_COLOR, 16 colours) shading
glyphs carry it instead. The weight under the cursor is shown in the border subtitle.
"""

from __future__ import annotations

import textwrap
from itertools import accumulate

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.color import Color
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..display_format import piece
from ..keys import GRID_BINDINGS

EOS_LABEL = "</s>"
HOT = Color.parse("#ffae00")
SHADES = ((0.8, "█"), (0.55, "▓"), (0.3, "▒"), (0.1, "░"), (0.0, " "))
MAX_COLUMN = 8
PLAIN = Style()  # never a None style: the NO_COLOR filter cannot handle one
MAX_LABEL = 12


class AttentionGrid(ScrollView, can_focus=True):
    BINDINGS = GRID_BINDINGS

    cursor: reactive[tuple[int, int]] = reactive((0, 0), always_update=True)
    numbers: reactive[bool] = reactive(False)

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.src: list[str] = []
        self.tgt: list[str] = []
        self.weights: list[list[float]] = []
        self.empty_message = "no translation yet"
        self._widths: list[int] = []
        self._starts: list[int] = []
        self._label_width = 0

    # Data ---------------------------------------------------------------------------------------
    def show(
        self,
        src_pieces: list[str],
        tgt_pieces: list[str],
        attention: list[list[float]] | None,
        empty_message: str = "no translation yet",
    ) -> None:
        """Show an alignment; `attention` has one row per target piece plus the end-of-sentence row."""
        self.empty_message = empty_message
        self.src = [piece(p) for p in src_pieces]
        self.tgt = [piece(p) for p in tgt_pieces] + [EOS_LABEL] if src_pieces else []
        rows = [list(r) for r in (attention or [])][: len(self.tgt)]
        rows += [[0.0] * len(self.src) for _ in range(len(self.tgt) - len(rows))]
        self.weights = [(r + [0.0] * len(self.src))[: len(self.src)] for r in rows]
        self._widths = [min(max(len(p), 3), MAX_COLUMN) + 1 for p in self.src]
        self._starts = [0, *accumulate(self._widths)][:-1]
        self._label_width = min(max((len(t) for t in self.tgt), default=0), MAX_LABEL) + 2
        self.virtual_size = Size(self._label_width + sum(self._widths), len(self.tgt) + 1)
        row, col = self.cursor
        self.cursor = (min(row, max(len(self.tgt) - 1, 0)), min(col, max(len(self.src) - 1, 0)))
        self.refresh()

    def clear(self, message: str) -> None:
        self.show([], [], None, empty_message=message)

    def weight_at(self, row: int, col: int) -> float:
        try:
            return self.weights[row][col]
        except IndexError:
            return 0.0

    def cursor_info(self) -> str:
        """'samedi ← Saturday 0.93' for the cell under the cursor."""
        if not self.src:
            return ""
        row, col = self.cursor
        return f"{self.tgt[row]} ← {self.src[col]}  {self.weight_at(row, col):.2f}"

    # Cursor -------------------------------------------------------------------------------------
    def watch_cursor(self, cursor: tuple[int, int]) -> None:
        self.border_subtitle = self.cursor_info()
        self._keep_cursor_visible()
        self.refresh()

    def watch_numbers(self) -> None:
        self.refresh()

    def action_move(self, rows: int, cols: int) -> None:
        if not self.src:
            return
        row, col = self.cursor
        self.cursor = (min(max(row + rows, 0), len(self.tgt) - 1), min(max(col + cols, 0), len(self.src) - 1))

    def action_move_to_start(self) -> None:
        self.cursor = (self.cursor[0], 0)

    def action_move_to_end(self) -> None:
        self.cursor = (self.cursor[0], max(len(self.src) - 1, 0))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or not self.src or offset.y < 1 or offset.x < self._label_width:
            return
        scroll_x, scroll_y = self.scroll_offset
        row = scroll_y + offset.y - 1
        x = scroll_x + offset.x - self._label_width
        col = next((j for j, start in enumerate(self._starts) if start <= x < start + self._widths[j]), None)
        if row < len(self.tgt) and col is not None:
            self.cursor = (row, col)

    def _keep_cursor_visible(self) -> None:
        if not self.src or not self.is_mounted:
            return
        row, col = self.cursor
        view = self.scrollable_content_region
        body_width, body_height = max(view.width - self._label_width, 1), max(view.height - 1, 1)
        x, y = self.scroll_offset
        start, end = self._starts[col], self._starts[col] + self._widths[col]
        if start < x:
            x = start
        elif end > x + body_width:
            x = end - body_width
        if row < y:
            y = row
        elif row >= y + body_height:
            y = row - body_height + 1
        self.scroll_to(x, y, animate=False, immediate=True)

    # Drawing ------------------------------------------------------------------------------------
    @property
    def _use_glyphs(self) -> bool:
        """Shading glyphs where background colours would not tell weights apart."""
        return self.app.no_color or self.app.console.color_system in (None, "standard", "windows")

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        if not self.src:  # the message, wrapped to the width (an error names a long path)
            lines = textwrap.wrap(self.empty_message, max(width, 1), break_on_hyphens=False) or [""]
            text = lines[y] if y < len(lines) else ""
            return Strip([Segment(text[:width].ljust(width), Style(dim=True))])
        scroll_x, scroll_y = self.scroll_offset
        body_width = max(width - self._label_width, 0)
        if y == 0:
            label = Segment(" " * self._label_width, PLAIN)
            body = Strip(self._header_segments())
        else:
            row = scroll_y + y - 1
            if row >= len(self.tgt):
                return Strip.blank(width, PLAIN)
            is_cursor_row = row == self.cursor[0]
            text = " " + _fit(self.tgt[row], self._label_width - 2).ljust(self._label_width - 2) + " "
            label = Segment(text, Style(bold=is_cursor_row, dim=self.tgt[row] == EOS_LABEL))
            body = Strip(self._row_segments(row))
        body = body.crop(scroll_x, scroll_x + body_width)
        return Strip.join([Strip([label]), body]).extend_cell_length(width, PLAIN)

    def _header_segments(self) -> list[Segment]:
        col = self.cursor[1]
        return [
            Segment(_fit(p, w - 1).ljust(w - 1) + " ", Style(bold=j == col, underline=j == col))
            for j, (p, w) in enumerate(zip(self.src, self._widths))
        ]

    def _row_segments(self, row: int) -> list[Segment]:
        segments = []
        glyphs = self._use_glyphs
        base = self.background_colors[1]
        for j, width in enumerate(self._widths):
            w = self.weight_at(row, j)
            cell = width - 1
            is_cursor = (row, j) == self.cursor
            if is_cursor or self.numbers:
                text = f"{round(w * 100):>2}".center(cell)
            elif glyphs:
                text = next(g for limit, g in SHADES if w >= limit) * cell
            else:
                text = " " * cell
            if glyphs:
                style = Style(reverse=is_cursor, bold=is_cursor)
            else:
                bg = base.blend(HOT, min(max(w, 0.0), 1.0))
                style = Style(
                    bgcolor=bg.rich_color,
                    color=bg.get_contrast_text(1.0).rich_color,
                    bold=is_cursor,
                    underline=is_cursor,
                    reverse=is_cursor,
                )
            segments += [Segment(text, style), Segment(" ", PLAIN)]
        return segments


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"
