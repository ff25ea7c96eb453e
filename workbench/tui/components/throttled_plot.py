"""A plotext chart that redraws at most a few times a second, with at most ~2 points per column."""

from __future__ import annotations

import math
import time

from textual_plotext import PlotextPlot
from textual_plotext.plot import Plot


class ThrottledPlot(PlotextPlot):
    """Subclasses implement `draw(plt, max_points)` and `plot_key()`; call `update_plot()` when their
    data may have changed.

    A plotext render costs 20-110 ms, so it happens only when `plot_key()` (what the chart draws) changed
    since the last draw, or the size did: a live run's poll that brought only a new memory reading, or a
    finished run polled again, costs nothing here. Changes are coalesced: the first draws at once, later
    ones at most every `MIN_INTERVAL` seconds.
    """

    MIN_INTERVAL = 0.3

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._last_draw = 0.0
        self._pending = False
        self._drawn_key: object = None
        self.draws = 0  # renders so far (tests check that unchanged data is not drawn again)

    def plot_key(self) -> object:  # pragma: no cover - abstract
        """What the drawing depends on besides the size: the same key draws the same chart."""
        raise NotImplementedError

    def update_plot(self) -> None:
        """Redraw (throttled) if what the chart shows changed since it was last drawn."""
        if self.plot_key() != self._drawn_key:
            self.mark_dirty()

    def mark_dirty(self) -> None:
        if self._pending:
            return
        self._pending = True
        wait = self._last_draw + self.MIN_INTERVAL - time.monotonic()
        if wait <= 0:
            self.call_later(self._redraw)
        else:
            self.set_timer(wait, self._redraw)

    def on_resize(self) -> None:
        self.mark_dirty()  # the number of points depends on the width

    def _redraw(self) -> None:
        self._pending = False
        self._last_draw = time.monotonic()
        self._drawn_key = self.plot_key()
        self.draws += 1
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        self.draw(plt, max_points=max(2 * self.size.width, 20))
        self.refresh()

    def draw(self, plt: Plot, max_points: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


def plot_line(
    plt: Plot, xs: list[float], ys: list[float], label: str | None, color: str | tuple[int, int, int]
) -> None:
    """A line in braille dots; a lone point (one validation so far) as a visible dot instead.

    No label: no legend entry.
    """
    if len(xs) == 1:
        plt.scatter(xs, ys, label=label, color=color, marker="●")
    else:
        plt.plot(xs, ys, label=label, color=color, marker="braille")


def whole_ticks(plt: Plot, xs: list[float], n: int = 5) -> None:
    """Label a step axis with about n whole numbers at a round spacing (1, 2, 2.5 or 5 times a power of
    ten); plotext's own ticks fall on fractions such as 1937.5."""
    if not xs:
        return
    low, high = min(xs), max(xs)
    raw = max(high - low, 1.0) / (n - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    spacing = max(1, int(next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)))
    ticks = list(range(math.ceil(low / spacing) * spacing, int(high) + 1, spacing))
    plt.xticks(ticks, [str(t) for t in ticks])
