"""The app as a whole: navigation keys, the command palette, the entry point, terminals with few colours."""

import inspect

import pytest
import textual.constants
from textual.widgets import Input
from textual.widgets._footer import FooterKey

from workbench.jobs.sweep_queue import SweepQueue
from workbench.tui.app import S2SBenchApp, run_app

from .driving import drive, screen_lines, settle, wait_until
from .fixture_runs import SWEEP_NAME


def test_run_app_is_the_entry_point_the_cli_calls():
    assert list(inspect.signature(run_app).parameters) == [
        "runs_dir",
        "recipe",
        "run",
        "replay",
        "precision",
        "mode",
    ]


def test_navigation_keys_switch_screens_and_q_quits(make_app, finished_run):
    async def scenario(pilot):
        await settle(pilot)
        assert pilot.app.current_mode == "dashboard"
        for key, mode in (
            ("d", "decode"),
            ("escape", "decode"),
            ("a", "attention"),
            ("r", "runs"),
            ("t", "dashboard"),
        ):
            await pilot.press(key)
            await pilot.pause()
            assert pilot.app.current_mode == mode
        assert "t" not in pilot.app.screen.active_bindings  # no key for the screen already shown
        await pilot.press("q")
        await pilot.pause()
        assert pilot.app.return_code == 0

    drive(make_app(run=finished_run), scenario)


def test_letters_typed_in_the_decode_input_are_text_not_navigation(make_app, finished_run):
    async def scenario(pilot):
        await settle(pilot)
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("t", "a", "r", "d", "q")
        assert pilot.app.current_mode == "decode"
        assert pilot.app.screen.query_one(Input).value == "tardq"

    drive(make_app(run=finished_run), scenario)


def test_the_command_palette_offers_the_screens_keys(make_app, finished_run):
    async def scenario(pilot):
        await settle(pilot)
        titles = [c.title for c in pilot.app.get_system_commands(pilot.app.screen)]
        screens = {"Decode (d)", "Attention (a)", "Runs (r)", "Log (l)", "System (g)"}
        assert screens | {"Smooth (~)", "Log y (y)"} <= set(titles)
        assert [title for title in titles if title.startswith("Quit")] == ["Quit (q)"]  # once
        command = next(c for c in pilot.app.get_system_commands(pilot.app.screen) if c.title == "Decode (d)")
        await command.callback()
        await pilot.pause()
        assert pilot.app.current_mode == "decode"

    drive(make_app(run=finished_run), scenario)


def test_a_run_path_that_is_not_a_run_is_reported(make_app, tmp_path):
    async def scenario(pilot):
        await pilot.pause()
        assert pilot.app.current_mode == "runs" and pilot.app.history is None

    drive(make_app(run=tmp_path / "nothing"), scenario)


@pytest.mark.parametrize("color_system", ["standard", "256", "truecolor"])
@pytest.mark.parametrize("no_color", [False, True])
def test_every_screen_draws_with_any_colour_support(
    make_app, finished_run, monkeypatch, color_system, no_color
):
    monkeypatch.setattr(textual.constants, "COLOR_SYSTEM", color_system)
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")

    async def scenario(pilot):
        await settle(pilot, 0.3)
        await pilot.press("d")
        pilot.app.screen.query_one(Input).value = "Saturday, November 21, 2026"
        await wait_until(pilot, lambda: pilot.app.decoded is not None)
        for key in ("escape", "a", "r", "t"):
            await pilot.press(key)
            await pilot.pause()
        assert pilot.app.console.color_system == color_system and pilot.app.no_color == no_color
        assert "s2s-bench" in pilot.app.export_screenshot()  # drawing every screen above raised nothing

    drive(make_app(run=finished_run), scenario)


def test_s2s_bench_app_defaults_to_the_default_recipe(runs_dir):
    app = S2SBenchApp(runs_dir)
    assert app.default_recipe == "dates-en-fr" and "dates-en-fr" in app.recipes


def footer_keys(screen) -> tuple[list[str], list[str]]:
    """The footer's keys that show whole (left of the palette's key), and those it cuts or covers."""
    keys = list(screen.query(FooterKey))
    palette = next(k for k in keys if k.has_class("-command-palette"))
    whole, cut = [], []
    for key in keys:
        if key is not palette:
            shown = f"{key.key_display} {key.description}"
            (whole if key.region.width and key.region.right <= palette.region.x else cut).append(shown)
    return whole, cut


def test_at_80_columns_every_footer_shows_its_keys_whole(make_app, live_run, sweep_runs, runs_dir):
    """On every screen, with a live run open (the most keys): no key hidden under the palette's, cut, or
    leaving letters behind; the footer's last column is blank."""

    async def scenario(pilot):
        app = pilot.app
        await pilot.pause()
        await app.screen._read_runs().wait()
        await settle(pilot)
        footers = {"runs, no run open": footer_keys(app.screen)}
        app.open_run(live_run)
        await settle(pilot)
        for mode in ("dashboard", "decode", "attention", "log", "system", "runs"):
            app.switch_mode(mode)
            await settle(pilot, 0.1)
            footers[mode] = footer_keys(app.screen)
            assert screen_lines(app)[-1][-1] == " ", mode
        app.show_comparison(sweep=SweepQueue.open(runs_dir, SWEEP_NAME))
        await settle(pilot, 0.2)
        footers["compare"] = footer_keys(app.screen)
        assert {screen: cut for screen, (_, cut) in footers.items() if cut} == {}
        assert footers["runs"][0] == [
            "n New",
            "o Open",
            "u Resume",
            "m Mark",
            "C Clone",
            "c Compare",
            "/ Filter",
            "l Log",
            "q Quit",
        ]
        assert footers["dashboard"][0] == [
            "d Decode",
            "a Attention",
            "r Runs",
            "l Log",
            "q Quit",
            "p Pause",
            "s Stop",
            "h Chart",
        ]

    drive(make_app(attach_live=False), scenario)


def test_at_80_columns_the_bar_and_the_numbers_show_the_run_whole(make_app, finished_run):
    """The bar says the run's facts first, so that only the end of the reason is cut; the numbers say the
    device in a column wide enough for it."""

    async def scenario(pilot):
        await settle(pilot, 0.2)
        lines = screen_lines(pilot.app)
        assert lines[0] == " s2s-bench › Dashboard │ dates-demo ✓ finished · step 1,000 (reached 1000 step… "
        assert "on cpu · 2 threads " in "\n".join(lines[1:5])

    drive(make_app(run=finished_run), scenario)
