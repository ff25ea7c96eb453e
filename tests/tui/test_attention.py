"""The attention screen: alignments of validations over time and of the decode panel; cursor, scrolling."""

import textual.constants
from textual.widgets import Input

from workbench.tui.components.attention_grid import AttentionGrid
from workbench.tui.screens.attention import AttentionScreen

from .driving import drive, settle, wait_until
from .fixture_runs import PROBE_ALIGN, write_run


async def open_attention(pilot):
    await settle(pilot)
    await pilot.press("a")
    await pilot.pause()
    assert isinstance(pilot.app.screen, AttentionScreen)
    return pilot.app.screen, pilot.app.screen.query_one(AttentionGrid)


def info(screen) -> str:
    return str(screen.query_one("#attention-info").render())


def test_replay_shows_the_probe_alignment_and_steps_through_validations(make_app, finished_run):
    async def scenario(pilot):
        screen, grid = await open_attention(pilot)
        assert "validation 10/10 · step 1000 · sentence 4/4 (probe)" in info(screen)
        assert grid.src == ["Saturday", ",", "November", "21", ",", "2026"]
        assert grid.tgt == ["samedi", "21", "novembre", "2026", "</s>"]
        assert [row.index(max(row)) for row in grid.weights] == PROBE_ALIGN
        sharp = grid.weight_at(0, 0)
        await pilot.press("left_square_bracket", "left_square_bracket")
        assert "validation 8/10 · step 800" in info(screen)
        for _ in range(10):
            await pilot.press("left_square_bracket")
        assert "validation 1/10 · step 100" in info(screen)
        assert grid.weight_at(0, 0) < sharp  # early on, attention is spread out
        await pilot.press("right_square_bracket")
        assert "validation 2/10 · step 200" in info(screen)

    drive(make_app(run=finished_run, replay=True), scenario)


def test_play_walks_through_time_to_the_latest_validation(make_app, finished_run, monkeypatch):
    monkeypatch.setattr("workbench.tui.screens.attention.PLAY_INTERVAL_S", 0.02)

    async def scenario(pilot):
        screen, grid = await open_attention(pilot)
        shown = []
        original = grid.show
        monkeypatch.setattr(
            grid, "show", lambda *a, **k: (shown.append(screen.step_index), original(*a, **k))
        )
        await pilot.press("space")
        await wait_until(pilot, lambda: "validation 10/10" in info(screen) and "playing" not in info(screen))
        assert shown[0] == 0 and sorted(set(shown) - {None}) == list(range(10))

    drive(make_app(run=finished_run, replay=True), scenario)


def test_sentence_keys_pick_other_validation_sentences(make_app, finished_run):
    async def scenario(pilot):
        screen, grid = await open_attention(pilot)
        await pilot.press("full_stop")
        assert "sentence 1/4" in info(screen) and "Monday, March 3, 2025" in info(screen)
        assert grid.tgt == ["lundi", "3", "mars", "2025", "</s>"]
        await pilot.press("comma", "comma")
        assert "sentence 3/4" in info(screen)

    drive(make_app(run=finished_run, replay=True), scenario)


def test_shows_the_decode_panels_translation_and_v_switches_source(make_app, finished_run):
    async def scenario(pilot):
        await settle(pilot)
        await pilot.press("d")
        await pilot.pause()
        pilot.app.screen.query_one(Input).value = "Saturday, November 21, 2026"
        await wait_until(pilot, lambda: pilot.app.decoded is not None)
        await pilot.press("escape", "a")
        await pilot.pause()
        screen = pilot.app.screen
        grid = screen.query_one(AttentionGrid)
        assert "decode panel" in info(screen) and "samedi 21 novembre 2026" in info(screen)
        assert grid.src == ["Saturday", "November", "21", "2026"]
        await pilot.press("v")
        assert "validation 10/10" in info(screen)
        await pilot.press("v")
        assert "decode panel" in info(screen)

    drive(make_app(run=finished_run), scenario)


def test_cursor_shows_the_weight_under_it(make_app, finished_run):
    async def scenario(pilot):
        screen, grid = await open_attention(pilot)
        assert pilot.app.focused is grid
        assert grid.border_subtitle == "samedi ← Saturday  1.00"
        await pilot.press("down", "right", "right", "right")
        assert grid.cursor == (1, 3)
        assert grid.border_subtitle == "21 ← 21  1.00"
        await pilot.press("left")
        assert grid.border_subtitle == "21 ← November  0.00"
        await pilot.press("number_sign")
        assert grid.numbers
        line = "".join(seg.text for seg in grid.render_line(2))
        assert line.split() == ["21", "0", "0", "0", "100", "0", "0"]

    drive(make_app(run=finished_run, replay=True), scenario)


def test_long_sentences_scroll_with_header_and_labels_kept(make_app, finished_run):
    async def scenario(pilot):
        screen, grid = await open_attention(pilot)
        src = [f"▁word{i}" for i in range(30)]
        tgt = [f"▁mot{i}" for i in range(40)]
        attention = [[1.0 if j == min(i, 29) else 0.0 for j in range(30)] for i in range(41)]
        grid.show(src, tgt, attention)
        await pilot.pause()
        for _ in range(29):
            await pilot.press("right")
        for _ in range(39):
            await pilot.press("down")
        await pilot.pause()
        assert grid.scroll_offset.x > 0 and grid.scroll_offset.y > 0
        header = "".join(seg.text for seg in grid.render_line(0))
        assert "word29" in header and "word0 " not in header
        last_row = "".join(seg.text for seg in grid.render_line(grid.scrollable_content_region.height - 1))
        assert last_row.split()[0] == "mot39"
        assert grid.border_subtitle == "mot39 ← word29  1.00"

    drive(make_app(run=finished_run, replay=True), scenario)


def test_without_colours_weights_are_drawn_as_shading(make_app, finished_run, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")

    async def scenario(pilot):
        screen, grid = await open_attention(pilot)
        row = "".join(seg.text for seg in grid.render_line(3))  # novembre: all on "November"
        assert "███" in row

    drive(make_app(run=finished_run, replay=True), scenario)


def test_with_true_colour_weights_are_cell_backgrounds(make_app, finished_run, monkeypatch):
    monkeypatch.setattr(textual.constants, "COLOR_SYSTEM", "truecolor")

    async def scenario(pilot):
        screen, grid = await open_attention(pilot)
        segments = [seg for seg in grid.render_line(3) if seg.style and seg.style.bgcolor]
        backgrounds = {seg.style.bgcolor.triplet for seg in segments}
        assert len(backgrounds) == 2  # zero weight and full weight
        assert "█" not in "".join(seg.text for seg in segments)

    drive(make_app(run=finished_run, replay=True), scenario)


def test_no_validation_yet_is_explained(make_app, runs_dir):
    path = write_run(runs_dir, name="young", steps=60, checkpoint=False)

    async def scenario(pilot):
        screen, grid = await open_attention(pilot)
        assert grid.src == [] and "no validation yet" in grid.empty_message

    drive(make_app(run=path), scenario)
