"""How a run's metrics and numbers read, the same in the command line's tables and in the workbench."""

from __future__ import annotations

from typing import Any

MISSING = "—"  # a value a run does not have (yet)
METRIC_LABELS = {"bleu": "BLEU", "chrf": "chrF", "exact": "exact", "loss": "loss", "accuracy": "acc"}


def metric(name: str, value: float | None) -> str:
    """A validation metric as people quote it: exact match and token accuracy in percent, BLEU and chrF
    on 0-100 to one decimal, a loss to three significant digits (a loss near zero keeps its digits)."""
    if value is None:
        return MISSING
    if name in ("exact", "accuracy"):
        return f"{100 * value:.1f}%"
    if name == "loss":
        return f"{value:.3g}"
    return f"{value:.1f}"


def metric_label(name: str) -> str:
    return METRIC_LABELS.get(name, name)


def count(value: float | None) -> str:
    """12345 -> '12.3k'."""
    if value is None:
        return MISSING
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.1f}{suffix}"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def duration(seconds: float | None) -> str:
    """95 -> '1m35s'; None -> '—'."""
    if seconds is None:
        return MISSING
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def value_text(value: Any) -> str:
    """A recipe value as a table cell: `3e-04`, `true`, `lstm`."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, bool):
        return str(value).lower()
    return MISSING if value is None else str(value)


def column_text(key: str, value: Any) -> str:
    """A cell of a compare table's column (jobs.comparison.COLUMNS) or of a varied recipe key."""
    if key in ("bleu", "chrf", "accuracy", "loss", "exact"):
        return metric(key, value)
    if key == "seconds":
        return duration(value)
    if key in ("tokens_per_s", "peak_memory_mb"):
        return count(value)
    if key == "steps":
        return MISSING if value is None else f"{value:,}"
    return value_text(value)
