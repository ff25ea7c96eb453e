"""Runs screen: recipes and runs listed, filtered, started, opened, replayed, resumed, compared, deleted."""

import json

from textual.widgets import Input, Select

from workbench.engine.recipe import load_recipe
from workbench.tui.components.comparison_table import ComparisonTable
from workbench.tui.components.recipe_diff_line import RecipeDiffLine
from workbench.tui.components.recipes_table import RecipesTable
from workbench.tui.components.runs_table import RunsTable
from workbench.tui.screens.compare import CompareScreen
from workbench.tui.screens.confirm import ConfirmScreen
from workbench.tui.screens.new_run import NewRunScreen

from .driving import drive, settle, wait_until
from .fixture_runs import write_run


async def open_runs(pilot):
    await pilot.pause()
    await pilot.app.screen._read_runs().wait()
    await pilot.pause()
    return pilot.app.screen.query_one(RunsTable)


def cells(table: RunsTable) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


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

    drive(make_app(), scenario)


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


def test_new_run_form_applies_overrides_creates_the_run_and_launches_it(make_app, launcher, runs_dir):
    async def scenario(pilot):
        await open_runs(pilot)
        await pilot.press("n")
        await pilot.pause()
        form = pilot.app.screen
        assert isinstance(form, NewRunScreen)
        assert form.query_one("#hidden_size", Input).value == "128"
        form.query_one("#cell", Select).value = "lstm"
        form.query_one("#hidden_size", Input).value = "96"
        form.query_one("#lr", Input).value = "0.002"
        form.query_one("#device", Select).value = "cpu"
        assert form.overrides() == ['model.cell="lstm"', "model.hidden_size=96", "training.lr=0.002"]
        await pilot.click("#start")
        await pilot.app.workers.wait_for_complete()
        await settle(pilot)
        assert len(launcher.launched) == 1
        run, device = launcher.launched[0]
        assert device == "cpu" and run.path.parent == runs_dir
        recipe = load_recipe(run.recipe_path)
        assert (recipe.model.cell, recipe.model.hidden_size, recipe.training.lr) == ("lstm", 96, 0.002)
        assert pilot.app.current_mode == "dashboard" and pilot.app.history.run.path == run.path
        assert pilot.app.history.state == "running"

    drive(make_app(), scenario)


def test_new_run_form_reports_a_bad_value_and_cancel_starts_nothing(make_app, launcher):
    async def scenario(pilot):
        await open_runs(pilot)
        await pilot.press("n")
        await pilot.pause()
        form = pilot.app.screen
        form.query_one("#hidden_size", Input).value = "0"
        await pilot.click("#start")
        await pilot.pause()
        assert isinstance(pilot.app.screen, NewRunScreen)
        assert "model.hidden_size" in str(form.query_one("#form-error").render())
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(pilot.app.screen, NewRunScreen)
        assert launcher.launched == []

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
        (row,) = [r for r in cells(table) if r[0] == "dates-live"]
        assert (row[2], row[4]) == ("● running", "encoding 45%")  # state, and the step column

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
