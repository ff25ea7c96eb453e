"""Chart axes labelled with round numbers: a value axis whose every text row is a round step of value
apart (a label names the row it sits on, and a point is drawn on the row of its value), and whole-number
step ticks."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

ROUND_MANTISSAS = (1.0, 2.0, 2.5, 5.0)


def round_step(raw: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten that is at least `raw` (> 0)."""
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for mantissa in (*ROUND_MANTISSAS, 10.0):
        if mantissa * magnitude >= raw * (1 - 1e-9):
            return mantissa * magnitude
    return 10.0 * magnitude  # pragma: no cover - the loop ends at 10


def _is_round(value: float) -> bool:
    mantissa = value / 10.0 ** math.floor(math.log10(value) + 1e-9)
    return any(math.isclose(mantissa, m) for m in ROUND_MANTISSAS)


@dataclass(frozen=True)
class ValueAxis:
    low: float  # the value of the bottom row
    high: float  # the value of the top row
    ticks: list[float]
    labels: list[str]


def value_axis(
    low: float,
    high: float,
    rows: int,
    max_labels: int = 6,
    label: Callable[[float], str] | None = None,
) -> ValueAxis:
    """Limits and ticks for a value axis of `rows` text rows that holds `low`..`high`.

    The rows are a round step apart (plotext puts a value on the row nearest to it), the bottom row is a
    multiple of that step, and the labels sit on rows whose values are multiples of a round spacing:
    every row, or every 2nd, 4th, 5th... where more than `max_labels` would crowd the axis. `label`
    formats a tick (default: as many decimals as the spacing needs).
    """
    rows = max(rows, 2)
    if high - low < 1e-12:
        pad = abs(high) * 0.1 or 1.0
        low, high = low - pad, high + pad
    step = round_step((high - low) / (rows - 1))
    while True:
        bottom = math.floor(low / step + 1e-9) * step
        if bottom + (rows - 1) * step >= high - 1e-9 * step:
            break
        step = round_step(step * 1.001)
    every = next(
        k
        for k in (1, 2, 4, 5, 10, 20, 25, 50, 100)
        if (rows - 1) / k + 1 <= max_labels and _is_round(k * step)
    )
    spacing = every * step
    values = [bottom + row * step for row in range(rows)]
    ticks = [v for v in values if math.isclose(v / spacing, round(v / spacing), abs_tol=1e-6)]
    decimals = max(0, -math.floor(math.log10(spacing) + 1e-9) + (1 if _mantissa(spacing) == 2.5 else 0))
    fmt = label or (lambda v: f"{v:.{decimals}f}")
    return ValueAxis(bottom, bottom + (rows - 1) * step, ticks, [fmt(v) for v in ticks])


def _mantissa(value: float) -> float:
    return round(value / 10.0 ** math.floor(math.log10(value) + 1e-9), 6)


def whole_ticks(low: float, high: float, n: int = 5) -> list[int]:
    """About n whole numbers from `low` to `high` at a round spacing (1, 2, 2.5 or 5 times a power of
    ten): plotext's own ticks fall on fractions such as 1937.5."""
    spacing = max(1, int(round_step(max(high - low, 1.0) / (n - 1))))
    return list(range(math.ceil(low / spacing) * spacing, math.floor(high) + 1, spacing))
