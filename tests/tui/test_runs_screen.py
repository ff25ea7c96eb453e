"""Runs screen: recipes and runs listed, filtered, started, opened, replayed, resumed, compared, deleted."""

import json

import pytest
from textual.widgets import Button, Input, Select, TextArea

from workbench.engine.recipe import load_recipe
from workbench.tui.components.comparison_table import ComparisonTable
from workbench.tui.components.recipe_diff_line import RecipeDiffLine
from workbench.tui.components.recipes_table import RecipesTable
from workbench.tui.components.runs_table import COLUMNS, RunsTable, fitting_columns
from workbench.tui.screens.compare import CompareScreen
from workbench.tui.screens.confirm import ConfirmScreen
from workbench.tui.screens.new_run import NewRunScreen
from workbench.tui.screens.new_sweep import NewSweepScreen
from workbench.tui.screens.runs import panel_heights

from .driving import drive, settle, wait_until
from .fixture_runs import write_run


async def open_runs(pilot):
    await pilot.pause()
    await pilot.app.screen._read_runs().wait()
    await pilot.pause()
    return pilot.app.screen.query_one(RunsTable)


def cells(table: RunsTable) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def rows_by_column(table: RunsTable) -> list[dict[str, str]]:
    """Each row as {column label: cell}: the columns shown depend on the table's width."""
    labels = [column.label.plain for column in table.columns.values()]
    return [dict(zip(labels, row, strict=True)) for row in cells(table)]


def test_lists_recipes_and_runs_with_state_step_best_and_start(make_app, finished_run, runs_dir):
    write_run(runs_dir, name="dates-stopped", state="stopped", steps=600, started=1767229200.0)

    async def scenario(pilot):
        table = await open_runs(pilot)
        assert pilot.app.current_mode == "runs"
        assert pilot.app.screen.query_one(RecipesTable).names == ["dates-en-fr", "dates-lstm"]
        assert cells(table) == [
            ["dates-stopped", "dates-stopped", "■ stopped", "", "600", "exact 58.8%", "2026-01-01 01:00"],
            ["dates-demo", "dates-demo", "✓ finished", "", "1,000", "exact 98.0%", "2026-01-01 00:00"],
        ]

    drive(make_app(), scenario, size=(100, 30))


def test_filter_narrows_recipes_and_runs(make_app, finished_run, runs_dir):
    write_run(runs_dir, name="other", state="stopped", steps=200)

    async def scenario(pilot):
        table = await open_runs(pilot)
        await pilot.press("slash")
        assert pilot.app.focused.id == "filter"
        await pilot.press(*"lstm")
        await pilot.pause()
        assert table.row_count == 0
        assert pilot.app.screen.query_one(RecipesTable).names == ["dates-lstm"]
        pilot.app.screen.query_one("#filter", Input).value = "other"
        await pilot.pause()
        assert [r.name for r in table.summaries] == ["other"]

    drive(make_app(), scenario)


def test_enter_on_a_run_opens_its_dashboard(make_app, finished_run):
    async def scenario(pilot):
        table = await open_runs(pilot)
        table.focus()
        await pilot.press("enter")
        await settle(pilot)
        assert pilot.app.current_mode == "dashboard"
        assert pilot.app.history.run.path == finished_run and not pilot.app.replay

    drive(make_app(), scenario)


def test_replay_opens_the_run_without_controls(make_app, finished_run):
    async def scenario(pilot):
        table = await open_runs(pilot)
        table.focus()
        await pilot.press("R")
        await settle(pilot)
        assert pilot.app.current_mode == "dashboard" and pilot.app.replay
        assert "p" not in pilot.app.screen.active_bindings  # no pause/stop/checkpoint in a replay

    drive(make_app(), scenario)


async def open_new_run_form(pilot) -> NewRunScreen:
    await open_runs(pilot)
    await pilot.press("n")
    await pilot.pause()
    form = pilot.app.screen
    assert isinstance(form, NewRunScreen)
    return form


