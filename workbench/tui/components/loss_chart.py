"""Train and valid loss over steps or time, smoothed or raw, optionally on a log scale."""

from __future__ import annotations

import math

from ..run_watcher import RunHistory
from ..series import ema
from .throttled_plot import Curve, ThrottledPlot

SMOOTHING_CHOICES = (0.0, 0.6, 0.9, 0.97)


class LossChart(ThrottledPlot):
    """Draws one run's train and valid loss, or several runs' train loss, each in its own colour."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.histories: list[RunHistory] = []
        self.run_colors: list[tuple[int, int, int]] = []
        self.smoothing = SMOOTHING_CHOICES[1]
        self.raw = False  # the points as logged, whatever the smoothing

    def show(self, *histories: RunHistory, colors: list[tuple[int, int, int]] | None = None) -> None:
        """One run; or with `colors` (one per history), the overlaid runs of a comparison."""
        self.histories = list(histories)
        self.run_colors = list(colors or [])
        self.update_plot()

    def set_options(
        self,
        smoothing: float | None = None,
        log_scale: bool | None = None,
        x_axis: str | None = None,
        raw: bool | None = None,
    ) -> None:
        if smoothing is not None:
            self.smoothing = smoothing
        if raw is not None:
            self.raw = raw
        if log_scale is not None:
            self.log_scale = log_scale
        if x_axis is not None:
            self.x_axis = x_axis
        self.border_title = self.title()
        self.update_plot()

    def cycle_smoothing(self) -> None:
        """The next smoothing of SMOOTHING_CHOICES (and the smoothed curve, if the raw one was shown)."""
        index = SMOOTHING_CHOICES.index(self.smoothing) if self.smoothing in SMOOTHING_CHOICES else 0
        self.set_options(smoothing=SMOOTHING_CHOICES[(index + 1) % len(SMOOTHING_CHOICES)], raw=False)

    def plot_key(self) -> object:
        # The histories themselves (not their ids) so that a history read anew is never taken for the old.
        counts = tuple((h, len(h.train), len(h.valid)) for h in self.histories)
        return (self.smoothing, self.raw, counts, tuple(self.run_colors))

    def title(self) -> str:
        parts = ["loss"]
        if self.raw:
            parts.append("raw")
        elif self.smoothing:
            parts.append(f"EMA {self.smoothing:g}")
        if self.log_scale:
            parts.append("log10")
        parts.append("by step" if self.x_axis == "step" else "by time")
        return " · ".join(parts)

    def on_mount(self) -> None:
        super().on_mount()
        self.border_title = self.title()

    def empty_text(self) -> str:
        return "no training records yet"

    def curves(self) -> list[Curve]:
        overlay = bool(self.run_colors)
        weight = 0.0 if self.raw else self.smoothing
        curves = []
        for n, history in enumerate(self.histories):
            # a non-finite loss (a skipped step) would turn every smoothed value after it into NaN
            train = [
                r
                for r in history.train
                if isinstance(r.get("loss"), (int, float)) and math.isfinite(r["loss"])
            ]
            # compared runs: their legend is beside the chart, naming what each run varies
            curves.append(
                Curve(
                    [self.x_of(r) for r in train],
                    ema([r["loss"] for r in train], weight),
                    None if overlay else "train",
                    self.run_colors[n] if overlay else "cyan",
                )
            )
            valid = [r for r in history.valid if isinstance(r.get("loss"), (int, float))]
            if not overlay:
                curves.append(
                    Curve([self.x_of(r) for r in valid], [r["loss"] for r in valid], "valid", "orange")
                )
        return curves
