"""The dashboard: curves, numbers and samples of a run, live-tailed; controls sent through the run folder."""

import json
import re

from workbench.engine.run_folder import RunFolder
from workbench.tui.components.loss_chart import LossChart
from workbench.tui.components.samples_table import SamplesTable
from workbench.tui.components.score_chart import ScoreChart
from workbench.tui.components.stats_panel import StatsPanel
from workbench.tui.screens.confirm import ConfirmScreen

from .driving import drive, settle, wait_until
from .fixture_runs import write_run


def text_of(widget) -> str:
    return str(widget.render())


def controls_sent(run_path) -> list[str]:
    return RunFolder(run_path).take_controls()


def test_shows_a_runs_numbers_curves_and_latest_samples(make_app, finished_run):
    async def scenario(pilot):
        await settle(pilot, 0.1)
        screen = pilot.app.screen
        stats = screen.query_one(StatsPanel)
        history = pilot.app.history
        assert history.state == "finished" and len(history.train) == 50
        samples = screen.query_one(SamplesTable)
        assert samples.border_title == "samples · step 1000"
        assert samples.rows == [
            ("✓", "Monday, March 3, 2025", "lundi 3 mars 2025", "lundi 3 mars 2025"),
            ("✓", "Friday, July 14, 1989", "vendredi 14 juillet 1989", "vendredi 14 juillet 1989"),
            ("✓", "Sunday, January 1, 2000", "dimanche 1 janvier 2000", "dimanche 1 janvier 2000"),
            ("?", "Saturday, November 21, 2026", "(probe)", "samedi 21 novembre 2026"),
        ]
        assert screen.query_one(LossChart).histories == [history]
        assert screen.query_one(ScoreChart).border_title == "exact · BLEU"
        table = stats.renderable if hasattr(stats, "renderable") else stats.content
        cells = [str(c) for col in table.columns for c in col._cells]
        assert "valid exact 98.0%" in cells and "best 98.0% @1.0k" in cells

    drive(make_app(run=finished_run), scenario)


def test_follows_a_live_run_as_the_trainer_appends(make_app, live_run):
    async def scenario(pilot):
        await settle(pilot)
        history = pilot.app.history
        assert history.train[-1]["step"] == 400
        run = RunFolder(live_run)
        run.append_metrics({"kind": "train", "step": 420, "epoch": 1, "loss": 0.5, "wall": 21.0})
        run.append_samples(
            {
                "step": 420,
                "samples": [
                    {
                        "src": "a",
                        "ref": "b",
                        "hyp": "b",
                        "src_pieces": ["a"],
                        "hyp_pieces": ["b"],
                        "attention": [[1.0], [1.0]],
                    }
                ],
            }
        )
        # the app's own timer picks it up: no test-only path
        await wait_until(pilot, lambda: history.train[-1]["step"] == 420)
        await pilot.pause()
        assert pilot.app.screen.query_one(SamplesTable).border_title == "samples · step 420"

    drive(make_app(run=live_run, poll_interval=0.1), scenario)


def test_pause_resume_stop_and_checkpoint_send_control_messages(make_app, live_run):
    async def scenario(pilot):
        await settle(pilot)
        await pilot.press("p")
        await pilot.app.workers.wait_for_complete()
        assert controls_sent(live_run) == ["pause"]
        status = json.loads((live_run / "status.json").read_text())
        (live_run / "status.json").write_text(json.dumps({**status, "state": "paused"}))
        await settle(pilot)
        await pilot.press("p")
        await pilot.app.workers.wait_for_complete()
        assert controls_sent(live_run) == ["resume"]
        await pilot.press("w")
        await pilot.app.workers.wait_for_complete()
        assert controls_sent(live_run) == ["checkpoint"]
        await pilot.press("s")  # asks first, as delete does: Esc keeps the run training
        await pilot.pause()
        assert isinstance(pilot.app.screen, ConfirmScreen)
        await pilot.press("escape")
        await pilot.app.workers.wait_for_complete()
        assert controls_sent(live_run) == []
        await pilot.press("s")
        await pilot.pause()
        await pilot.click("#confirm")
        await pilot.app.workers.wait_for_complete()
        assert controls_sent(live_run) == ["stop"]

    drive(make_app(run=live_run), scenario)


def test_controls_are_off_for_a_finished_run(make_app, finished_run):
    async def scenario(pilot):
        await settle(pilot)
        await pilot.press("p", "s", "w")
        await pilot.app.workers.wait_for_complete()
        assert controls_sent(finished_run) == []
        assert not {"p", "s", "w"} & set(pilot.app.screen.active_bindings)

    drive(make_app(run=finished_run), scenario)


