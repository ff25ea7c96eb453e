"""The comparison table: a sweep's (or marked) runs sorted, filtered, overlaid, steered, refreshed live."""

import json
import re

from rich.text import Text

from workbench.engine.recipe import recipe_from_dict
from workbench.engine.run_folder import RunFolder
from workbench.jobs.sweep_queue import SweepQueue
from workbench.tui.components.comparison_table import BEST_STYLE, ComparisonTable
from workbench.tui.components.curve_legend import CurveLegend
from workbench.tui.components.loss_chart import LossChart
from workbench.tui.components.recipe_diff_line import RecipeDiffLine
from workbench.tui.components.score_chart import ScoreChart
from workbench.tui.display_format import run_color

from .chart_text import highest_drawn, plot_lines, share_drawn, y_labels
from .driving import drive, wait_until
from .fixture_runs import SWEEP_NAME, recipe_dict, write_run

SWEEP_ORDER = [
    ["gru", "bahdanau"],
    ["gru", "general"],
    ["gru", "concat"],
    ["lstm", "bahdanau"],
    ["lstm", "general"],
    ["lstm", "concat"],
]


async def open_sweep(pilot, runs_dir) -> ComparisonTable:
    await pilot.pause()
    pilot.app.show_comparison(sweep=SweepQueue.open(runs_dir, SWEEP_NAME))
    await pilot.pause()
    table = pilot.app.screen.query_one(ComparisonTable)
    await wait_until(pilot, lambda: table.row_count == 6)
    await pilot.pause()
    return table


def cells(table: ComparisonTable) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def column(table: ComparisonTable, key: str) -> list[str]:
    return [str(table.get_cell_at((row, table.get_column_index(key)))) for row in range(table.row_count)]


def test_a_sweep_opens_as_a_row_per_run_with_its_values_metrics_and_state(make_app, sweep_runs, runs_dir):
    async def scenario(pilot):
        table = await open_sweep(pilot, runs_dir)
        assert [str(c.label) for c in table.columns.values()] == [
            " ",
            "cell",
            "attention",
            "BLEU",
            "chrF",
            "acc",
            "loss",
            "steps",
            "time",
            "tok/s",
            "state",
            "peak MB",
        ]
        assert [row[1:3] for row in cells(table)] == SWEEP_ORDER
        best = ["92.2", "95.5", "96.0%", "0.194", "1,000", "1m03s", "10.0k", "✓ finished", "—"]
        assert cells(table)[3][3:] == best
        assert cells(table)[5][3:] == ["—", "—", "—", "—", "0", "—", "—", "◌ queued", "—"]
        title = str(pilot.app.screen.query_one("#compare-title").render())
        assert "sweep dates-grid" in title and "✓3/6 ●1 ◌1 ✗1" in title

    drive(make_app(attach_live=False), scenario, size=(100, 30))


def test_the_best_value_of_each_metric_column_is_highlighted(make_app, sweep_runs, runs_dir):
    async def scenario(pilot):
        table = await open_sweep(pilot, runs_dir)
        best = {}
        for key in ("bleu", "chrf", "accuracy", "loss", "seconds", "tokens_per_s"):
            styled = [
                row
                for row in range(table.row_count)
                if table.get_cell_at((row, table.get_column_index(key))).style == BEST_STYLE
            ]
            best[key] = [cells(table)[row][1:3] for row in styled]
        assert best == {
            "bleu": [["lstm", "bahdanau"]],  # highest
            "chrf": [["lstm", "bahdanau"]],
            "accuracy": [["lstm", "bahdanau"]],
            "loss": [["lstm", "bahdanau"]],  # lowest
            "seconds": [["lstm", "general"]],  # shortest
            "tokens_per_s": [["gru", "general"]],  # fastest
        }
        assert table.get_cell_at((0, table.get_column_index("steps"))).style != BEST_STYLE

    drive(make_app(attach_live=False), scenario, size=(100, 30))


def test_o_sorts_by_each_column_in_turn_best_first_and_o_shift_reverses(make_app, sweep_runs, runs_dir):
    async def scenario(pilot):
        table = await open_sweep(pilot, runs_dir)
        await pilot.press("o")  # cell, a to z
        assert column(table, "model.cell") == ["gru"] * 3 + ["lstm"] * 3
        await pilot.press("o", "o")  # BLEU, best first, the queued run (no BLEU yet) last
        assert column(table, "bleu") == ["92.2", "88.3", "83.6", "34.2", "13.3", "—"]
        assert "BLEU ▼" in [str(c.label) for c in table.columns.values()]
        await pilot.press("O")
        assert column(table, "bleu") == ["13.3", "34.2", "83.6", "88.3", "92.2", "—"]
        await pilot.press("o", "o", "o")  # chrF, accuracy, then loss: lowest first
        assert column(table, "loss")[0] == "0.194"
        table.sort_by("tokens_per_s")  # what a click on the header does
        assert column(table, "tokens_per_s")[:2] == ["15.0k", "13.8k"]

    drive(make_app(attach_live=False), scenario, size=(100, 30))


