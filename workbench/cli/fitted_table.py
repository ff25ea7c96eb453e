"""Tables that fit the terminal: where a table is wider, its least wanted columns are left out (as
`docker ps` and nvitop do), so that no cell is ever cut to `…`; `--json` has every column."""

from __future__ import annotations

from dataclasses import dataclass

from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

Cell = str | Text


@dataclass(frozen=True)
class Column:
    title: str
    drop: int = 0  # 0: always shown; where the table is too wide, the highest is left out first
    justify: str = "left"
    wrap: bool = False  # free text (a description, a progress line) may wrap; names and numbers never do


def fitted_table(
    columns: list[Column], rows: list[list[Cell]], width: int, title: str | None = None, caption: str = ""
) -> Table:
    """A table of the columns that fit in `width` terminal cells, every cell whole: the columns with the
    highest `drop` are left out first (of equals, the rightmost), and the caption names them. Where the
    columns that are never left out are wider still, the table is as wide as they need."""
    needs = [_needed(column, [row[i] for row in rows]) for i, column in enumerate(columns)]
    shown = list(range(len(columns)))
    by_drop = sorted((i for i, c in enumerate(columns) if c.drop), key=lambda i: (columns[i].drop, i))
    while by_drop and table_width([needs[i] for i in shown]) > width:
        shown.remove(by_drop.pop())
    left_out = [columns[i].title for i in range(len(columns)) if i not in shown]
    notes = [caption] if caption else []
    if left_out:
        notes.append(f"not shown at {width} columns: {', '.join(left_out)} (--json has them)")
    table = Table(title=title, caption="; ".join(notes) or None, title_justify="left")
    for i in shown:
        column = columns[i]
        table.add_column(
            column.title,
            justify=column.justify,  # type: ignore[arg-type]
            no_wrap=not column.wrap,
            min_width=needs[i],
        )
    for row in rows:
        table.add_row(*(row[i] for i in shown))
    if table_width([needs[i] for i in shown]) > width:
        table.width = table_width([needs[i] for i in shown])
    return table


def table_width(column_widths: list[int]) -> int:
    """The cells a rich table with the default box takes: each column, its padding and the rules between."""
    return sum(column_widths) + 3 * len(column_widths) + 1


def _needed(column: Column, cells: list[Cell]) -> int:
    """The cells a column needs: its longest cell (or, where it may wrap, its longest word) or title."""
    texts = [cell.plain if isinstance(cell, Text) else cell for cell in cells]
    if column.wrap:
        texts = [word for text in texts for word in text.split()]
    return max([cell_len(column.title), *(cell_len(text) for text in texts)])
