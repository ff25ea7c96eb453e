"""A plotext chart that redraws at most a few times a second, with at most ~2 points per column."""

from __future__ import annotations

import time

from textual_plotext import PlotextPlot
from textual_plotext.plot import Plot


class ThrottledPlot(PlotextPlot):
    """Subclasses implement `draw(plt, max_points)`; call `mark_dirty()` when their data changed.

    A plotext render costs 20-110 ms, so data changes are coalesced: the first change draws at once,
    later ones at most every `MIN_INTERVAL` seconds.
    """

    MIN_INTERVAL = 0.3

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._last_draw = 0.0
        self._pending = False

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
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        self.draw(plt, max_points=max(2 * self.size.width, 20))
        self.refresh()

    def draw(self, plt: Plot, max_points: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


def plot_line(plt: Plot, xs: list[float], ys: list[float], label: str, color: str) -> None:
    """A line in braille dots; a lone point (one validation so far) as a visible dot instead."""
    if len(xs) == 1:
        plt.scatter(xs, ys, label=label, color=color, marker="●")
    else:
        plt.plot(xs, ys, label=label, color=color, marker="braille")
