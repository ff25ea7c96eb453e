"""Chart axes labelled with round numbers: a value axis whose labels are multiples of a round spacing,
each on the row it names (a point is drawn on the row of its value), its rows a fraction of that spacing
apart so that the values fill the chart; and whole-number step ticks."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

ROUND_MANTISSAS = (1.0, 2.0, 2.5, 5.0)
MAX_LABEL_GAP = 4  # the most rows between the labels of an axis that has only two
MAX_ROWS_BELOW = 2  # the most rows an axis may leave empty below the values, to end on a label


def round_step(raw: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten that is at least `raw` (> 0)."""
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for mantissa in (*ROUND_MANTISSAS, 10.0):
        if mantissa * magnitude >= raw * (1 - 1e-9):
            return mantissa * magnitude
    return 10.0 * magnitude  # pragma: no cover - the loop ends at 10


@dataclass(frozen=True)
class ValueAxis:
    low: float  # the value of the bottom row
    high: float  # the value of the top row
    ticks: list[float]
    labels: list[str]


@dataclass(frozen=True)
class _Layout:
    spacing: float  # between two labels
    every: int  # rows from one label to the next
    bottom: float  # the value of the bottom row, a multiple of the rows' step (spacing / every)


def value_axis(
    low: float,
    high: float,
    rows: int,
    max_labels: int = 6,
    label: Callable[[float], str] | None = None,
    ceiling: float | None = None,
) -> ValueAxis:
    """Limits and ticks for a value axis of `rows` text rows that holds `low`..`high`.

    The labels are the multiples of a round spacing on every k-th row, so the rows are spacing/k apart
    and a label names the row it sits on (plotext puts a value on the row nearest to it). Of the spacings
    and k that give 3 to `max_labels` labels, or 2 at most MAX_LABEL_GAP rows apart, the shortest axis is
    taken: the values fill as many rows as they can. The top stays at or below `ceiling` (a score's 100)
    unless `high` is above it; to end there on a label the axis may start a row or two below the values
    (0 20 ... 100 over an empty bottom row, not 0 and 100 alone). `label` formats a tick (default: as
    many decimals as the spacing needs).
    """
    rows = max(rows, 2)
    if high - low < 1e-12:
        pad = abs(high) * 0.1 or 1.0
        low, high = low - pad, high + pad
    top_limit = ceiling if ceiling is not None and high <= ceiling else math.inf
    layout = _shortest_layout(low, high, rows, max_labels, top_limit) or _shortest_layout(
        low, high, rows, max_labels, math.inf
    )
    if layout is None:  # two rows either side of zero: no round labels name both
        fmt = label or (lambda v: f"{v:.3g}")
        return ValueAxis(low, high, [low, high], [fmt(low), fmt(high)])
    spacing, bottom = layout.spacing, layout.bottom
    top = bottom + (rows - 1) * spacing / layout.every
    ticks = [n * spacing for n in range(_first_multiple(bottom, spacing), _last_multiple(top, spacing) + 1)]
    decimals = max(0, -math.floor(math.log10(spacing) + 1e-9) + (1 if _mantissa(spacing) == 2.5 else 0))
    fmt = label or (lambda v: f"{v:.{decimals}f}")
    return ValueAxis(bottom, top, ticks, [fmt(v) for v in ticks])


def _shortest_layout(low: float, high: float, rows: int, max_labels: int, top_limit: float) -> _Layout | None:
    """The layout of the shortest axis that holds `low`..`high` with labels as `value_axis` says, its top
    at or below `top_limit` (None: there is none)."""
    best: tuple[tuple[bool, float, int, int], _Layout] | None = None
    spacing = round_step((high - low) / (2 * max_labels))
    for _ in range(5 * len(ROUND_MANTISSAS)):  # five powers of ten
        if best is not None and not best[0][0] and spacing > best[0][1] * (high - low):
            break  # two labels this far apart need a longer axis than the best
        for every in range(1, rows):
            step = spacing / every
            lowest = math.floor(low / step + 1e-9)  # the row step's last multiple at or below `low`
            for below in range(min(every, MAX_ROWS_BELOW + 1)):
                bottom = (lowest - below) * step
                top = bottom + (rows - 1) * step
                if top < high - 1e-9 * step or top > top_limit + 1e-9 * step:
                    continue
                labels = _last_multiple(top, spacing) - _first_multiple(bottom, spacing) + 1
                if not 2 <= labels <= max_labels:
                    continue
                sparse = labels < 3 and every > MAX_LABEL_GAP
                # spans equal but for rounding (1 every 4 rows, 0.5 every 2) are equal: the more labels win
                rank = (sparse, round((top - bottom) / (high - low), 9), below, -labels)
                if best is None or rank < best[0]:
                    best = (rank, _Layout(spacing, every, bottom))
        spacing = round_step(spacing * 1.001)
    return best[1] if best is not None else None


def _first_multiple(value: float, spacing: float) -> int:
    return math.ceil(value / spacing - 1e-9)


def _last_multiple(value: float, spacing: float) -> int:
    return math.floor(value / spacing + 1e-9)


def _mantissa(value: float) -> float:
    return round(value / 10.0 ** math.floor(math.log10(value) + 1e-9), 6)


def whole_ticks(low: float, high: float, n: int = 5) -> list[int]:
    """About n whole numbers from `low` to `high` at a round spacing (1, 2, 2.5 or 5 times a power of
    ten): plotext's own ticks fall on fractions such as 1937.5."""
    spacing = max(1, int(round_step(max(high - low, 1.0) / (n - 1))))
    return list(range(math.ceil(low / spacing) * spacing, math.floor(high) + 1, spacing))
