"""The chart keys the dashboard and the compare screen share: smoothing, raw points, log scale, and the
x window (zoom, pan, reset) and cursor that all the screen's charts follow."""

from __future__ import annotations

from textual.screen import Screen

from ..chart_view import ChartView
from ..components.loss_chart import LossChart
from ..components.throttled_plot import ThrottledPlot


class ChartKeys(Screen):
    """A screen with a LossChart and other charts; they share `self.chart_view`."""

    def __init__(self) -> None:
        super().__init__()
        self.chart_view = ChartView()

    def on_mount(self) -> None:
        for chart in self.query(ThrottledPlot):
            chart.view = self.chart_view

    def _redraw_charts(self) -> None:
        for chart in self.query(ThrottledPlot):
            chart.update_plot()

    def _extent(self) -> tuple[float, float] | None:
        """The x range of the loss chart, which has the most points (a train record every few steps)."""
        return self.query_one(LossChart).extent()

    def action_zoom(self, factor: float) -> None:
        extent = self._extent()
        if extent is not None:
            self.chart_view.zoom(factor, *extent)
            self._redraw_charts()

    def action_pan(self, direction: int) -> None:
        extent = self._extent()
        if extent is not None:
            self.chart_view.pan(direction, *extent)
            self._redraw_charts()

    def action_move_cursor(self, direction: int) -> None:
        chart = self.query_one(LossChart)
        extent = chart.extent()
        if extent is not None:
            self.chart_view.move_cursor(direction, chart.xs(), *extent)
            self._redraw_charts()

    def action_reset_view(self) -> None:
        self.chart_view.reset()
        self._redraw_charts()

    def action_cycle_smoothing(self) -> None:
        self.query_one(LossChart).cycle_smoothing()

    def action_toggle_raw(self) -> None:
        chart = self.query_one(LossChart)
        chart.set_options(raw=not chart.raw)

    def action_toggle_log(self) -> None:
        chart = self.query_one(LossChart)
        chart.set_options(log_scale=not chart.log_scale)