def test_a_click_on_a_column_header_sorts_by_it(make_app, sweep_runs, runs_dir):
    async def scenario(pilot):
        table = await open_sweep(pilot, runs_dir)
        x = sum(c.get_render_width(table) for c in list(table.columns.values())[:6]) + 2  # into "loss"
        await pilot.click(ComparisonTable, offset=(x, 1))
        await pilot.pause()
        assert table.sort_key == "loss"
        assert column(table, "loss")[:2] == ["0.194", "0.234"]

    drive(make_app(attach_live=False), scenario, size=(100, 30))


def test_slash_filters_the_rows_by_value_or_state(make_app, sweep_runs, runs_dir):
    async def scenario(pilot):
        table = await open_sweep(pilot, runs_dir)
        await pilot.press("slash")
        assert pilot.app.focused.id == "compare-filter"
        await pilot.press(*"lstm")
        await pilot.pause()
        assert [row[1:3] for row in cells(table)] == SWEEP_ORDER[3:]
        pilot.app.screen.query_one("#compare-filter").value = "finished"
        await pilot.pause()
        assert column(table, "state") == ["✓ finished"] * 3
        assert table.border_title == "runs (3/6)"
        await pilot.press("enter")  # back to the table
        assert pilot.app.focused is table

    drive(make_app(attach_live=False), scenario, size=(100, 30))


def test_space_overlays_curves_each_run_keeping_its_colour_and_the_legend_names_the_values(
    make_app, sweep_runs, runs_dir
):
    async def scenario(pilot):
        await open_sweep(pilot, runs_dir)
        screen = pilot.app.screen
        loss, score = screen.query_one(LossChart), screen.query_one(ScoreChart)
        assert len(loss.histories) == 6  # up to 8 are overlaid to begin with
        assert loss.run_colors == score.run_colors == [run_color(i) for i in range(6)]
        await pilot.press("down", "space")  # gru general off
        assert [h.run.name for h in loss.histories] == [
            f"{SWEEP_NAME}-{cell}-{attention}"
            for cell, attention in SWEEP_ORDER
            if attention != "general" or cell != "gru"
        ]
        legend = str(screen.query_one(CurveLegend).render())
        assert "gru · bahdanau" in legend and "gru · general" not in legend and SWEEP_NAME not in legend
        colour_of = dict(zip((h.run.name for h in loss.histories), loss.run_colors))
        await pilot.press("o", "o", "o")  # sorted by BLEU: each run keeps its colour
        await pilot.pause()
        assert dict(zip((h.run.name for h in loss.histories), loss.run_colors)) == colour_of
        assert colour_of[f"{SWEEP_NAME}-lstm-bahdanau"] == run_color(3)
        await pilot.press("space", "space")  # the cursor stayed on gru general: on, then off again
        assert len(loss.histories) == 5

    drive(make_app(attach_live=False), scenario, size=(100, 30))


def test_at_most_eight_runs_are_overlaid(make_app, runs_dir):
    runs = [RunFolder(write_run(runs_dir, name=f"run-{i}", hidden_size=32 + i)) for i in range(9)]

    async def scenario(pilot):
        await pilot.pause()
        pilot.app.show_comparison(runs=runs)
        await pilot.pause()
        table = pilot.app.screen.query_one(ComparisonTable)
        await wait_until(pilot, lambda: table.row_count == 9)
        loss = pilot.app.screen.query_one(LossChart)
        await wait_until(pilot, lambda: len(loss.histories) == 8)
        assert "run" in [str(c.label) for c in table.columns.values()]  # marked runs: named
        await pilot.press("ctrl+end", "space")  # the ninth: refused
        assert len(loss.histories) == 8 and runs[8].path not in table.overlaid
        await pilot.press("ctrl+home", "space", "ctrl+end", "space")  # one off, then the ninth on
        assert runs[8].path in table.overlaid and len(loss.histories) == 8

    drive(make_app(), scenario, size=(100, 30))


def test_the_recipe_diff_shows_the_highlighted_run_against_the_sweep_base(make_app, sweep_runs, runs_dir):
    async def scenario(pilot):
        await open_sweep(pilot, runs_dir)
        await pilot.press("down", "down", "down", "down")  # lstm general
        await pilot.pause()
        assert pilot.app.screen.query_one(RecipeDiffLine).plain() == (
            "lstm · general vs sweep base: model.cell gru → lstm · model.attention bahdanau → general"
        )
        await pilot.press("ctrl+home")
        await pilot.pause()
        assert pilot.app.screen.query_one(RecipeDiffLine).plain().endswith(": the same recipe")

    drive(make_app(attach_live=False), scenario, size=(100, 30))


