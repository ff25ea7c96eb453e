"""The decode and attention screens with a real trained model (the engine's Translator, not a fake)."""

import time

import pytest
from textual import events
from textual.widgets import Input

from workbench.engine.run_folder import RunFolder
from workbench.tui.app import S2SBenchApp
from workbench.tui.components.attention_grid import AttentionGrid
from workbench.tui.live_translator import engine_translator

from .driving import drive, settle, wait_until
from .fixture_runs import PROBE

pytestmark = pytest.mark.slow


def test_decoding_in_the_ui_matches_the_trainers_validation_decode(trained_run):
    """One decode path: greedy search on the last checkpoint gives what the last validation wrote."""
    run = RunFolder(trained_run)
    last_validation = run.read_samples()[0][-1]
    (probe,) = [s for s in last_validation["samples"] if s["src"] == PROBE]

    async def scenario(pilot):
        await settle(pilot)
        await pilot.press("d")
        screen = pilot.app.screen
        screen.beam_size, screen.checkpoint = 1, "last"
        screen.query_one(Input).value = PROBE
        await wait_until(pilot, lambda: screen.decoded is not None, timeout=60)
        best = screen.decoded.translations[0]
        assert best.text == probe["hyp"]
        assert best.tgt_pieces == probe["hyp_pieces"] and best.src_pieces == probe["src_pieces"]
        grid = screen.query_one(AttentionGrid)
        assert len(grid.tgt) == len(best.tgt_pieces) + 1 == len(best.attention)
        assert len(grid.src) == len(best.src_pieces)
        assert all(abs(sum(row) - 1) < 1e-3 for row in grid.weights)  # each row is a distribution
        await pilot.press("escape", "a")
        await pilot.pause()
        assert "decode panel" in str(pilot.app.screen.query_one("#attention-info").render())

    drive(S2SBenchApp(trained_run.parent, run=trained_run), scenario)


def test_beam_search_n_best_comes_sorted_by_score(trained_run):
    async def scenario(pilot):
        await settle(pilot)
        await pilot.press("d")
        screen = pilot.app.screen
        screen.beam_size, screen.n_best = 5, 3
        screen.query_one(Input).value = "Monday, February 29, 2044"
        await wait_until(pilot, lambda: screen.decoded is not None, timeout=60)
        scores = [t.score for t in screen.decoded.translations]
        assert len(scores) == 3 and scores == sorted(scores, reverse=True)

    drive(S2SBenchApp(trained_run.parent, run=trained_run), scenario)


def test_the_decode_panel_can_decode_in_int8(trained_run):
    # `s2s-bench replay RUN --precision int8` hands the app this factory.
    run = RunFolder(trained_run)
    fp32 = engine_translator(run, "best", "cpu")
    int8 = engine_translator(run, "best", "cpu", precision="int8")
    assert (fp32.decoding.precision, int8.decoding.precision) == ("fp32", "int8")
    dates = ["Saturday, November 21, 2026", "Jan 3, 1999"]
    assert [t[0].text for t in int8.translate(dates, 5)] == [t[0].text for t in fp32.translate(dates, 5)]


def test_a_100000_character_paste_is_cut_to_the_input_cap_and_says_so(trained_run):
    long_line = ("Saturday, November 21, 2026 " * 4000)[:100_000]

    async def scenario(pilot):
        await settle(pilot)
        await pilot.press("d")
        screen = pilot.app.screen
        await wait_until(pilot, lambda: pilot.app.live_translator.loaded, timeout=60)
        start = time.perf_counter()
        screen.query_one(Input).post_message(events.Paste(long_line))
        await wait_until(pilot, lambda: screen.decoded is not None, timeout=60)
        seconds = time.perf_counter() - start
        best = screen.decoded.translations[0]
        assert len(best.src_pieces) == 256 and best.dropped_pieces > 20_000
        assert len(screen.query_one(AttentionGrid).src) == 256
        options = str(screen.query_one("#decode-options").render())
        assert f"input cut: translated the first 256 of {256 + best.dropped_pieces:,} pieces" in options
        assert seconds < 20, f"{seconds:.1f} s"
        await pilot.press("left", "right")  # the app still answers keys
        assert screen.query_one(Input).value == long_line

    drive(S2SBenchApp(trained_run.parent, run=trained_run), scenario)
