"""Value axes: round labels, evenly spaced, on the rows they name, the rows a fraction of their spacing
apart so that the values fill the chart, a score never above 100; whole step ticks."""

import math

import pytest

from workbench.tui.chart_axes import round_step, value_axis, whole_ticks


def row_of(value: float, axis, rows: int) -> int:
    """The text row plotext puts a value on (0 at the bottom): the nearest, as its get_matrix_data."""
    return math.floor(0.5 + (rows - 1) * (value - axis.low) / (axis.high - axis.low))


def rows_spanned(low: float, high: float, axis, rows: int) -> float:
    """The share of the chart's rows from the row of `low` to the row of `high`."""
    return (row_of(high, axis, rows) - row_of(low, axis, rows) + 1) / rows


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
    [
        (0.11, 2.84, 5),
        (0.11, 2.84, 6),
        (0.11, 2.84, 15),
        (0.0, 83.7, 6),
        (1.42, 4.25, 7),
        (0.0005, 0.001, 6),
        (0.2, 1.5, 20),
        (11250.0, 13750.0, 6),
        (-2.3, 0.7, 12),
    ],
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


@pytest.mark.parametrize("rows", range(6, 41))
def test_a_loss_peaking_at_2_84_spans_at_least_three_quarters_of_the_rows(rows):
    axis = value_axis(0.11, 2.84, rows)
    assert rows_spanned(0.11, 2.84, axis, rows) >= 0.75, (axis.low, axis.high, axis.labels)  # not 0-5


@pytest.mark.parametrize("rows", range(3, 41))
def test_a_score_of_100_is_drawn_on_a_top_label_of_100(rows):
    axis = value_axis(0.0, 100.0, rows, ceiling=100.0)
    assert axis.high == pytest.approx(100.0) and axis.labels[-1] == "100", axis.labels  # not 150
    assert row_of(100.0, axis, rows) == rows - 1


@pytest.mark.parametrize("rows", [8, 12, 14, 20, 40])
def test_a_score_axis_leaves_a_row_or_two_empty_below_rather_than_label_only_0_and_100(rows):
    axis = value_axis(0.0, 98.0, rows, ceiling=100.0)  # 100 alone is 7, 11, 13, 19 or 39 rows above 0
    assert len(axis.labels) >= 3 and axis.labels[0] == "0" and axis.labels[-1] == "100", axis.labels
    assert row_of(0.0, axis, rows) <= 2 and row_of(100.0, axis, rows) == rows - 1


def test_a_score_axis_passes_its_ceiling_only_where_the_values_do():
    assert value_axis(0.0, 95.0, 8, ceiling=100.0).high <= 100.0  # not 0-140 in steps of 20
    assert value_axis(0.0, 95.0, 8).high > 100.0
    assert value_axis(0.0, 103.0, 8, ceiling=100.0).high >= 103.0


def test_two_labels_are_at_most_four_rows_apart():
    axis = value_axis(0.11, 2.84, 6)  # 0.0 and 2.5, four rows apart: the loss fills the rows
    assert len(axis.ticks) == 2 and row_of(axis.ticks[1], axis, 6) - row_of(axis.ticks[0], axis, 6) <= 4
    for rows in range(9, 41):  # room for three
        assert len(value_axis(0.11, 2.84, rows).ticks) >= 3, rows


def test_two_rows_either_side_of_zero_still_get_an_axis():
    axis = value_axis(-0.3, 0.7, 2)  # a log10 loss from 0.5 to 5 on a squashed chart
    assert axis.low <= -0.3 and axis.high >= 0.7 and len(axis.labels) == 2