def test_k_cancels_the_highlighted_queued_run(make_app, sweep_runs, runs_dir):
    async def scenario(pilot):
        table = await open_sweep(pilot, runs_dir)
        assert not pilot.app.screen.check_action("cancel_run", ())  # a finished run
        await pilot.press("ctrl+end")
        await pilot.pause()
        assert pilot.app.screen.check_action("cancel_run", ())
        await pilot.press("k")
        await pilot.app.workers.wait_for_complete()
        assert RunFolder(sweep_runs[5]).status()["state"] == "cancelled"
        await wait_until(pilot, lambda: column(table, "state")[5] == "⊘ cancelled")
        queue = json.loads((runs_dir / ".sweeps" / SWEEP_NAME / "queue.json").read_text())
        assert queue["cancelled"] == [f"{SWEEP_NAME}-lstm-concat"]

    drive(make_app(attach_live=False), scenario, size=(100, 30))


def test_p_pauses_and_s_stops_the_highlighted_running_run_only(make_app, sweep_runs, runs_dir):
    running = RunFolder(sweep_runs[2])

    async def scenario(pilot):
        await open_sweep(pilot, runs_dir)
        screen = pilot.app.screen
        assert not screen.check_action("toggle_pause", ()) and not screen.check_action("stop", ())
        await pilot.press("p", "s")  # a finished run: nothing is sent
        await pilot.app.workers.wait_for_complete()
        assert not list(RunFolder(sweep_runs[0]).control_dir.iterdir())
        await pilot.press("down", "down")
        await pilot.pause()
        await pilot.press("p")
        await pilot.app.workers.wait_for_complete()
        await pilot.press("s")  # asks first
        await pilot.pause()
        await pilot.click("#confirm")
        await pilot.app.workers.wait_for_complete()
        assert running.take_controls() == ["pause", "stop"]

    drive(make_app(attach_live=False), scenario, size=(100, 30))


def test_the_table_refreshes_while_a_run_trains(make_app, sweep_runs, runs_dir):
    running = RunFolder(sweep_runs[2])

    async def scenario(pilot):
        table = await open_sweep(pilot, runs_dir)
        assert column(table, "bleu")[2] == "34.2"
        await pilot.pause()
        assert table.max_scroll_x > 0  # a narrow terminal: the table scrolls sideways
        table.scroll_x = table.max_scroll_x
        await pilot.pause()
        scrolled = table.scroll_x
        running.append_metrics(
            {"kind": "valid", "step": 500, "wall": 30.0, "loss": 0.1, "bleu": 99.5, "chrf": 99.0}
        )
        await wait_until(pilot, lambda: column(table, "bleu")[2] == "99.5", timeout=6)
        assert table.get_cell_at((2, table.get_column_index("bleu"))).style == BEST_STYLE
        assert table.scroll_x == scrolled  # refreshed in place: the view stays where the user put it
        score = pilot.app.screen.query_one(ScoreChart)
        assert score.histories[2].valid[-1]["bleu"] == 99.5  # the curves follow too

    drive(make_app(attach_live=False), scenario, size=(60, 30))


def test_enter_opens_the_highlighted_runs_dashboard(make_app, sweep_runs, runs_dir):
    async def scenario(pilot):
        await open_sweep(pilot, runs_dir)
        await pilot.press("down", "enter")
        await pilot.pause()
        assert pilot.app.current_mode == "dashboard" and pilot.app.history.run.path == sweep_runs[1]

    drive(make_app(attach_live=False), scenario, size=(100, 30))


def test_shift_s_stops_the_whole_sweep_and_shift_r_takes_it_up_again(
    make_app, sweep_runs, runs_dir, sweep_launcher
):
    running = RunFolder(sweep_runs[2])
    queue = SweepQueue.open(runs_dir, SWEEP_NAME)

    async def scenario(pilot):
        await open_sweep(pilot, runs_dir)
        assert pilot.app.screen.check_action("stop_sweep", ())
        await pilot.press("S")
        await pilot.app.workers.wait_for_complete()
        assert running.take_controls() == ["stop"]  # the one running run, and only it
        assert queue.held and queue.read()["suspended"] == [running.name]
        assert sweep_launcher.launched == []
        await pilot.press("U")
        await pilot.app.workers.wait_for_complete()
        assert not queue.held and [q.name for q in sweep_launcher.launched] == [SWEEP_NAME]

    drive(make_app(attach_live=False), scenario, size=(100, 30))


