"""The dashboard's charts at 80x24: round y labels on the rows they name, curves that fill the plot's
rows, legends and values outside the plot, zoom, pan and cursor on the step axis, and the grad norm,
learning rate and tokens/s charts."""

import json
import math
import re

import pytest
from rich.text import Text

from workbench.tui.components.loss_chart import LossChart
from workbench.tui.components.score_chart import ScoreChart
from workbench.tui.components.train_metric_chart import TrainMetricChart

from .chart_text import highest_drawn, line_value, plot_lines, share_drawn, y_labels
from .driving import drive, settle
from .fixture_runs import write_run


def legend(chart) -> str:
    """The chart's bottom border: its legend and values."""
    return Text.from_markup(str(chart.border_subtitle)).plain


def x_labels(lines: list[str]) -> list[int]:
    return [int(v) for v in re.findall(r"\d+", lines[-1])]


def test_y_labels_are_round_evenly_spaced_and_name_their_rows(make_app, finished_run):
    async def scenario(pilot):
        await settle(pilot)
        # the highest train loss (the first, 2.844) and the highest score (exact 98%)
        for chart, highest in ((LossChart, 2.844), (ScoreChart, 98.0)):
            lines = plot_lines(pilot.app.screen.query_one(chart))
            labels = y_labels(lines)
            rows, values = list(labels), list(labels.values())
            assert len(labels) >= (2 if chart is LossChart else 3), labels  # 0.0 and 2.5 four rows apart
            assert len({b - a for a, b in zip(rows, rows[1:])}) == 1, labels  # evenly placed
            assert len({round(a - b, 9) for a, b in zip(values, values[1:])}) == 1, (
                labels
            )  # 1 2 3, not 2.84 2.39
            assert all(v == round(v, 1) for v in values), labels
            step = line_value(labels, 0) - line_value(labels, 1)
            assert abs(line_value(labels, highest_drawn(lines)) - highest) <= step / 2, (lines, labels)

    drive(make_app(run=finished_run), scenario)


@pytest.mark.parametrize("size", [(80, 24), (100, 32)])
def test_the_curves_fill_most_of_the_plots_rows(make_app, finished_run, size):
    async def scenario(pilot):
        await settle(pilot)
        for chart in (LossChart, ScoreChart):
            lines = plot_lines(pilot.app.screen.query_one(chart))
            assert share_drawn(lines) >= 0.75, lines  # a loss of 0.14-2.84 on 0-5 is 4 rows of 6

    drive(make_app(run=finished_run), scenario, size=size)


def test_a_bleu_of_83_7_is_drawn_on_the_row_labelled_80(make_app, runs_dir):
    path = write_run(runs_dir, name="bleu-only")
    records = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    for r in records:
        if r["kind"] == "valid":  # BLEU alone, rising to 83.7
            r.pop("exact")
            r["bleu"] = 83.7 * r["step"] / 1000
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))

    async def scenario(pilot):
        await settle(pilot)
        lines = plot_lines(pilot.app.screen.query_one(ScoreChart))
        labels = y_labels(lines)
        top = highest_drawn(lines)  # the row of the best BLEU
        assert top in labels, (lines, labels)
        step = abs(list(labels.values())[0] - list(labels.values())[1]) / (list(labels)[1] - list(labels)[0])
        assert abs(labels[top] - 83.7) <= step / 2, (labels[top], lines)  # 80, not 100

    drive(make_app(run=path), scenario)


def test_the_legend_is_outside_the_plot_with_each_curves_last_value(make_app, finished_run):
    async def scenario(pilot):
        await settle(pilot)
        loss, score = pilot.app.screen.query_one(LossChart), pilot.app.screen.query_one(ScoreChart)
        for chart, names in ((loss, ("train", "valid")), (score, ("exact", "BLEU"))):
            plot = "\n".join(plot_lines(chart))
            assert not any(name in plot for name in names), plot  # nothing hides the curves
        assert "valid 0.1643" in legend(loss)  # the last valid loss
        assert legend(score).endswith("━ exact 98 ━ BLEU 95")

    drive(make_app(run=finished_run), scenario)


