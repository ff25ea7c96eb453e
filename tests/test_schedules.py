"""The learning-rate and teacher-forcing schedules, step by step."""

import math
from dataclasses import replace

import pytest

from workbench.engine.recipe import TrainingConfig
from workbench.engine.schedules import LearningRateSchedule, teacher_forcing_ratio

CFG = TrainingConfig(lr=0.01, min_lr=1e-4)


def test_warmup_decay_rises_linearly_then_decays_as_one_over_the_square_root():
    schedule = LearningRateSchedule(replace(CFG, lr_schedule="warmup_decay", warmup_steps=4), True)
    assert [schedule.lr(s) for s in (1, 2, 4, 16)] == pytest.approx([0.0025, 0.005, 0.01, 0.005])


@pytest.mark.parametrize("name", ["constant", "plateau", "warmup_decay"])
def test_without_warmup_steps_every_schedule_starts_at_the_recipes_rate(name):
    schedule = LearningRateSchedule(replace(CFG, lr_schedule=name, warmup_steps=0), True)
    assert [schedule.lr(s) for s in (1, 100, 10_000)] == [0.01] * 3


def test_plateau_alone_decays_after_more_than_patience_validations_without_a_better_one():
    for name, decayed in (("plateau", 0.005), ("constant", 0.01)):
        schedule = LearningRateSchedule(replace(CFG, lr_schedule=name, lr_patience=1, lr_decay=0.5), True)
        assert [schedule.on_validation(m) for m in (30.0, 29.0, 28.0)] == [False, False, name == "plateau"]
        assert schedule.lr(10) == decayed


@pytest.mark.parametrize(
    "name, step, ratio",
    [
        ("none", 500, 0.25),  # the floor, training.teacher_forcing, throughout
        ("linear", 250, 0.75),
        ("linear", 900, 0.25),  # never below the floor
        ("exponential", 1000, math.exp(-1)),
        ("inverse_sigmoid", 0, 1000 / 1001),
        ("inverse_sigmoid", 10**9, 0.25),
    ],
)
def test_scheduled_sampling_lowers_teacher_forcing_towards_its_floor(name, step, ratio):
    cfg = replace(CFG, scheduled_sampling=name, scheduled_sampling_k=1000.0, teacher_forcing=0.25)
    assert teacher_forcing_ratio(cfg, step) == pytest.approx(ratio)
