"""Schedules over training steps: the learning rate and the teacher-forcing ratio."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the recipe reads this module's registries for its checks
    from workbench.engine.recipe import TrainingConfig


def _warmup_decay(cfg: TrainingConfig, step: int) -> float:
    """Linear warm-up over `warmup_steps`, then 1/sqrt decay (Vaswani et al. 2017)."""
    if cfg.warmup_steps <= 0:
        return 1.0
    w, s = cfg.warmup_steps, max(step, 1)
    return min(s / w, math.sqrt(w / s))


# training.lr_schedule: name -> the factor on the learning rate at an optimizer step. "plateau" also
# decays the rate when validation stalls (LearningRateSchedule.on_validation).
LR_SCHEDULES: dict[str, Callable[[TrainingConfig, int], float]] = {
    "constant": lambda cfg, step: 1.0,
    "plateau": lambda cfg, step: 1.0,
    "warmup_decay": _warmup_decay,
}

# training.scheduled_sampling: name -> the teacher-forcing ratio at a step, given k (scheduled_sampling_k),
# before training.teacher_forcing's floor; "none" keeps the floor throughout.
SCHEDULED_SAMPLING: dict[str, Callable[[int, float], float]] = {
    "none": lambda step, k: 0.0,
    "linear": lambda step, k: 1.0 - step / k,
    "exponential": lambda step, k: math.exp(-step / k),
    # Bengio et al. (2015), with k in steps
    "inverse_sigmoid": lambda step, k: k / (k + math.exp(min(step / k, 700.0))),
}


class LearningRateSchedule:
    """constant; plateau (decay when validation stalls); warmup_decay (linear warm-up, then 1/sqrt decay)."""

    def __init__(self, cfg: TrainingConfig, higher_is_better: bool):
        self.cfg = cfg
        self.higher_is_better = higher_is_better
        self.scale = 1.0  # plateau decays multiply this
        self.best: float | None = None
        self.bad_validations = 0

    def lr(self, step: int) -> float:
        """The learning rate for optimizer step number `step` (1-based)."""
        lr = max(self.cfg.lr * self.scale, self.cfg.min_lr)
        return lr * LR_SCHEDULES[self.cfg.lr_schedule](self.cfg, step)

    def on_validation(self, metric: float) -> bool:
        """Record a scheduled validation's metric; True when the plateau rule decayed the rate."""
        if self.best is None or (metric > self.best if self.higher_is_better else metric < self.best):
            self.best, self.bad_validations = metric, 0
            return False
        self.bad_validations += 1
        if self.cfg.lr_schedule == "plateau" and self.bad_validations > self.cfg.lr_patience:
            self.scale *= self.cfg.lr_decay
            self.bad_validations = 0
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "best": self.best, "bad_validations": self.bad_validations}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scale, self.best, self.bad_validations = state["scale"], state["best"], state["bad_validations"]


def teacher_forcing_ratio(cfg: TrainingConfig, step: int) -> float:
    """Probability of feeding the gold previous token; scheduled sampling lowers it towards the floor."""
    ratio = SCHEDULED_SAMPLING[cfg.scheduled_sampling](step, cfg.scheduled_sampling_k)
    return max(cfg.teacher_forcing, ratio)