def test_the_new_run_form_shows_its_train_command_line_and_starts_that_run(make_app, launcher, runs_dir):
    async def scenario(pilot):
        form = await open_new_run_form(pilot)
        form.query_one("#name", Input).value = "lstm-96"
        form.query_one("#device", Select).value = "cpu"
        form.query_one("#threads", Input).value = "2"
        form.query_one("#max_steps", Input).value = "300"
        form.query_one("#max_minutes", Input).value = "1.5"
        lines = "model.cell=lstm\n  model.hidden_size=96\n\ntraining.lr=0.002\n"  # blanks and spaces dropped
        form.query_one("#overrides", TextArea).text = lines
        await pilot.pause()
        line = str(form.query_one("#command-line").render())
        recipe = str(pilot.app.recipes["dates-en-fr"])
        assert line == (
            f"s2s-bench train {recipe} --runs-dir {runs_dir} --name lstm-96 --device cpu --threads 2 "
            "--max-steps 300 --max-minutes 1.5 --set model.cell=lstm --set model.hidden_size=96 "
            "--set training.lr=0.002"
        )
        form.query_one("#max_minutes", Input).focus()
        await pilot.press("enter")  # Enter in a one-line field starts
        await pilot.app.workers.wait_for_complete()
        await settle(pilot)
        (command,) = launcher.commands
        assert command.run.path == runs_dir / "lstm-96"
        assert (command.device, command.threads, command.max_steps, command.max_minutes, command.nproc) == (
            "cpu",
            2,
            300,
            1.5,
            None,
        )
        recipe = load_recipe(command.run.recipe_path)
        assert (recipe.model.cell, recipe.model.hidden_size, recipe.training.lr) == ("lstm", 96, 0.002)
        assert recipe.training.max_steps == 1000  # --max-steps limits this session; the recipe keeps its own
        assert pilot.app.current_mode == "dashboard" and pilot.app.history.run.path == command.run.path
        assert pilot.app.history.state == "running"

    drive(make_app(), scenario)


def test_the_new_run_form_names_a_bad_set_line_and_cancel_starts_nothing(make_app, launcher):
    async def scenario(pilot):
        form = await open_new_run_form(pilot)
        overrides = form.query_one("#overrides", TextArea)
        for text, problem in (
            ("model.hidden_size=0", "model.hidden_size"),
            ("training.max_stepz=40", "training.max_stepz"),
            ("model.cell lstm", "expected section.key=value"),
        ):
            overrides.text = text
            await pilot.pause()  # the form redraws its command line (and clears its message) first
            form.query_one("#start", Button).press()
            await pilot.pause()
            assert isinstance(pilot.app.screen, NewRunScreen)
            assert problem in str(form.query_one("#form-error").render())
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(pilot.app.screen, NewRunScreen)
        assert launcher.launched == []

    drive(make_app(), scenario)


def test_both_forms_open_on_their_first_field_and_enter_there_starts(make_app, launcher, sweep_launcher):
    async def scenario(pilot):
        form = await open_new_run_form(pilot)
        assert pilot.app.focused is form.query_one("#recipe", Select)
        await pilot.press("enter")  # on the recipe list, closed: starts with what the form says
        await pilot.app.workers.wait_for_complete()
        await settle(pilot)
        assert len(launcher.launched) == 1
        pilot.app.switch_mode("runs")
        await pilot.pause()
        recipes = pilot.app.screen.query_one(RecipesTable)
        recipes.focus()
        await pilot.press("end", "n")  # the sweep, the recipes table's last row
        await pilot.pause()
        form = pilot.app.screen
        assert isinstance(form, NewSweepScreen)
        assert pilot.app.focused is form.query_one("#sweep", Select)

    drive(make_app(), scenario)


def test_enter_in_the_set_lines_breaks_the_line_and_in_an_open_list_picks_an_item(make_app, launcher):
    async def scenario(pilot):
        form = await open_new_run_form(pilot)
        await pilot.press("space")  # opens the recipe list
        await pilot.press("down", "enter")
        await pilot.pause()
        assert isinstance(pilot.app.screen, NewRunScreen) and form.recipe_name == "dates-lstm"
        form.query_one("#overrides", TextArea).focus()
        await pilot.press(*"model.cell=gru", "enter", *"model.dropout=0.2")
        await pilot.pause()
        assert form.query_one("#overrides", TextArea).text == "model.cell=gru\nmodel.dropout=0.2"
        assert isinstance(pilot.app.screen, NewRunScreen) and launcher.launched == []

    drive(make_app(), scenario)


