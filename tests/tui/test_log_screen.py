"""The log screen: the open run's train.log, its trainer's console output and its sweep runner's log,
followed as they grow, with a search."""

from textual.widgets import Input, Log

from workbench.engine.run_folder import RunFolder
from workbench.jobs.sweep_queue import SweepQueue
from workbench.tui.components.runs_table import RunsTable
from workbench.tui.screens.log import read_lines

from .driving import drive, settle, wait_until
from .fixture_runs import SWEEP_NAME


def shown(pilot) -> list[str]:
    return list(pilot.app.screen.query_one(Log).lines)


def test_l_follows_the_open_runs_train_log_and_v_shows_its_console(make_app, finished_run):
    run = RunFolder(finished_run)
    run.log("training on cpu")
    run.log("step 20: loss 3.1")
    (finished_run / "console.log").write_text("Traceback? no: a warning from torch\n")

    async def scenario(pilot):
        await settle(pilot)
        await pilot.press("l")
        await pilot.pause()
        assert pilot.app.current_mode == "log"
        await wait_until(pilot, lambda: len(shown(pilot)) == 2)
        assert shown(pilot)[1].endswith("step 20: loss 3.1")
        run.log("step 40: loss 2.7")  # appended while shown: followed
        await wait_until(pilot, lambda: len(shown(pilot)) == 3)
        with open(run.log_path, "a") as f:
            f.write("half a li")  # a line still being written waits for its end
        await pilot.pause(0.7)
        assert len(shown(pilot)) == 3
        await pilot.press("v")
        await wait_until(pilot, lambda: shown(pilot) == ["Traceback? no: a warning from torch"])
        assert pilot.app.screen.query_one(Log).border_title.startswith("console")

    drive(make_app(run=finished_run), scenario)


def test_slash_searches_the_log_and_escape_shows_every_line_again(make_app, finished_run):
    run = RunFolder(finished_run)
    for step in range(1, 7):
        run.log(f"step {step}: loss {4 - step / 2}")
    run.log("checkpoint 'last' saved")

    async def scenario(pilot):
        await settle(pilot)
        await pilot.press("l")
        await wait_until(pilot, lambda: len(shown(pilot)) == 7)
        await pilot.press("slash")
        assert isinstance(pilot.app.focused, Input)
        await pilot.press(*"CHECKPOINT")
        await pilot.pause()
        assert len(shown(pilot)) == 1 and shown(pilot)[0].endswith("checkpoint 'last' saved")
        assert "1 of 7 lines" in pilot.app.screen.query_one(Log).border_subtitle
        await pilot.press("enter", "escape")
        await pilot.pause()
        assert len(shown(pilot)) == 7

    drive(make_app(run=finished_run), scenario)


def test_l_on_a_sweep_shows_its_runners_log(make_app, sweep_runs, runs_dir):
    queue = SweepQueue.open(runs_dir, SWEEP_NAME)
    queue.log("runner 4242: 2 at a time on cpu")

    async def scenario(pilot):
        await pilot.pause()
        await pilot.app.screen._read_runs().wait()
        await pilot.pause()
        table = pilot.app.screen.query_one(RunsTable)
        table.focus()
        table.move_cursor(row=0)  # the sweep's header row
        await pilot.press("l")
        await wait_until(pilot, lambda: any("runner 4242" in line for line in shown(pilot)))
        assert pilot.app.current_mode == "log" and pilot.app.history is None
        assert pilot.app.screen.query_one(Log).border_title.startswith(f"sweep {SWEEP_NAME}")

    drive(make_app(attach_live=False), scenario)


def test_l_on_a_sweep_shows_its_log_first_while_a_run_is_open(make_app, sweep_runs, runs_dir, finished_run):
    SweepQueue.open(runs_dir, SWEEP_NAME).log("runner 4242: 2 at a time on cpu")
    RunFolder(finished_run).log("training on cpu")

    async def scenario(pilot):
        await settle(pilot)
        await pilot.press("r")
        await pilot.pause()
        await pilot.app.screen._read_runs().wait()
        await pilot.pause()
        table = pilot.app.screen.query_one(RunsTable)
        table.focus()
        table.move_cursor(row=0)  # the sweep's header row, above the open run's row
        await pilot.press("l")
        await wait_until(pilot, lambda: any("runner 4242" in line for line in shown(pilot)))
        assert pilot.app.history is not None and pilot.app.history.run.path == finished_run
        await pilot.press("v")  # then the open run's own logs
        await wait_until(pilot, lambda: any("training on cpu" in line for line in shown(pilot)))

    drive(make_app(run=finished_run), scenario)


def test_a_log_that_was_rewritten_is_read_again_from_its_start(tmp_path):
    path = tmp_path / "train.log"
    path.write_text("one\ntwo\nthr")
    lines, offset, restarted = read_lines(path, 0)
    assert (lines, offset, restarted) == (["one", "two"], 8, False)
    path.write_text("new\n")
    assert read_lines(path, offset) == (["new"], 4, True)
    assert read_lines(tmp_path / "missing.log", 0) == ([], 0, False)
