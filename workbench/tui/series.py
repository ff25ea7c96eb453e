"""Turning metric records into plottable series: smoothing, log scale and downsampling."""

from __future__ import annotations

import math
from collections.abc import Sequence

# The average spans about 1 / (1 - weight) points; at most this share of the series, so that a short
# run (ten records of a 100-step run) is drawn near its own values rather than its first losses.
MAX_EMA_SPAN = 0.1


def ema_weight(weight: float, points: int) -> float:
    """The weight `ema` applies to a series of `points`: `weight`, lowered where its span would be more
    than MAX_EMA_SPAN of the series."""
    return max(0.0, min(weight, 1 - 1 / (MAX_EMA_SPAN * points))) if points else 0.0


def ema(values: Sequence[float], weight: float) -> list[float]:
    """Exponential moving average with TensorBoard's bias correction (weight 0 returns the values), its
    weight lowered for short series (`ema_weight`)."""
    weight = ema_weight(weight, len(values))
    if weight <= 0:
        return list(values)
    out, last, debias = [], 0.0, 1.0
    for value in values:
        last = weight * last + (1 - weight) * value
        debias *= weight
        out.append(last / (1 - debias))
    return out


def log10(values: Sequence[float]) -> list[float]:
    """log10 of each value, with non-positive values clamped (plotext's own log scale breaks redraws)."""
    return [math.log10(max(v, 1e-12)) for v in values]


def downsample(xs: Sequence[float], ys: Sequence[float], max_points: int) -> tuple[list[float], list[float]]:
    """At most `max_points` points: each bucket of neighbours becomes its mean; the last point is kept."""
    n = len(xs)
    if n <= max_points or max_points < 2:
        return list(xs), list(ys)
    out_x: list[float] = []
    out_y: list[float] = []
    buckets = max_points - 1
    for b in range(buckets):
        lo, hi = b * (n - 1) // buckets, (b + 1) * (n - 1) // buckets
        hi = max(hi, lo + 1)
        out_x.append(sum(xs[lo:hi]) / (hi - lo))
        out_y.append(sum(ys[lo:hi]) / (hi - lo))
    out_x.append(xs[-1])
    out_y.append(ys[-1])
    return out_x, out_y
