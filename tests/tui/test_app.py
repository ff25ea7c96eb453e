"""The app as a whole: navigation keys, the command palette, the entry point, terminals with few colours."""

import inspect

import pytest
import textual.constants
from textual.widgets import Input

from workbench.tui.app import S2SBenchApp, run_app

from .driving import drive, settle, wait_until


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
