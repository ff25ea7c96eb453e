"""Value axes: a round step of value per text row, labels on the rows they name; whole step ticks."""

import math

import pytest

from workbench.tui.chart_axes import round_step, value_axis, whole_ticks


def row_of(value: float, axis, rows: int) -> int:
    """The text row plotext puts a value on (0 at the bottom): the nearest, as its get_matrix_data."""
    return math.floor(0.5 + (rows - 1) * (value - axis.low) / (axis.high - axis.low))


def test_round_steps_are_1_2_2_5_or_5_times_a_power_of_ten():
    assert [round_step(x) for x in (0.07, 0.3, 0.41, 1.0, 2.2, 4.0, 17.0, 3000.0)] == [
        0.1,
        0.5,
        0.5,
        1.0,
        2.5,
        5.0,
        20.0,
        5000.0,
    ]


@pytest.mark.parametrize(
    ("low", "high", "rows"),
    [(0.11, 2.84, 5), (0.11, 2.84, 6), (0.0, 83.7, 6), (1.42, 4.25, 7), (0.0005, 0.001, 6), (0.2, 1.5, 20)],
)
def test_labels_are_evenly_spaced_round_numbers_on_the_rows_they_name(low, high, rows):
    axis = value_axis(low, high, rows)
    assert axis.low <= low and axis.high >= high
    assert len(axis.ticks) >= 2
    spacings = {round(b - a, 12) for a, b in zip(axis.ticks, axis.ticks[1:])}
    assert len(spacings) == 1  # not 4.25, 3.54, 2.13, 1.42
    assert round_step(spacings.pop()) == pytest.approx(axis.ticks[1] - axis.ticks[0])
    step = (axis.high - axis.low) / (rows - 1)
    for tick, label in zip(axis.ticks, axis.labels):
        assert float(label) == pytest.approx(tick)
        assert row_of(tick, axis, rows) == pytest.approx((tick - axis.low) / step)  # exactly its row


def test_a_bleu_of_83_7_is_on_the_row_labelled_80_not_100():
    axis = value_axis(0.0, 83.7, 6)
    assert axis.labels == ["0", "20", "40", "60", "80", "100"]
    assert row_of(83.7, axis, 6) == axis.labels.index("80")


def test_a_flat_series_gets_an_axis_around_it():
    axis = value_axis(12500.0, 12500.0, 6)
    assert axis.low < 12500.0 < axis.high


def test_whole_ticks_are_whole_numbers_at_a_round_spacing():
    assert whole_ticks(20, 1000) == [250, 500, 750, 1000]
    assert whole_ticks(0, 7750) == [0, 2000, 4000, 6000]
    assert whole_ticks(480, 520) == [480, 490, 500, 510, 520]
