"""Validation scores over steps or time on a 0-100 scale cut to the scores so far (an early BLEU of 2-10
would be a flat line at the bottom of the whole range): a run's headline metric and BLEU, or several
runs' BLEU, each in its own colour."""

from __future__ import annotations

import math

from textual_plotext.plot import Plot

from ..display_format import metric_label
from ..run_watcher import RunHistory
from ..series import downsample
from .throttled_plot import ThrottledPlot, plot_line, whole_ticks


class ScoreChart(ThrottledPlot):
    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.histories: list[RunHistory] = []
        self.run_colors: list[tuple[int, int, int]] = []
        self.x_axis = "step"

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
        return (self.x_axis, counts, tuple(self.run_colors))

    @staticmethod
    def metrics(history: RunHistory) -> list[str]:
        headline = history.metric if history.metric != "loss" else "bleu"
        return [headline] if headline == "bleu" else [headline, "bleu"]

    def draw(self, plt: Plot, max_points: int) -> None:
        plt.xlabel("step" if self.x_axis == "step" else "minutes")
        drawn: list[float] = []
        steps: list[float] = []
        colors = ("green", "yellow", "magenta", "blue")
        for n, history in enumerate(self.histories):
            for k, name in enumerate(["bleu"] if self.run_colors else self.metrics(history)):
                points = [r for r in history.valid if isinstance(r.get(name), (int, float))]
                if not points:
                    continue
                scale = 100.0 if name in ("exact", "accuracy") else 1.0
                xs = [r["step"] if self.x_axis == "step" else r.get("wall", 0.0) / 60 for r in points]
                ys = [r[name] * scale for r in points]
                xs, ys = downsample(xs, ys, max_points)
                if self.run_colors:
                    plot_line(plt, xs, ys, None, self.run_colors[n])
                else:
                    plot_line(plt, xs, ys, metric_label(name), colors[k % 4])
                drawn += ys
                steps += xs
        if not drawn:
            plt.title("no validation yet")
        plt.ylim(0, score_ceiling(drawn))
        if self.x_axis == "step":
            whole_ticks(plt, steps)


def score_ceiling(scores: list[float]) -> float:
    """The top of the score axis: the best score with a tenth of headroom, rounded up to ten, 10 to 100."""
    return float(min(100, max(10, math.ceil(max(scores, default=0.0) * 1.1 / 10) * 10)))