def test_clone_with_changes_starts_a_run_whose_recipe_differs_from_its_source_only_there(
    make_app, launcher, finished_run, monkeypatch
):
    monkeypatch.chdir(finished_run.parent.parent)  # the command line names the run's recipe from here

    async def scenario(pilot):
        table = await open_runs(pilot)
        table.focus()
        await pilot.press("C")
        await pilot.pause()
        form = pilot.app.screen
        assert isinstance(form, NewRunScreen)
        assert form.query_one("#recipe", Select).value == "dates-demo (run)"
        form.query_one("#overrides", TextArea).text = "training.lr=0.003\nmodel.dropout=0.25"
        await pilot.pause()
        assert str(form.query_one("#command-line").render()) == (
            "s2s-bench train runs/dates-demo/recipe.toml --set training.lr=0.003 --set model.dropout=0.25"
        )
        await pilot.click("#start")
        await pilot.app.workers.wait_for_complete()
        await settle(pilot)
        (command,) = launcher.commands
        assert command.run.path != finished_run
        source = load_recipe(finished_run / "recipe.toml").dotted()
        clone = load_recipe(command.run.recipe_path).dotted()
        assert {key for key in source if source[key] != clone[key]} == {"training.lr", "model.dropout"}
        assert (clone["training.lr"], clone["model.dropout"]) == (0.003, 0.25)

    drive(make_app(), scenario)


def test_resume_launches_a_stopped_run_and_opens_it(make_app, launcher, runs_dir):
    stopped = write_run(runs_dir, name="dates-stopped", state="stopped", steps=600)

    async def scenario(pilot):
        table = await open_runs(pilot)
        table.focus()
        await pilot.press("u")
        await pilot.app.workers.wait_for_complete()
        await settle(pilot)
        assert [(r.path, d) for r, d in launcher.launched] == [(stopped, "auto")]
        assert pilot.app.current_mode == "dashboard" and pilot.app.history.state == "running"

    drive(make_app(), scenario)


def test_resume_of_a_live_run_just_opens_it(make_app, launcher, live_run):
    async def scenario(pilot):
        table = await open_runs(pilot)
        pilot.app.switch_mode("runs")
        await pilot.pause()
        table.focus()
        await pilot.press("u")
        await settle(pilot)
        assert launcher.launched == []
        assert pilot.app.history.run.path == live_run

    drive(make_app(attach_live=False), scenario)


def test_compare_two_marked_runs_lists_recipe_differences(make_app, finished_run, runs_dir):
    write_run(runs_dir, name="dates-lstm-run", state="stopped", steps=600, started=1767229200.0, cell="lstm")

    async def scenario(pilot):
        table = await open_runs(pilot)
        table.focus()
        await pilot.press("m", "down", "c")  # one marked: the highlighted run joins it
        await pilot.pause()
        assert isinstance(pilot.app.screen, CompareScreen)
        comparison = pilot.app.screen.query_one(ComparisonTable)
        await wait_until(pilot, lambda: comparison.row_count == 2)
        rows = [[str(c) for c in comparison.get_row_at(i)][1:5] for i in range(2)]
        assert rows == [
            ["dates-lstm-run", "dates-lstm-run", "lstm", "57.0"],
            ["dates-demo", "dates-demo", "gru", "95.0"],
        ]
        await pilot.press("down")
        await pilot.pause()
        assert pilot.app.screen.query_one(RecipeDiffLine).plain() == (
            "dates-demo · gru vs dates-lstm-run · lstm: model.cell lstm → gru"
        )
        await pilot.press("escape")
        assert pilot.app.current_mode == "runs" and not isinstance(pilot.app.screen, CompareScreen)

    drive(make_app(), scenario, size=(100, 30))


def test_any_number_of_marked_runs_are_compared(make_app, finished_run, runs_dir):
    for n in range(3):
        write_run(runs_dir, name=f"dates-h{n}", started=1767229200.0 + n, hidden_size=32 * (n + 1))

    async def scenario(pilot):
        table = await open_runs(pilot)
        table.focus()
        await pilot.press("m", "down", "m", "down", "m", "m")  # three marked, the third unmarked again
        assert [p.name for p in table.marked] == ["dates-h2", "dates-h1"]
        assert str(table.get_row_at(0)[0]) == "▶ dates-h2"
        await pilot.press("down", "down", "m", "c")
        await pilot.pause()
        comparison = pilot.app.screen.query_one(ComparisonTable)
        await wait_until(pilot, lambda: comparison.row_count == 3)
        assert [row.name for row in comparison.rows_shown] == ["dates-h2", "dates-h1", "dates-demo"]
        assert "hidden_size" in [str(c.label) for c in comparison.columns.values()]

    drive(make_app(), scenario, size=(100, 30))


