"""Schedules over training steps: the learning rate and the teacher-forcing ratio."""

from __future__ import annotations

import math
from typing import Any

from workbench.engine.recipe import TrainingConfig


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
        if self.cfg.lr_schedule == "warmup_decay" and self.cfg.warmup_steps > 0:
            w, s = self.cfg.warmup_steps, max(step, 1)
            lr *= min(s / w, math.sqrt(w / s))
        return lr

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
    floor, k = cfg.teacher_forcing, cfg.scheduled_sampling_k
    if cfg.scheduled_sampling == "none":
        return floor
    if cfg.scheduled_sampling == "linear":
        ratio = 1.0 - step / k
    elif cfg.scheduled_sampling == "exponential":
        ratio = math.exp(-step / k)
    else:  # inverse_sigmoid, Bengio et al. (2015) with k in steps
        ratio = k / (k + math.exp(min(step / k, 700.0)))
    return max(floor, ratio)
