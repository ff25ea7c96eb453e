"""One number of the trainer's logged steps over steps or time: the gradient norm, the learning rate or
the target tokens per second."""

from __future__ import annotations

from ..run_watcher import RunHistory
from .throttled_plot import Curve, ThrottledPlot

# record key -> the chart's title
TRAIN_METRICS = {"grad_norm": "grad norm", "lr": "learning rate", "tgt_tokens_per_s": "tokens/s"}


class TrainMetricChart(ThrottledPlot):
    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.history: RunHistory | None = None
        self.metric = "grad_norm"

    def show(self, history: RunHistory | None = None, metric: str | None = None) -> None:
        self.history = history
        if metric is not None:
            self.metric = metric
        self.border_title = TRAIN_METRICS[self.metric]
        self.update_plot()

    def set_x_axis(self, x_axis: str) -> None:
        self.x_axis = x_axis
        self.update_plot()

    def plot_key(self) -> object:
        return (self.metric, self.history, len(self.history.train) if self.history else 0)

    def empty_text(self) -> str:
        return f"no {TRAIN_METRICS[self.metric]} logged yet"

    def curves(self) -> list[Curve]:
        if self.history is None:
            return []
        points = [r for r in self.history.train if isinstance(r.get(self.metric), (int, float))]
        return [Curve([self.x_of(r) for r in points], [r[self.metric] for r in points], None, "cyan")]