def test_compare_without_a_mark_explains_what_to_do(make_app, finished_run):
    async def scenario(pilot):
        table = await open_runs(pilot)
        table.focus()
        await pilot.press("c")
        await pilot.pause()
        assert not isinstance(pilot.app.screen, CompareScreen)

    drive(make_app(), scenario)


def test_delete_asks_first_and_cancel_keeps_the_run(make_app, finished_run):
    async def scenario(pilot):
        table = await open_runs(pilot)
        table.focus()
        await pilot.press("delete")
        await pilot.pause()
        assert isinstance(pilot.app.screen, ConfirmScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert finished_run.exists()
        await pilot.press("delete")
        await pilot.pause()
        await pilot.click("#confirm")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        assert not finished_run.exists()
        await pilot.app.screen._read_runs().wait()
        await pilot.pause()
        assert table.row_count == 0

    drive(make_app(), scenario)


def test_a_live_run_cannot_be_deleted(make_app, live_run):
    async def scenario(pilot):
        table = await open_runs(pilot)
        table.focus()
        await pilot.press("delete")
        await pilot.pause()
        assert not isinstance(pilot.app.screen, ConfirmScreen)
        assert live_run.exists()

    drive(make_app(attach_live=False), scenario)


def test_reopening_the_app_attaches_to_the_live_run(make_app, finished_run, live_run):
    async def scenario(pilot):
        await wait_until(pilot, lambda: pilot.app.current_mode == "dashboard")
        await settle(pilot)
        assert pilot.app.history.run.path == live_run and pilot.app.history.state == "running"

    drive(make_app(), scenario)
    status = json.loads((live_run / "status.json").read_text())
    assert status["state"] == "running"  # opening and quitting the UI leaves the trainer alone


def test_seed_recipes_are_listed_first_under_their_title(make_app, recipes, tmp_path):
    for name in ("seed-2-lstm", "seed-1-gru"):
        path = tmp_path / "recipes" / f"{name}.toml"
        path.write_text(load_recipe(recipes["dates-en-fr"]).to_toml().replace("dates-en-fr", name))
        recipes[name] = path  # the app's recipes

    async def scenario(pilot):
        await open_runs(pilot)
        table = pilot.app.screen.query_one(RecipesTable)
        assert table.names == ["seed-1-gru", "seed-2-lstm", "dates-en-fr", "dates-lstm"]
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        assert [row[0] for row in rows] == [
            "seed systems",
            "  seed-1-gru",
            "  seed-2-lstm",
            "other recipes",
            "  dates-en-fr",
            "  dates-lstm",
            "dates-grid sweep",
        ]
        assert rows[1][2] == "A small dates model for the TUI tests."
        table.move_cursor(row=2)
        assert table.highlighted_recipe() == "seed-2-lstm"
        table.move_cursor(row=3)
        assert table.highlighted_recipe() is None

    drive(make_app(), scenario)


def test_a_run_preparing_its_corpus_shows_the_phase_and_how_far_in_the_list_and_the_bar(make_app, live_run):
    from workbench.engine.run_folder import RunFolder
    from workbench.tui.components.run_bar import RunBar

    reason = "preparing data: encoding 45% (1,800,000 of 4,000,000 pairs, 52,000 pairs/s, about 40 s left)"
    preparing = {"phase": "encoding", "done": 1_800_000, "total": 4_000_000, "fraction": 0.45}
    RunFolder(live_run).write_status("running", reason=reason, preparing=preparing)

    async def scenario(pilot):  # the app opens on the live run's dashboard
        def bar_says() -> str:
            bars = pilot.app.screen.query(RunBar)
            return str(bars.first().render()) if bars else ""

        await wait_until(pilot, lambda: "preparing data: encoding 45% (1,800,000" in bar_says())
        await pilot.press("r")
        table = await open_runs(pilot)
        (row,) = [r for r in rows_by_column(table) if r["run"] == "dates-live"]
        assert (row["state"], row["step"]) == ("● running", "encoding 45%")

    drive(make_app(), scenario)


def test_the_runs_panel_names_the_folder_it_shows(make_app, runs_dir, monkeypatch, tmp_path_factory):
    def subtitle() -> str:
        found = []

        async def scenario(pilot):
            found.append((await open_runs(pilot)).border_subtitle)

        drive(make_app(), scenario)
        return found[0]

    monkeypatch.chdir(runs_dir.parent)
    assert subtitle() == "in runs/"
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))  # the runs folder is outside it
    assert subtitle() == f"in {runs_dir.resolve()}/"


