"""Reading a run folder incrementally: one code path for following a live run and replaying a saved one.

`RunWatcher.poll()` does the file reads (call it off the event loop, one call in flight at a time);
`RunHistory.apply()` folds its `RunUpdate` into what the screens show (call it on the event loop).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

from workbench.engine.recipe import Recipe
from workbench.engine.run_folder import LIVE_STATES, RunFolder, RunFolderError, eta_seconds, steps_per_second

# Metrics where a higher value is better, in the order a run's headline metric is chosen.
HIGHER_IS_BETTER = ("bleu", "exact", "chrf", "accuracy")


@dataclass
class RunUpdate:
    """What changed in a run folder since the previous poll."""

    train: list[dict[str, Any]] = field(default_factory=list)
    valid: list[dict[str, Any]] = field(default_factory=list)
    validations: list[dict[str, Any]] = field(default_factory=list)  # samples.jsonl records
    status: dict[str, Any] | None = None  # None: unchanged
    recipe: Recipe | None = None  # only on the first poll
    memory_mb: float | None = None

    @property
    def empty(self) -> bool:
        return not (self.train or self.valid or self.validations or self.status is not None or self.recipe)


class RunWatcher:
    """Reads a run folder from where the previous poll stopped (byte offsets into the JSONL files)."""

    def __init__(self, run: RunFolder):
        self.run = run
        self._metrics_offset = 0
        self._samples_offset = 0
        self._status: dict[str, Any] | None = None
        self._recipe_read = False

    def poll(self) -> RunUpdate:
        """Everything new since the last call: blocking file reads, so run it in a worker thread."""
        update = RunUpdate()
        if not self._recipe_read:
            try:
                update.recipe = self.run.recipe()
            except RunFolderError:
                update.recipe = None
            self._recipe_read = True
        records, self._metrics_offset = self.run.read_metrics(self._metrics_offset)
        for record in records:
            if record.get("kind") == "train":
                update.train.append(record)
            elif record.get("kind") == "valid":
                update.valid.append(record)
        update.validations, self._samples_offset = self.run.read_samples(self._samples_offset)
        status = self.run.status()
        if status != self._status:
            update.status = self._status = status
        update.memory_mb = process_memory_mb(status)
        return update


def process_memory_mb(status: dict[str, Any]) -> float | None:
    """Resident memory of a live trainer on this host, from /proc (None elsewhere)."""
    if status.get("state") not in LIVE_STATES or status.get("host") != socket.gethostname():
        return None
    try:
        with open(f"/proc/{int(status['pid'])}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (OSError, KeyError, ValueError, TypeError):
        return None
    return None


@dataclass
class RunHistory:
    """Everything read from one run so far; screens draw from it."""

    run: RunFolder
    recipe: Recipe | None = None
    train: list[dict[str, Any]] = field(default_factory=list)
    valid: list[dict[str, Any]] = field(default_factory=list)
    validations: list[dict[str, Any]] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    memory_mb: float | None = None
    version: int = 0  # bumped on every change, so views redraw only when something changed

    def apply(self, update: RunUpdate) -> bool:
        """Fold an update in; True when anything changed."""
        changed = not update.empty or update.memory_mb != self.memory_mb
        if update.recipe is not None:
            self.recipe = update.recipe
        self.train.extend(update.train)
        self.valid.extend(update.valid)
        self.validations.extend(update.validations)
        if update.status is not None:
            self.status = update.status
        self.memory_mb = update.memory_mb
        if changed:
            self.version += 1
        return changed

    @property
    def state(self) -> str:
        return self.status.get("state", "new")

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES

    @property
    def metric(self) -> str:
        """The headline validation metric: the recipe's early-stopping metric."""
        if self.recipe is not None:
            return self.recipe.training.early_stopping_metric
        return "bleu"

    def best(self, metric: str | None = None) -> tuple[float, int] | None:
        """The best value of a validation metric so far and its step."""
        metric = metric or self.metric
        points = [(r[metric], r["step"]) for r in self.valid if isinstance(r.get(metric), (int, float))]
        if not points:
            return None
        if metric in HIGHER_IS_BETTER:
            return max(points, key=lambda p: p[0])
        return min(points, key=lambda p: p[0])

    def steps_per_second(self, window: int = 10) -> float | None:
        """Recent training speed, from the last `window` train records."""
        return steps_per_second(self.train, window)

    def eta_seconds(self) -> float | None:
        """Time left until the trainer's step or time limit, at the recent speed."""
        return eta_seconds(self.status, self.train) if self.live else None