def test_smoothing_log_scale_and_time_axis(make_app, finished_run):
    async def scenario(pilot):
        await settle(pilot)
        chart = pilot.app.screen.query_one(LossChart)
        assert chart.border_title == "loss · EMA 0.6 · by step"
        await pilot.press("tilde")
        assert chart.smoothing == 0.9
        await pilot.press("tilde", "tilde")
        assert chart.smoothing == 0.0
        await pilot.press("y", "x")
        await pilot.pause(0.4)
        assert chart.border_title == "loss · log10 · by time"
        assert pilot.app.screen.query_one(ScoreChart).x_axis == "time"
        chart._redraw()
        drawn = str(chart.render())
        # the log10 axis is labelled with the losses themselves, not their (negative) logarithms
        assert "3.16┤" in drawn and "-0." not in drawn

    drive(make_app(run=finished_run), scenario)


def test_chart_redraws_are_throttled(make_app, finished_run, monkeypatch):
    draws = []

    async def scenario(pilot):
        await settle(pilot, 0.4)
        chart = pilot.app.screen.query_one(LossChart)
        original = chart.draw
        monkeypatch.setattr(
            chart, "draw", lambda plt, max_points: (draws.append(max_points), original(plt, max_points))
        )
        for _ in range(50):
            chart.mark_dirty()
            await pilot.pause(0.01)
        await pilot.pause(0.4)
        assert 1 <= len(draws) <= 4  # ~0.5 s of changes: at most one draw per 0.3 s
        assert draws[0] == 2 * chart.size.width  # about two points per column

    drive(make_app(run=finished_run), scenario)


def test_without_a_run_the_dashboard_says_how_to_start_one(make_app):
    async def scenario(pilot):
        await pilot.pause()
        assert not {"t", "d", "a"} & set(pilot.app.screen.active_bindings)  # no run: nothing to show there
        pilot.app.switch_mode("dashboard")  # as after deleting the open run
        await pilot.pause()
        assert "No run is open" in text_of(pilot.app.screen.query_one(StatsPanel))

    drive(make_app(), scenario)


def test_polls_that_bring_only_a_memory_reading_redraw_no_chart(make_app, live_run, monkeypatch):
    """A live trainer's memory changes at every poll (twice a second): the numbers follow it, but the
    charts (20-110 ms a render) and the samples are drawn again only when their data grew."""
    readings = iter(range(100, 10_000))
    monkeypatch.setattr("workbench.tui.run_watcher.process_memory_mb", lambda status: float(next(readings)))

    async def scenario(pilot):
        await settle(pilot, 0.4)
        screen = pilot.app.screen
        loss, score = screen.query_one(LossChart), screen.query_one(ScoreChart)
        samples = screen.query_one(SamplesTable)
        drawn = (loss.draws, score.draws)
        assert min(drawn) >= 1
        shown = samples.rows
        for _ in range(5):
            assert await pilot.app.sync_run()  # a new reading: the run changed
            await pilot.pause(0.35)  # past the redraw throttle
        assert (loss.draws, score.draws) == drawn and samples.rows is shown
        stats = screen.query_one(StatsPanel)
        table = stats.renderable if hasattr(stats, "renderable") else stats.content
        assert f"memory {pilot.app.history.memory_mb:.0f} MB" in [
            str(c) for col in table.columns for c in col._cells
        ]
        RunFolder(live_run).append_metrics(
            {"kind": "train", "step": 420, "epoch": 1, "loss": 0.5, "wall": 21.0}
        )
        await settle(pilot, 0.35)
        assert loss.draws == drawn[0] + 1 and score.draws == drawn[1]  # no new validation: scores stand

    drive(make_app(run=live_run), scenario)


def test_the_score_chart_fits_early_low_scores_and_labels_steps_with_whole_numbers(make_app, runs_dir):
    path = write_run(runs_dir, name="early", steps=7750)
    records = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    for r in records:
        if r["kind"] == "valid":  # BLEU 2 to 10, exact 0 to 5%, as early in a real run
            r["bleu"], r["exact"] = 2 + 8 * r["step"] / 7750, 0.05 * r["step"] / 7750
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))

    async def scenario(pilot):
        await settle(pilot)
        chart = pilot.app.screen.query_one(ScoreChart)
        chart._redraw()
        drawn = str(chart.render())
        axis = [float(v) for v in re.findall(r"([\d.]+)┤", drawn)]
        assert axis and max(axis) <= 20  # not 0-100: the line rises over most of the chart's height
        steps = [int(v) for v in re.findall(r"\d+", drawn.splitlines()[-1])]
        spacings = {b - a for a, b in zip(steps, steps[1:])}
        assert len(steps) >= 3 and len(spacings) == 1, steps  # evenly spaced whole steps (not 1937.5)
        assert spacings < {500, 1000, 2000, 2500, 5000}, steps

    drive(make_app(run=path), scenario)
