"""Sweeps on the Runs screen: grouped with their progress, opened as a table, cancelled, started."""

import json

from textual.widgets import Input

from workbench.engine.recipe import load_recipe
from workbench.engine.run_folder import RunFolder
from workbench.tui.components.comparison_table import ComparisonTable
from workbench.tui.components.recipes_table import RecipesTable
from workbench.tui.screens.compare import CompareScreen
from workbench.tui.screens.new_sweep import NewSweepScreen

from .driving import drive, wait_until
from .fixture_runs import SWEEP_NAME
from .test_runs_screen import cells, open_runs


async def open_sweep_form(pilot) -> NewSweepScreen:
    """The new-sweep form of the fixture sweep, the last row of the recipes table."""
    await open_runs(pilot)
    pilot.app.screen.query_one(RecipesTable).focus()
    await pilot.press("ctrl+end", "n")
    await pilot.pause()
    return pilot.app.screen


def test_a_sweeps_runs_are_grouped_under_its_progress(make_app, sweep_runs, finished_run):
    async def scenario(pilot):
        table = await open_runs(pilot)
        assert cells(table) == [
            [
                "▾ sweep dates-grid",
                "dates-en-fr.toml",
                "✓3/6 ●1 ◌1 ✗1",
                "",
                "6 runs",
                "exact 95.1%",
                "2026-01-01 01:00",
            ],
            ["  ├ gru-bahdanau", "dates-en-fr", "✓ finished", "", "1,000", "exact 91.1%", "2026-01-01 01:00"],
            ["  ├ gru-general", "dates-en-fr", "✓ finished", "", "1,000", "exact 86.2%", "2026-01-01 01:01"],
            ["  ├ gru-concat", "dates-en-fr", "● running", "", "400", "exact 35.3%", "2026-01-01 01:02"],
            [
                "  ├ lstm-bahdanau",
                "dates-en-fr",
                "✓ finished",
                "",
                "1,000",
                "exact 95.1%",
                "2026-01-01 01:03",
            ],
            ["  ├ lstm-general", "dates-en-fr", "✗ failed", "", "200", "exact 13.7%", "2026-01-01 01:04"],
            ["  └ lstm-concat", "dates-en-fr", "◌ queued", "", "0", "—", "—"],
            ["dates-demo", "dates-demo", "✓ finished", "", "1,000", "exact 98.0%", "2026-01-01 00:00"],
        ]
        pilot.app.screen.query_one("#filter", Input).value = "lstm"
        await pilot.pause()
        assert [str(row[0]) for row in cells(table)] == [
            "▾ sweep dates-grid",
            "  ├ lstm-bahdanau",
            "  ├ lstm-general",
            "  └ lstm-concat",
        ]

    drive(make_app(attach_live=False), scenario, size=(100, 30))


def test_space_folds_a_sweep_into_its_header_row_and_unfolds_it(make_app, sweep_runs, finished_run):
    async def scenario(pilot):
        table = await open_runs(pilot)
        table.focus()
        await pilot.press("down", "down")  # on one of the sweep's runs
        await pilot.pause()
        assert pilot.app.screen.check_action("fold_sweep", ())
        await pilot.press("space")
        await pilot.pause()
        assert [str(row[0]) for row in cells(table)] == ["▸ sweep dates-grid", "dates-demo"]
        assert table.cursor_row == 0 and table.border_title == "runs (7)"  # the folded ones counted
        await pilot.press("down")
        await pilot.pause()
        assert not pilot.app.screen.check_action("fold_sweep", ())  # a run of no sweep
        pilot.app.screen.query_one("#filter", Input).value = "concat"  # a filter still finds its runs
        await pilot.pause()
        assert [str(row[0]) for row in cells(table)] == [
            "▸ sweep dates-grid",
            "  ├ gru-concat",
            "  └ lstm-concat",
        ]
        pilot.app.screen.query_one("#filter", Input).value = ""
        await pilot.pause()
        table.focus()
        await pilot.press("home", "space")
        await pilot.pause()
        assert len(cells(table)) == 8 and str(cells(table)[0][0]) == "▾ sweep dates-grid"

    drive(make_app(attach_live=False), scenario, size=(100, 30))


