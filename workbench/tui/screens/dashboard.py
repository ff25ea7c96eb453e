"""The training dashboard: loss and score curves, the numbers, the run's share of the machine, the latest
samples, and controls."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Footer

from ..components.loss_chart import LossChart
from ..components.run_bar import RunBar
from ..components.samples_table import SamplesTable
from ..components.score_chart import ScoreChart
from ..components.stats_panel import StatsPanel
from ..components.system_strip import SystemStrip
from ..components.train_metric_chart import TRAIN_METRICS, TrainMetricChart
from ..keys import DASHBOARD_BINDINGS
from ..run_watcher import RunHistory
from ..system_history import SystemHistory
from .base import RunScreen
from .chart_keys import ChartKeys

CONTROL_ACTIONS = {"toggle_pause", "stop", "checkpoint"}
RIGHT_CHARTS = ("score", *TRAIN_METRICS)  # what `h` cycles the right chart through


class DashboardScreen(RunScreen, ChartKeys):
    SCREEN_TITLE = "Dashboard"
    BINDINGS = DASHBOARD_BINDINGS

    def __init__(self) -> None:
        super().__init__()
        self._state_seen: tuple[int, str] | None = None
        self.right_chart = RIGHT_CHARTS[0]

    def compose(self) -> ComposeResult:
        yield RunBar()
        yield StatsPanel(id="stats")
        yield SystemStrip(id="system-strip")
        with Horizontal(id="charts"):
            yield LossChart(id="loss-chart")
            yield ScoreChart(id="score-chart")
            yield TrainMetricChart(id="metric-chart")
        yield SamplesTable(id="samples")
        yield Footer(compact=True)

    def show_system(self, system: SystemHistory) -> None:
        self.query_one(SystemStrip).show(self.workbench.history, system)

    def draw(self, history: RunHistory | None) -> None:
        self.query_one(SystemStrip).show(history, self.workbench.system)
        stats = self.query_one(StatsPanel)
        if history is None:
            stats.update(
                "No run is open. Press [b]r[/b] for the runs, then [b]n[/b] to start one from a recipe."
            )
            self.query_one(LossChart).show()
            self.query_one(ScoreChart).show()
            self._show_metric_chart(None)
            self.query_one(SamplesTable).show(None)
            return
        stats.show(history)
        self.query_one(LossChart).show(history)
        self.query_one(ScoreChart).show(history)
        self._show_metric_chart(history)
        self.query_one(SamplesTable).show(history.validations[-1] if history.validations else None)
        if (id(history), history.state) != self._state_seen:
            self._state_seen = (id(history), history.state)
            self.refresh_bindings()  # pause/resume availability follows the run's state

    # Controls: messages to the trainer through the run folder -----------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in CONTROL_ACTIONS:
            history = self.workbench.history
            return bool(history and history.live and not self.workbench.replay)
        return True

    def action_toggle_pause(self) -> None:
        history = self.workbench.history
        if history is not None:
            self.workbench.send_control("resume" if history.state == "paused" else "pause")

    def action_stop(self) -> None:
        self.workbench.confirm_stop()

    def action_checkpoint(self) -> None:
        self.workbench.send_control("checkpoint")

    # Chart options (the rest: ChartKeys) ----------------------------------------------------------
    def action_next_chart(self) -> None:
        """The right chart: the scores, then each of TRAIN_METRICS."""
        self.right_chart = RIGHT_CHARTS[(RIGHT_CHARTS.index(self.right_chart) + 1) % len(RIGHT_CHARTS)]
        self.query_one(ScoreChart).display = self.right_chart == "score"
        metric_chart = self.query_one(TrainMetricChart)
        metric_chart.display = self.right_chart != "score"
        self._show_metric_chart(self.workbench.history)

    def _show_metric_chart(self, history: RunHistory | None) -> None:
        """The grad norm, learning rate or tokens/s chart, drawn only while it is shown."""
        if self.right_chart != "score":
            self.query_one(TrainMetricChart).show(history, self.right_chart)

    def action_toggle_x_axis(self) -> None:
        chart = self.query_one(LossChart)
        x_axis = "time" if chart.x_axis == "step" else "step"
        self.chart_view.reset()  # a window in steps means nothing in minutes
        chart.set_options(x_axis=x_axis)
        self.query_one(ScoreChart).set_x_axis(x_axis)
        self.query_one(TrainMetricChart).set_x_axis(x_axis)
