"""SVG snapshots of the main screens at 80x24, from fixed run folders (update: pytest --snapshot-update)."""

import pytest
import textual.constants
from textual.widgets import Input

from workbench.jobs.sweep_queue import SweepQueue
from workbench.tui.components.comparison_table import ComparisonTable

from .driving import settle, wait_until
from .fixture_runs import SWEEP_NAME, write_run

SIZE = (80, 24)


@pytest.fixture(autouse=True)
def truecolor(monkeypatch):
    monkeypatch.setattr(textual.constants, "COLOR_SYSTEM", "truecolor")


@pytest.fixture(autouse=True)
def beside_the_runs(monkeypatch, runs_dir):
    """The runs panel names its folder from the working folder: `runs/`, wherever the test's tmp is."""
    monkeypatch.chdir(runs_dir.parent)


@pytest.fixture
def two_runs(runs_dir):
    write_run(runs_dir, name="dates-demo")
    write_run(runs_dir, name="dates-lstm", cell="lstm", state="stopped", steps=600, started=1767229200.0)
    return runs_dir


def test_runs_screen(snap_compare, make_app, two_runs):
    async def before(pilot):
        await pilot.pause()
        await pilot.app.screen._read_runs().wait()
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=before)


def test_new_run_form(snap_compare, make_app, two_runs):
    async def before(pilot):
        await pilot.pause()
        await pilot.press("n")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=before)


def test_dashboard(snap_compare, make_app, two_runs):
    async def before(pilot):
        await settle(pilot, 0.4)

    assert snap_compare(make_app(run=two_runs / "dates-demo"), terminal_size=SIZE, run_before=before)


def test_dashboard_zoomed_with_a_cursor_and_the_grad_norm(snap_compare, make_app, two_runs):
    """The latest half of the steps, a cursor 80 steps back, the grad norm in the score chart's place."""

    async def before(pilot):
        await settle(pilot, 0.4)
        await pilot.press("h", "plus", "greater_than_sign", "less_than_sign", "less_than_sign")
        await pilot.pause(0.4)

    assert snap_compare(make_app(run=two_runs / "dates-demo"), terminal_size=SIZE, run_before=before)


def test_decode_screen(snap_compare, make_app, two_runs):
    async def before(pilot):
        await settle(pilot)
        await pilot.press("d")
        await pilot.pause()
        pilot.app.screen.query_one(Input).value = "Saturday, November 21, 2026"
        await wait_until(pilot, lambda: pilot.app.decoded is not None)
        await pilot.press("escape")
        await pilot.pause()
        pilot.app.decoded.seconds = 0.012  # a fixed decode time on screen

        pilot.app.screen._show_options()
        await pilot.pause()

    assert snap_compare(make_app(run=two_runs / "dates-demo"), terminal_size=SIZE, run_before=before)


def test_attention_replay(snap_compare, make_app, two_runs):
    async def before(pilot):
        await settle(pilot)
        await pilot.press(
            "a",
            "left_square_bracket",
            "left_square_bracket",
            "left_square_bracket",
            "left_square_bracket",
            "left_square_bracket",
            "down",
            "right",
        )
        await pilot.pause()

    assert snap_compare(
        make_app(run=two_runs / "dates-demo", replay=True), terminal_size=SIZE, run_before=before
    )


def test_compare_screen(snap_compare, make_app, two_runs):
    async def before(pilot):
        await pilot.pause()
        await pilot.app.screen._read_runs().wait()
        await pilot.pause()
        pilot.app.screen.query_one("#runs").focus()
        await pilot.press("m", "down", "c")
        await pilot.app.workers.wait_for_complete()
        pilot.app.clear_notifications()  # the mark's toast would make the picture depend on timing
        await pilot.pause(0.4)

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=before)


def test_sweep_table(snap_compare, make_app, sweep_runs, runs_dir):
    """A sweep's table sorted by BLEU, one run's curves taken off, the failed run highlighted."""

    async def before(pilot):
        await pilot.pause()
        pilot.app.show_comparison(sweep=SweepQueue.open(runs_dir, SWEEP_NAME))
        await pilot.pause()
        table = pilot.app.screen.query_one(ComparisonTable)
        await wait_until(pilot, lambda: table.row_count == 6)
        await pilot.press("o", "o", "o", "down", "down", "space", "down", "down")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause(0.4)

    assert snap_compare(make_app(attach_live=False), terminal_size=SIZE, run_before=before)