def test_enter_on_a_sweep_opens_its_table_and_c_on_one_of_its_runs_too(make_app, sweep_runs, runs_dir):
    async def scenario(pilot):
        table = await open_runs(pilot)
        table.focus()
        await pilot.press("enter")
        await pilot.pause()
        screen = pilot.app.screen
        assert isinstance(screen, CompareScreen) and screen.sweep.name == SWEEP_NAME
        await wait_until(pilot, lambda: screen.query_one(ComparisonTable).row_count == 6)
        await pilot.press("escape", "down", "down", "c")
        await pilot.pause()
        assert isinstance(pilot.app.screen, CompareScreen) and pilot.app.screen.sweep.name == SWEEP_NAME

    drive(make_app(attach_live=False), scenario, size=(100, 30))


def test_k_cancels_a_queued_run_of_a_sweep_and_nothing_else(make_app, sweep_runs):
    async def scenario(pilot):
        table = await open_runs(pilot)
        table.focus()
        await pilot.press("down", "k")  # a finished run: refused
        await pilot.app.workers.wait_for_complete()
        assert RunFolder(sweep_runs[0]).status()["state"] == "finished"
        await pilot.press("ctrl+end", "k")
        await pilot.app.workers.wait_for_complete()
        assert RunFolder(sweep_runs[5]).status()["state"] == "cancelled"
        await wait_until(pilot, lambda: "⊘1" in str(table.get_row_at(0)[2]), timeout=6)

    drive(make_app(attach_live=False), scenario, size=(100, 30))


def test_a_sweep_starts_from_the_recipes_table_with_parallel_and_set_keys(make_app, sweep_launcher, runs_dir):
    async def scenario(pilot):
        await open_runs(pilot)
        recipes = pilot.app.screen.query_one(RecipesTable)
        assert recipes.sweep_names == [SWEEP_NAME]
        await pilot.press("ctrl+end", "n")  # the sweep row
        await pilot.pause()
        form = pilot.app.screen
        assert isinstance(form, NewSweepScreen)
        assert "6 runs of dates-en-fr.toml over model.cell (2), model.attention (3)" in str(
            form.query_one("#sweep-summary").render()
        )
        form.query_one("#parallel", Input).value = "2"
        form.query_one("#overrides", Input).value = "training.max_steps=40 model.hidden_size=32"
        await pilot.click("#start")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        (queue,) = sweep_launcher.launched
        assert queue.name == SWEEP_NAME and queue.read()["parallel"] == 2
        recipe = load_recipe(queue.runs()[3].recipe_path)
        assert (recipe.model.cell, recipe.training.max_steps, recipe.model.hidden_size) == ("lstm", 40, 32)
        screen = pilot.app.screen
        assert isinstance(screen, CompareScreen) and screen.sweep.name == SWEEP_NAME
        table = screen.query_one(ComparisonTable)
        await wait_until(pilot, lambda: table.row_count == 6)
        state = [str(c.label) for c in table.columns.values()].index("state")
        assert [str(table.get_row_at(i)[state]) for i in range(6)] == ["◌ queued"] * 6

    drive(make_app(), scenario, size=(100, 30))


def test_the_sweep_form_names_a_bad_key_and_a_sweep_queued_twice_is_refused(
    make_app, sweep_launcher, sweep_runs, runs_dir
):
    async def scenario(pilot):
        form = await open_sweep_form(pilot)
        form.query_one("#overrides", Input).value = "training.max_stepz=40"
        await pilot.click("#start")
        await pilot.pause()
        assert isinstance(pilot.app.screen, NewSweepScreen)
        assert "training.max_stepz" in str(form.query_one("#form-error").render())
        form.query_one("#overrides", Input).value = ""
        await pilot.click("#start")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        assert sweep_launcher.launched == []  # already queued in this runs folder: nothing started
        assert json.loads((runs_dir / ".sweeps" / SWEEP_NAME / "queue.json").read_text())["parallel"] == 2

    drive(make_app(attach_live=False), scenario, size=(100, 30))


def test_a_sweep_over_a_bad_corpus_is_refused_by_the_form_and_queues_nothing(
    make_app, sweep_launcher, runs_dir, tmp_path
):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "train.en").write_text("one\ntwo\n")
    (corpus / "train.fr").write_text("un\n")
    (corpus / "valid.en").write_text("one\n")
    (corpus / "valid.fr").write_text("un\n")

    async def scenario(pilot):
        form = await open_sweep_form(pilot)
        form.query_one(
            "#overrides", Input
        ).value = f"data.kind=folder data.dir={corpus} data.src=en data.tgt=fr"
        await pilot.click("#start")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        assert sweep_launcher.launched == []
        assert not (runs_dir / ".sweeps").exists() and not any(runs_dir.glob("dates-grid-*"))
        assert any("has 2 lines but" in n.message for n in pilot.app._notifications)

    drive(make_app(attach_live=False), scenario, size=(100, 30))
