"""Train and valid loss over steps or time, smoothed and optionally on a log scale."""

from __future__ import annotations

from textual_plotext.plot import Plot

from ..run_watcher import RunHistory
from ..series import downsample, ema, log10
from .throttled_plot import ThrottledPlot, plot_line, whole_ticks

SMOOTHING_CHOICES = (0.0, 0.6, 0.9, 0.97)


class LossChart(ThrottledPlot):
    """Draws one run's train and valid loss, or several runs' train loss, each in its own colour."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.histories: list[RunHistory] = []
        self.run_colors: list[tuple[int, int, int]] = []
        self.smoothing = 0.6
        self.log_scale = False
        self.x_axis = "step"  # step | time

    def show(self, *histories: RunHistory, colors: list[tuple[int, int, int]] | None = None) -> None:
        """One run; or with `colors` (one per history), the overlaid runs of a comparison."""
        self.histories = list(histories)
        self.run_colors = list(colors or [])
        self.update_plot()

    def set_options(
        self, smoothing: float | None = None, log_scale: bool | None = None, x_axis: str | None = None
    ) -> None:
        if smoothing is not None:
            self.smoothing = smoothing
        if log_scale is not None:
            self.log_scale = log_scale
        if x_axis is not None:
            self.x_axis = x_axis
        self.border_title = self.title()
        self.update_plot()

    def plot_key(self) -> object:
        # The histories themselves (not their ids) so that a history read anew is never taken for the old.
        counts = tuple((h, len(h.train), len(h.valid)) for h in self.histories)
        return (self.smoothing, self.log_scale, self.x_axis, counts, tuple(self.run_colors))

    def title(self) -> str:
        parts = ["loss"]
        if self.smoothing:
            parts.append(f"EMA {self.smoothing:g}")
        if self.log_scale:
            parts.append("log10")
        parts.append("by step" if self.x_axis == "step" else "by time")
        return " · ".join(parts)

    def on_mount(self) -> None:
        super().on_mount()
        self.border_title = self.title()

    def x_of(self, record: dict) -> float:
        return record.get("step", 0) if self.x_axis == "step" else record.get("wall", 0.0) / 60

    def draw(self, plt: Plot, max_points: int) -> None:
        plt.xlabel("step" if self.x_axis == "step" else "minutes")
        all_y: list[float] = []
        overlay = bool(self.run_colors)
        steps: list[float] = []
        for n, history in enumerate(self.histories):
            train = [r for r in history.train if isinstance(r.get("loss"), (int, float))]
            if train:
                xs = [self.x_of(r) for r in train]
                ys = ema([r["loss"] for r in train], self.smoothing)
                xs, ys = downsample(xs, ys, max_points)
                ys = log10(ys) if self.log_scale else ys
                all_y += ys
                steps += xs
                # compared runs: their legend is beside the chart, naming what each run varies
                plot_line(
                    plt, xs, ys, None if overlay else "train", self.run_colors[n] if overlay else "cyan"
                )
            valid = [r for r in history.valid if isinstance(r.get("loss"), (int, float))]
            if valid and not overlay:
                xs = [self.x_of(r) for r in valid]
                ys = [r["loss"] for r in valid]
                xs, ys = downsample(xs, ys, max_points)
                ys = log10(ys) if self.log_scale else ys
                all_y += ys
                plot_line(plt, xs, ys, "valid", "orange")
        if self.x_axis == "step":
            whole_ticks(plt, steps)
        if not all_y:
            plt.title("no training records yet")
        elif self.log_scale:
            _log_ticks(plt, min(all_y), max(all_y))


def _log_ticks(plt: Plot, low: float, high: float, n: int = 4) -> None:
    """Label a log10 axis with the values themselves."""
    if high - low < 1e-9:
        high = low + 1
    ticks = [low + (high - low) * i / (n - 1) for i in range(n)]
    plt.yticks(ticks, [f"{10**t:.3g}" for t in ticks])
