"""A preparation's progress: what each phase reports, and the line a person reads."""

from __future__ import annotations

import time
from collections.abc import Callable

# phase, pairs done, pairs in all (None: not known yet), fraction done (None: not known)
Report = Callable[[str, int, "int | None", "float | None"], None]


class ProgressLine:
    """A preparation's progress in words, with its rate and the time left: "encoding 45% (1,800,000 of
    4,000,000 pairs, 52,000 pairs/s, about 40 s left)"."""

    def __init__(self, every: float = 0.5) -> None:
        self.every = every
        self.phase, self.started, self.shown = "", 0.0, 0.0

    def due(self, phase: str) -> bool:
        """Whether to show progress now: a new phase at once, the same one at most every `every` s."""
        now = time.monotonic()
        if phase != self.phase:
            self.phase, self.started = phase, now
        elif now - self.shown < self.every:
            return False
        self.shown = now
        return True

    def line(self, phase: str, done: int, total: int | None, fraction: float | None) -> str:
        elapsed = time.monotonic() - self.started
        parts = []
        if done:
            parts.append(f"{done:,}" + (f" of {total:,}" if total else "") + " pairs")
            if elapsed >= 1:
                parts.append(f"{done / elapsed:,.0f} pairs/s")
        if fraction and 0.01 <= fraction < 1 and elapsed >= 2:
            parts.append(f"about {_duration(elapsed * (1 - fraction) / fraction)} left")
        percent = f" {fraction:.0%}" if fraction is not None else ""
        return f"{phase}{percent}" + (f" ({', '.join(parts)})" if parts else "")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"