def test_a_cursor_gives_each_curves_value_at_its_step(make_app, finished_run):
    async def scenario(pilot):
        await settle(pilot)
        loss, score = pilot.app.screen.query_one(LossChart), pilot.app.screen.query_one(ScoreChart)
        await pilot.press("greater_than_sign")
        await pilot.pause(0.4)
        assert loss.view.cursor == 1000 and legend(loss).startswith("@1000 ")
        await pilot.press(*["less_than_sign"] * 12)  # 40 steps a press: 1/40 of the 980 shown, rounded up
        await pilot.pause(0.4)
        plot_lines(loss), plot_lines(score)
        valid_500 = 3.0 * math.exp(-500 / 280) + 0.08  # the last validation at or before step 520
        assert legend(loss).startswith("@520 ━ train ")
        assert legend(loss).endswith(f"━ valid {valid_500:.4g}")
        assert legend(score) == "@520 ━ exact 49 ━ BLEU 47.5"  # the validation of step 500
        await pilot.press("0")
        await pilot.pause(0.4)
        plot_lines(loss)
        assert loss.view.cursor is None and not legend(loss).startswith("@")

    drive(make_app(run=finished_run), scenario)


def test_zoom_and_pan_move_both_charts_over_the_steps(make_app, finished_run):
    async def scenario(pilot):
        await settle(pilot)
        loss, score = pilot.app.screen.query_one(LossChart), pilot.app.screen.query_one(ScoreChart)
        assert x_labels(plot_lines(loss)) == [250, 500, 750, 1000]
        await pilot.press("plus")  # the latest half
        assert min(x_labels(plot_lines(loss))) >= 510 and min(x_labels(plot_lines(score))) >= 510
        await pilot.press("left_square_bracket", "left_square_bracket")  # a window earlier
        steps = x_labels(plot_lines(loss))
        assert max(steps) <= 510 and min(steps) >= 20, steps
        await pilot.press("minus", "minus")
        assert x_labels(plot_lines(loss)) == [250, 500, 750, 1000]
        await pilot.press("plus", "plus", "0")
        assert x_labels(plot_lines(loss)) == [250, 500, 750, 1000]

    drive(make_app(run=finished_run), scenario)


def test_h_puts_grad_norm_learning_rate_and_tokens_per_s_in_the_score_charts_place(make_app, finished_run):
    async def scenario(pilot):
        await settle(pilot)
        screen = pilot.app.screen
        score, metric = screen.query_one(ScoreChart), screen.query_one(TrainMetricChart)
        assert score.display and not metric.display
        shown = []
        for _ in range(3):
            await pilot.press("h")
            await pilot.pause(0.4)
            assert metric.display and not score.display and metric.size.width >= 28
            lines = plot_lines(metric)
            shown.append((metric.border_title, legend(metric), min(y_labels(lines).values())))
        assert shown == [
            ("grad norm", "━0.5", 0.5),  # 1.5 down to 0.5 in the fixture
            ("learning rate", "━0.001", 0.0009),
            ("tokens/s", "━1.25e+04", 12000.0),  # 12000 and 14000 two rows either side of 12500
        ]
        await pilot.press("h")
        assert score.display and not metric.display

    drive(make_app(run=finished_run), scenario)


def test_non_finite_values_are_left_out_of_the_charts(make_app, finished_run):
    records = [json.loads(line) for line in (finished_run / "metrics.jsonl").read_text().splitlines()]
    records[0]["loss"] = float("nan")
    records[0]["grad_norm"] = float("inf")
    (finished_run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))

    async def scenario(pilot):
        await settle(pilot)
        await pilot.press("e", "h")
        await pilot.pause(0.4)
        for chart in (pilot.app.screen.query_one(LossChart), pilot.app.screen.query_one(TrainMetricChart)):
            labels = y_labels(plot_lines(chart))
            assert len(labels) >= 2 and max(labels.values()) <= 5, labels

    drive(make_app(run=finished_run), scenario)


def test_a_non_finite_loss_leaves_the_smoothed_curve_after_it(make_app, finished_run):
    records = [json.loads(line) for line in (finished_run / "metrics.jsonl").read_text().splitlines()]
    records[3]["loss"] = float("nan")
    (finished_run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))

    async def scenario(pilot):
        await settle(pilot)
        loss = pilot.app.screen.query_one(LossChart)
        plot_lines(loss)
        assert "train 0.1367" in legend(loss)  # the last smoothed loss, as without the NaN

    drive(make_app(run=finished_run), scenario)
