"""Reading a drawn chart's text in tests: its y labels, its plot rows, the rows its curves take."""

from __future__ import annotations

import re

BRAILLE = re.compile("[\u2801-\u28ff]")
LABEL = re.compile(r"^\s*(-?[\d.]+)┤")


def plot_lines(chart) -> list[str]:
    """The chart drawn now, as lines of text."""
    chart._redraw()
    return str(chart.render()).splitlines()


def y_labels(lines: list[str]) -> dict[int, float]:
    """Line index -> the y label on it."""
    return {i: float(m.group(1)) for i, line in enumerate(lines) if (m := LABEL.match(line))}


def line_value(labels: dict[int, float], line: int) -> float:
    """The value of a line of the plot, from its top two labels (the lines are a step of value apart)."""
    (upper_line, upper), (lower_line, lower) = list(labels.items())[:2]
    return upper + (upper_line - line) * (upper - lower) / (lower_line - upper_line)


def highest_drawn(lines: list[str]) -> int:
    """The index of the top line with a curve's dots on it."""
    return next(i for i, line in enumerate(lines) if BRAILLE.search(line))


def share_drawn(lines: list[str]) -> float:
    """The share of the plot's rows (inside its frame) from its lowest drawn point to its highest."""
    top = next(i for i, line in enumerate(lines) if "┌" in line)
    bottom = next(i for i, line in enumerate(lines) if "└" in line)
    drawn = [i for i in range(top + 1, bottom) if BRAILLE.search(lines[i])]
    return (drawn[-1] - drawn[0] + 1) / (bottom - top - 1)
