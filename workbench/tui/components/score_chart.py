"""Validation scores over steps or time, the axis cut to the scores so far (an early BLEU of 2-10 would
be a flat line at the bottom of 0-100) and never above 100: a run's headline metric and BLEU, or several
runs' BLEU, each in its own colour."""

from __future__ import annotations

from ..display_format import metric_label
from ..run_watcher import RunHistory
from .throttled_plot import Curve, ThrottledPlot

SCORE_COLORS = ("green", "yellow", "magenta", "blue")


class ScoreChart(ThrottledPlot):
    VALUE_CEILING = 100.0  # BLEU and chrF, exact and accuracy as percentages

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.histories: list[RunHistory] = []
        self.run_colors: list[tuple[int, int, int]] = []

    def show(self, *histories: RunHistory, colors: list[tuple[int, int, int]] | None = None) -> None:
        """One run; or with `colors` (one per history), the overlaid runs of a comparison."""
        self.histories = list(histories)
        self.run_colors = list(colors or [])
        if self.run_colors:
            self.border_title = "valid BLEU"
        elif histories:
            self.border_title = " · ".join(metric_label(m) for m in self.metrics(histories[0]))
        self.update_plot()

    def set_x_axis(self, x_axis: str) -> None:
        self.x_axis = x_axis
        self.update_plot()

    def plot_key(self) -> object:
        counts = tuple((h, len(h.valid), h.metric) for h in self.histories)
        return (counts, tuple(self.run_colors))

    @staticmethod
    def metrics(history: RunHistory) -> list[str]:
        headline = history.metric if history.metric != "loss" else "bleu"
        return [headline] if headline == "bleu" else [headline, "bleu"]

    def empty_text(self) -> str:
        return "no validation yet"

    def curves(self) -> list[Curve]:
        curves = []
        for n, history in enumerate(self.histories):
            for k, name in enumerate(["bleu"] if self.run_colors else self.metrics(history)):
                points = [r for r in history.valid if isinstance(r.get(name), (int, float))]
                scale = 100.0 if name in ("exact", "accuracy") else 1.0
                xs = [self.x_of(r) for r in points]
                ys = [r[name] * scale for r in points]
                if self.run_colors:
                    curves.append(Curve(xs, ys, None, self.run_colors[n]))
                else:
                    curves.append(Curve(xs, ys, metric_label(name), SCORE_COLORS[k % 4]))
        return curves

    def value_range(self, low: float, high: float) -> tuple[float, float]:
        return 0.0, high  # scores from zero: a rise reads as a share of the best
