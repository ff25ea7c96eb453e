"""A plotext chart that redraws at most a few times a second, with at most ~2 points per column, through
a window on its x axis (zoom, pan, cursor), its legend and its values in a line outside the plot."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from rich.text import Text
from textual_plotext import PlotextPlot
from textual_plotext.plot import Plot

from ..chart_axes import value_axis, whole_ticks
from ..chart_view import ChartView, in_window, value_at
from ..display_format import rgb
from ..series import downsample, log10

Color = str | tuple[int, int, int]
CURSOR_COLOR = "gray"
RICH_NAMES = {"orange": "dark_orange", "gray": "grey50"}  # plotext's colour names Rich spells otherwise
# plotext rows outside the data: the two axis lines and the step labels
AXIS_ROWS = 3


@dataclass
class Curve:
    """One line of a chart: its points (x sorted), its legend name (None: a legend beside the chart names
    it) and colour."""

    xs: list[float]
    ys: list[float]
    label: str | None
    color: Color


class ThrottledPlot(PlotextPlot):
    """Subclasses implement `curves()`, `plot_key()` and `empty_text()`; call `update_plot()` when their
    data may have changed.

    A plotext render costs 20-110 ms, so it happens only when `plot_key()` (what the chart draws) changed
    since the last draw, or the size did: a live run's poll that brought only a new memory reading, or a
    finished run polled again, costs nothing here. Changes are coalesced: the first draws at once, later
    ones at most every `MIN_INTERVAL` seconds.
    """

    MIN_INTERVAL = 0.3
    VALUE_CEILING: float | None = None  # what the values can never pass: the y axis stops there

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._last_draw = 0.0
        self._pending = False
        self._drawn_key: object = None
        self.draws = 0  # renders so far (tests check that unchanged data is not drawn again)
        self.view = ChartView()  # the screen gives all its charts one view
        self.x_axis = "step"  # step | time
        self.log_scale = False  # values on a log10 scale, labelled with the values themselves

    def plot_key(self) -> object:  # pragma: no cover - abstract
        """What the drawing depends on besides the size and the view: the same key draws the same chart."""
        raise NotImplementedError

    def curves(self) -> list[Curve]:  # pragma: no cover - abstract
        raise NotImplementedError

    def empty_text(self) -> str:  # pragma: no cover - abstract
        """What the chart says before it has anything to draw."""
        raise NotImplementedError

    def update_plot(self) -> None:
        """Redraw (throttled) if what the chart shows changed since it was last drawn."""
        if self._full_key() != self._drawn_key:
            self.mark_dirty()

    def _full_key(self) -> object:
        return (self.plot_key(), self.view.key(), self.x_axis, self.log_scale)

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
        self.mark_dirty()  # the number of points and rows depend on the size

    def _redraw(self) -> None:
        self._pending = False
        self._last_draw = time.monotonic()
        self._drawn_key = self._full_key()
        self.draws += 1
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        self.draw(plt, max_points=max(2 * self.size.width, 20))
        self.refresh()

    def x_of(self, record: dict) -> float:
        return record.get("step", 0) if self.x_axis == "step" else record.get("wall", 0.0) / 60

    def extent(self) -> tuple[float, float] | None:
        """The x range of the chart's data (None: no data)."""
        return _extent(self.curves())

    def xs(self) -> list[float]:
        """Every x of the chart's points, sorted: where its cursor can stop."""
        return sorted({x for curve in self.curves() for x in curve.xs})

    def draw(self, plt: Plot, max_points: int) -> None:
        curves = [c for c in map(_finite, self.curves()) if c.xs]
        extent = _extent(curves)
        if extent is None:
            plt.title(self.empty_text())
            self.border_subtitle = None
            return
        low, high = self.view.limits(*extent)
        shown: list[float] = []
        for curve in curves:
            xs, ys = in_window(curve.xs, curve.ys, low, high)
            xs, ys = downsample(xs, ys, max_points)
            ys = log10(ys) if self.log_scale else ys
            plot_line(plt, xs, ys, curve.color)
            shown += [y for x, y in zip(xs, ys) if low <= x <= high] or ys
        rows = max(self.size.height - AXIS_ROWS, 2)
        label = (lambda t: f"{10**t:.3g}") if self.log_scale else None
        axis = value_axis(
            *self.value_range(min(shown), max(shown)), rows, label=label, ceiling=self.VALUE_CEILING
        )
        plt.ylim(axis.low, axis.high)
        plt.yticks(axis.ticks, axis.labels)
        plt.xlim(low, high)
        if self.x_axis == "step":
            ticks = whole_ticks(low, high)
            plt.xticks(ticks, [str(t) for t in ticks])
        cursor = self.view.cursor
        if cursor is not None and low <= cursor <= high:
            plt.vline(cursor, CURSOR_COLOR)
        self.border_subtitle = self.readout(curves, cursor if cursor is not None else high)

    def value_range(self, low: float, high: float) -> tuple[float, float]:
        """The values the y axis must hold, given the lowest and highest drawn."""
        return low, high

    def readout(self, curves: list[Curve], x: float) -> Text:
        """The legend as a line: each curve's colour, name and value at the cursor (else at the window's
        right edge), after the cursor's step or minute."""
        text = Text()
        if self.view.cursor is not None:
            where = f"{x:g}" if self.x_axis == "step" else f"{x:.1f} min"
            text.append(f"@{where}", style="bold")
        for curve in curves:
            value = value_at(curve.xs, curve.ys, x)
            if text:
                text.append(" ")
            color = curve.color
            text.append("━", style=rgb(color) if isinstance(color, tuple) else RICH_NAMES.get(color, color))
            if curve.label is not None:
                text.append(f" {curve.label} ")
            text.append("—" if value is None else f"{value:.4g}")
        return text


def plot_line(plt: Plot, xs: list[float], ys: list[float], color: Color) -> None:
    """A line in braille dots; a lone point (one validation so far) as a visible dot instead."""
    if len(xs) == 1:
        plt.scatter(xs, ys, color=color, marker="●")
    else:
        plt.plot(xs, ys, color=color, marker="braille")


def _finite(curve: Curve) -> Curve:
    """The curve without its non-finite points (a step whose loss overflowed): they have no row."""
    if all(map(math.isfinite, curve.ys)):
        return curve
    points = [(x, y) for x, y in zip(curve.xs, curve.ys) if math.isfinite(y)]
    return Curve([x for x, _ in points], [y for _, y in points], curve.label, curve.color)


def _extent(curves: list[Curve]) -> tuple[float, float] | None:
    xs = [x for curve in curves for x in curve.xs[:1] + curve.xs[-1:]]
    return (min(xs), max(xs)) if xs else None
