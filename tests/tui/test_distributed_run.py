"""A run over several processes in the workbench: started from the form, resumed on as many, shown as one."""

import json

from textual.widgets import Button, Input

from workbench.tui.components.runs_table import RunsTable
from workbench.tui.components.stats_panel import StatsPanel
from workbench.tui.screens.new_run import NewRunScreen

from .driving import drive, settle
from .fixture_runs import write_run


def stats_cells(screen) -> list[str]:
    stats = screen.query_one(StatsPanel)
    table = stats.renderable if hasattr(stats, "renderable") else stats.content
    return [str(c) for col in table.columns for c in col._cells]


def test_the_new_run_form_asks_for_the_process_count_and_refuses_a_bad_one(make_app, launcher):
    async def scenario(pilot):
        await pilot.pause()
        await pilot.press("n")
        await pilot.pause()
        form = pilot.app.screen
        assert isinstance(form, NewRunScreen)
        assert form.query_one("#nproc", Input).value == "1"
        form.query_one("#nproc", Input).value = "0"
        await pilot.click("#start")
        await pilot.pause()
        assert "processes must be at least 1" in str(form.query_one("#form-error").render())
        form.query_one("#nproc", Input).value = "2"
        form.query_one("#start", Button).press()
        await pilot.pause()
        assert not isinstance(pilot.app.screen, NewRunScreen), str(form.query_one("#form-error").render())
        await pilot.app.workers.wait_for_complete()
        await settle(pilot)
        assert launcher.processes == [2]

    drive(make_app(), scenario)


def test_a_distributed_run_resumes_on_as_many_processes_and_shows_as_one_run(make_app, launcher, runs_dir):
    path = write_run(runs_dir, name="dates-ddp", state="stopped", steps=600)
    status = json.loads((path / "status.json").read_text())
    status.update(processes=2, device="cpu (1 thread)")
    (path / "status.json").write_text(json.dumps(status))

    async def scenario(pilot):
        await pilot.pause()
        await pilot.app.screen._read_runs().wait()
        await pilot.pause()
        table = pilot.app.screen.query_one(RunsTable)
        assert table.row_count == 1  # one row for the run, not one per process
        table.focus()
        await pilot.press("u")
        await pilot.app.workers.wait_for_complete()
        await settle(pilot, 0.1)
        assert launcher.processes == [2]
        # what rank 0 writes once the processes run
        status.update(state="running", processes=2, device="cpu (1 thread)", pid=1, host="fixture-host")
        (path / "status.json").write_text(json.dumps(status))
        await pilot.app.sync_run()
        await settle(pilot)
        assert "on 2 × cpu · 1 thread" in stats_cells(pilot.app.screen)

    drive(make_app(), scenario)