def test_marked_runs_have_no_sweep_to_stop(make_app, sweep_runs, runs_dir):
    async def scenario(pilot):
        await pilot.pause()
        pilot.app.show_comparison(runs=[RunFolder(p) for p in sweep_runs[:2]])
        await pilot.pause()
        assert not pilot.app.screen.check_action("stop_sweep", ())
        assert not pilot.app.screen.check_action("resume_sweep", ())

    drive(make_app(attach_live=False), scenario, size=(100, 30))


def short_run(runs_dir, name: str, losses: list[float]) -> RunFolder:
    """A 100-step run logged every 10 steps, its train losses `losses`."""
    path = write_run(runs_dir, name=name, steps=100)
    records = [
        {"kind": "train", "step": 10 * (i + 1), "loss": loss, "wall": float(i)}
        for i, loss in enumerate(losses)
    ]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return RunFolder(path)


def test_the_overlays_smoothing_follows_a_short_run_is_settable_and_raw_is_one_key_away(make_app, runs_dir):
    runs = [
        short_run(runs_dir, "short-a", [5.5, 4.0, 3.0, 2.2, 1.5, 1.0, 0.8, 0.6, 0.45, 0.38]),
        short_run(runs_dir, "short-b", [5.0, 4.4, 3.6, 3.0, 2.5, 2.1, 1.8, 1.6, 1.5, 1.4]),
    ]

    async def scenario(pilot):
        await pilot.pause()
        pilot.app.show_comparison(runs=runs)
        await pilot.pause()
        loss = pilot.app.screen.query_one(LossChart)
        await wait_until(pilot, lambda: len(loss.histories) == 2)
        await pilot.pause(0.4)

        def last_values() -> list[float]:
            loss._redraw()
            return [
                float(v) for v in re.findall(r"━([\d.]+)", Text.from_markup(str(loss.border_subtitle)).plain)
            ]

        assert loss.border_title == "loss · EMA 0.6 · by step"  # as on the dashboard
        ends = last_values()
        assert len(ends) == 2 and abs(ends[0] - 0.38) < 0.04 and abs(ends[1] - 1.4) < 0.1, ends  # not 1.68
        await pilot.press("e")
        assert loss.border_title == "loss · raw · by step" and last_values() == [0.38, 1.4]
        await pilot.press("e")
        assert loss.border_title == "loss · EMA 0.6 · by step"
        await pilot.press("tilde")
        assert loss.border_title == "loss · EMA 0.9 · by step" and not loss.raw
        await pilot.press("e", "tilde")  # smoothing again, the next weight
        assert loss.border_title == "loss · EMA 0.97 · by step"

    drive(make_app(), scenario, size=(100, 30))


def lr_run(runs_dir, name: str, lr: float) -> RunFolder:
    """A finished run of the fixture's recipe (every such run has its name) trained at learning rate `lr`."""
    path = write_run(runs_dir, name=name, recipe=False)
    recipe = recipe_dict()
    recipe["training"]["lr"] = lr
    (path / "recipe.toml").write_text(recipe_from_dict(recipe).to_toml(), encoding="utf-8")
    return RunFolder(path)


def test_the_recipe_diff_of_marked_runs_names_the_reference_and_shows_the_others_against_it(
    make_app, runs_dir
):
    runs = [lr_run(runs_dir, "lr-2", 0.002), lr_run(runs_dir, "lr-3", 0.003)]

    async def scenario(pilot):
        await pilot.pause()
        pilot.app.show_comparison(runs=runs)
        await pilot.pause()
        line = pilot.app.screen.query_one(RecipeDiffLine)
        await wait_until(pilot, lambda: line.plain() != "")
        # not "0.002 vs 0.002: the same recipe": the first run is the one the others are shown against
        assert line.plain() == "0.002: the reference run: the others' recipes are shown against it"
        await pilot.press("down")
        await pilot.pause()
        assert line.plain() == "0.003 vs 0.002: training.lr 0.002 → 0.003"

    drive(make_app(attach_live=False), scenario, size=(100, 32))


def test_a_bleu_of_100_is_drawn_on_a_top_label_of_100(make_app, runs_dir):
    runs = []
    for name in ("bleu-a", "bleu-b"):
        path = write_run(runs_dir, name=name)
        records = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
        for r in records:
            if r["kind"] == "valid":  # BLEU from 0 at step 100 to 100, which no BLEU passes
                r["bleu"] = (r["step"] - 100) / 9
        (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        runs.append(RunFolder(path))

    async def scenario(pilot):
        await pilot.pause()
        pilot.app.show_comparison(runs=runs)
        await pilot.pause()
        score = pilot.app.screen.query_one(ScoreChart)
        await wait_until(pilot, lambda: len(score.histories) == 2)
        lines = plot_lines(score)
        labels = y_labels(lines)
        assert max(labels.values()) == 100 and labels.get(highest_drawn(lines)) == 100, lines  # not 150
        assert share_drawn(lines) == 1.0, lines

    drive(make_app(attach_live=False), scenario, size=(100, 32))
