import math

import pytest

from workbench.tui.series import downsample, ema, ema_weight, log10


def test_ema_without_smoothing_returns_the_values():
    assert ema([3.0, 1.0, 2.0], 0.0) == [3.0, 1.0, 2.0]


def test_ema_is_debiased_so_that_the_first_point_is_the_first_value():
    smoothed = ema([4.0, 4.0, 4.0], 0.9)
    assert smoothed == [4.0, 4.0, 4.0] or all(math.isclose(v, 4.0) for v in smoothed)


def test_ema_follows_a_step_slowly():
    smoothed = ema([0.0] * 100 + [1.0] * 100, 0.9)
    assert smoothed[100] < 0.5 < smoothed[-1] < 1.0


def test_log10_clamps_non_positive_values():
    assert log10([100.0, 0.1]) == [2.0, -1.0]
    assert log10([0.0])[0] == -12.0


def test_downsample_keeps_short_series_and_the_last_point():
    assert downsample([1, 2, 3], [4, 5, 6], 10) == ([1, 2, 3], [4, 5, 6])
    xs = list(range(1000))
    out_x, out_y = downsample(xs, [2 * x for x in xs], 100)
    assert len(out_x) == 100
    assert out_x[-1] == 999 and out_y[-1] == 1998
    assert out_x == sorted(out_x)
    assert all(math.isclose(y, 2 * x) for x, y in zip(out_x, out_y))  # bucket means of a line stay on it


def test_ema_of_a_short_run_ends_near_its_last_value():
    """Ten records of a 100-step run: an EMA of 0.9 over them would end at 1.51, four times the last loss."""
    losses = [5.5, 4.0, 3.0, 2.2, 1.5, 1.0, 0.8, 0.6, 0.45, 0.38]
    assert ema(losses, 0.9)[-1] == pytest.approx(0.38, rel=0.1)
    assert ema_weight(0.9, 10) == 0.0 and ema_weight(0.9, 50) == pytest.approx(0.8)
    assert ema_weight(0.97, 1000) == 0.97  # a long run is smoothed as asked