def test_the_runs_table_fits_its_panel_at_80_columns_with_every_run_name_whole(make_app, runs_dir):
    write_run(runs_dir, name="dates-en-fr-20260101-120000", state="failed", steps=200, started=1767229200.0)
    write_run(runs_dir, name="dates-demo")

    async def scenario(pilot):
        table = await open_runs(pilot)
        await pilot.pause()
        assert table.virtual_size.width <= table.scrollable_content_region.width  # nothing to scroll to
        rows = rows_by_column(table)
        assert [row["run"] for row in rows] == ["dates-en-fr-20260101-120000", "dates-demo"]
        assert [(row["state"], row["step"], row["best"]) for row in rows] == [
            ("✗ failed", "200", "exact 19.6%"),
            ("✓ finished", "1,000", "exact 98.0%"),
        ]
        assert "recipe" not in rows[0]  # the run's name says it here; a wider terminal shows it
        await pilot.resize_terminal(130, 24)
        await pilot.pause()
        assert list(rows_by_column(table)[0]) == ["run", "recipe", "state", "on", "step", "best", "started"]

    drive(make_app(), scenario)


def test_fitting_columns_gives_the_room_by_priority_and_an_empty_column_last():
    row = ("a-long-run-name", "recipe", "✓ finished", "", "1,000", "exact 98.0%", "2026-01-01 00:00")
    every = 17 + 8 + 12 + 4 + 7 + 13 + 18
    assert fitting_columns([row], every) == list(COLUMNS)
    assert fitting_columns([row], every - 1) == ["run", "recipe", "state", "step", "best", "started"]
    assert fitting_columns([row], 17 + 12 + 7 + 13) == ["run", "state", "step", "best"]
    assert fitting_columns([row], 5) == ["run"]  # the name whole, whatever the room


def test_home_and_end_move_to_the_first_and_the_last_row(make_app, runs_dir):
    for n in range(4):
        write_run(runs_dir, name=f"dates-{n}", started=1767229200.0 + n)

    async def scenario(pilot):
        table = await open_runs(pilot)
        table.focus()
        await pilot.press("end")
        assert table.cursor_row == 3 and table.highlighted_run().name == "dates-0"
        await pilot.press("home")
        assert table.cursor_row == 0 and table.highlighted_run().name == "dates-3"
        assert table.scroll_x == 0
        recipes = pilot.app.screen.query_one(RecipesTable)
        recipes.focus()
        await pilot.press("end")
        assert recipes.highlighted_sweep() == "dates-grid"
        await pilot.press("home")
        assert recipes.highlighted_recipe() == "dates-en-fr"

    drive(make_app(), scenario)


@pytest.mark.parametrize(
    "recipe_rows, run_rows, heights",
    [
        (19, 2, (16, 5)),  # few runs: the recipes take the room the runs leave
        (19, 30, (10, 11)),  # both long: half each, the odd line to the runs
        (3, 30, (6, 15)),  # few recipes: the runs take the rest
        (3, 0, (6, 15)),
    ],
)
def test_the_recipes_and_the_runs_share_the_height_by_what_they_show(recipe_rows, run_rows, heights):
    assert panel_heights(21, recipe_rows, run_rows) == heights


def test_at_80x24_the_recipes_panel_is_not_squeezed_beside_an_empty_runs_panel(
    make_app, recipes, finished_run, tmp_path
):
    for n in range(12):  # 14 recipes, as the built-in ones
        path = tmp_path / "recipes" / f"more-{n:02}.toml"
        path.write_text(load_recipe(recipes["dates-en-fr"]).to_toml().replace("dates-en-fr", f"more-{n:02}"))
        recipes[f"more-{n:02}"] = path

    async def scenario(pilot):
        runs = await open_runs(pilot)
        await pilot.pause()
        panel = pilot.app.screen.query_one(RecipesTable)
        assert panel.row_count == 15
        # the 21 lines the bar, the filter and the footer leave: the runs panel has its one run, no more
        assert (panel.outer_size.height, runs.outer_size.height) == (17, 4)

    drive(make_app(), scenario)
