"""What part of the x axis (steps or minutes) the charts show, and where their cursor is."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

CURSOR_MOVES_PER_WINDOW = 40  # one press moves the cursor at least 1/40 of the window


@dataclass
class ChartView:
    """A window on the x axis, the whole of it by default, and a cursor; the keys of the dashboard and the
    compare screen change it, every chart of the screen draws it.

    The extent (`first`, `last`) is the x range of the data; a window that ends at `last` follows it as
    a live run grows.
    """

    width: float | None = None  # None: the whole extent
    end: float | None = None  # None: the window ends at the latest x
    cursor: float | None = None  # None: no cursor

    def key(self) -> tuple[float | None, float | None, float | None]:
        return (self.width, self.end, self.cursor)

    def limits(self, first: float, last: float) -> tuple[float, float]:
        """The x range shown, never empty."""
        if last - first <= 0:
            return first - 1, last + 1
        if self.width is None or self.width >= last - first:
            return first, last
        end = last if self.end is None else min(max(self.end, first + self.width), last)
        return end - self.width, end

    def zoom(self, factor: float, first: float, last: float) -> None:
        """Narrow (factor < 1) or widen the window about its centre; one that ends at the latest x keeps
        ending there. Widened to the whole extent, the view is the whole extent again."""
        if last - first <= 0:
            return
        low, high = self.limits(first, last)
        width = (high - low) * factor
        if width >= last - first:
            self.width = self.end = None
            return
        if self.end is not None:
            centre = (low + high) / 2
            self.end = min(centre + width / 2, last)
            if self.end >= last:
                self.end = None
        self.width = max(width, 1e-9)

    def pan(self, direction: int, first: float, last: float) -> None:
        """Move a zoomed window half its width earlier (-1) or later (+1)."""
        if self.width is None:
            return
        low, high = self.limits(first, last)
        end = min(max(high + direction * self.width / 2, first + self.width), last)
        self.end = None if end >= last else end

    def move_cursor(self, direction: int, xs: Sequence[float], first: float, last: float) -> None:
        """Put the cursor on the latest x in the window, or move it to the next x of `xs` (sorted)
        earlier or later, at least 1/CURSOR_MOVES_PER_WINDOW of the window away."""
        low, high = self.limits(first, last)
        inside = [x for x in xs if low <= x <= high]
        if not inside:
            return
        if self.cursor is None or not low <= self.cursor <= high:
            self.cursor = inside[-1]
            return
        target = self.cursor + direction * (high - low) / CURSOR_MOVES_PER_WINDOW
        if direction > 0:
            index = bisect.bisect_left(inside, target)
            self.cursor = inside[min(index, len(inside) - 1)]
        else:
            index = bisect.bisect_right(inside, target) - 1
            self.cursor = inside[max(index, 0)]

    def reset(self) -> None:
        """The whole extent, no cursor."""
        self.width = self.end = self.cursor = None


def value_at(xs: Sequence[float], ys: Sequence[float], x: float) -> float | None:
    """The value of a curve at `x`: its last point at or before `x` (None before its first)."""
    index = bisect.bisect_right(xs, x) - 1
    return ys[index] if index >= 0 else None


def in_window(
    xs: Sequence[float], ys: Sequence[float], low: float, high: float
) -> tuple[list[float], list[float]]:
    """The points from `low` to `high`, and the one on each side, so that the line runs to the edges."""
    start = max(bisect.bisect_left(xs, low) - 1, 0)
    stop = min(bisect.bisect_right(xs, high) + 1, len(xs))
    return list(xs[start:stop]), list(ys[start:stop])
