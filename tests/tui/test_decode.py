"""Decode as you type: debounced, stale results dropped, beam / n-best / checkpoint keys, attention."""

import asyncio
import os
import time

from textual import events
from textual.geometry import Region
from textual.widgets import Input

from workbench.engine.run_folder import RunFolder
from workbench.tui.app import S2SBenchApp
from workbench.tui.components.attention_grid import AttentionGrid
from workbench.tui.components.nbest_list import NBestList
from workbench.tui.screens.decode import DecodeScreen

from .driving import drive, settle, wait_until
from .fake_translator import FakeTranslator
from .fixture_runs import write_run

DATE = "Saturday, November 21, 2026"


class RecordingFactory:
    def __init__(self, delay: float = 0.0):
        self.translators: list[FakeTranslator] = []
        self.delay = delay

    def __call__(self, run, checkpoint, device):
        translator = SlowTranslator(checkpoint, self.delay)
        self.translators.append(translator)
        return translator

    @property
    def calls(self):
        return [call for t in self.translators for call in t.calls]


class SlowTranslator(FakeTranslator):
    def __init__(self, checkpoint, delay):
        super().__init__(checkpoint)
        self.delay = delay

    def translate(self, sentences, beam_size=1, n_best=1, attention=False):
        time.sleep(self.delay)
        return super().translate(sentences, beam_size, n_best, attention)


async def open_decode(pilot):
    await settle(pilot)
    await pilot.press("d")
    await settle(pilot)
    assert isinstance(pilot.app.screen, DecodeScreen)
    return pilot.app.screen


def options_text(screen) -> str:
    return str(screen.query_one("#decode-options").render())


def test_typing_a_date_shows_its_translation_and_attention_grid(make_app, finished_run):
    async def scenario(pilot):
        screen = await open_decode(pilot)
        assert pilot.app.focused is screen.query_one(Input)
        await pilot.press(*DATE)
        await wait_until(pilot, lambda: screen.decoded is not None and screen.decoded.text == DATE)
        await pilot.pause()
        nbest = screen.query_one(NBestList)
        assert nbest.option_count == 1
        assert "samedi 21 novembre 2026" in str(nbest.get_option_at_index(0).prompt)
        grid = screen.query_one(AttentionGrid)
        assert grid.src == ["Saturday", "November", "21", "2026"]
        assert grid.tgt == ["samedi", "21", "novembre", "2026", "</s>"]
        assert "best (step 1000)" in options_text(screen) and "beam 5" in options_text(screen)

    drive(make_app(run=finished_run), scenario)


def test_fast_typing_is_debounced_and_only_the_final_text_is_shown(make_app, finished_run, monkeypatch):
    monkeypatch.setattr(
        "workbench.tui.screens.decode.DEBOUNCE_S", 0.5
    )  # wide, so a loaded machine cannot matter
    factory = RecordingFactory()

    async def scenario(pilot):
        screen = await open_decode(pilot)
        source = screen.query_one(Input)
        for char in DATE:  # keystrokes well inside the debounce interval
            source.insert_text_at_cursor(char)
            await asyncio.sleep(0.01)
        await wait_until(pilot, lambda: screen.decoded is not None)
        await settle(pilot, 0.2)
        assert [call[0] for call in factory.calls] == [DATE]  # one decode, of the final text
        assert screen.decoded.text == DATE

    drive(make_app(run=finished_run, translator_factory=factory), scenario)


def test_a_stale_result_is_dropped(make_app, finished_run):
    factory = RecordingFactory(delay=0.3)

    async def scenario(pilot):
        screen = await open_decode(pilot)
        source = screen.query_one(Input)
        source.value = "Monday, March 3, 2025"
        await pilot.pause(0.2)  # its decode is now running (slowly)
        source.value = DATE
        await wait_until(pilot, lambda: screen.decoded is not None, timeout=5)
        await settle(pilot, 0.1)
        assert screen.decoded.text == DATE
        assert "lundi" not in str(screen.query_one(NBestList).get_option_at_index(0).prompt)

    drive(make_app(run=finished_run, translator_factory=factory), scenario)


def test_beam_n_best_and_checkpoint_keys(make_app, finished_run):
    factory = RecordingFactory()

    async def scenario(pilot):
        screen = await open_decode(pilot)
        screen.query_one(Input).value = DATE
        await wait_until(pilot, lambda: screen.decoded is not None)
        await pilot.press("escape")  # keys work once the input line is left
        await pilot.press("b")
        assert screen.beam_size == 8
        await pilot.press("b")
        assert screen.beam_size == 1 and "greedy" in options_text(screen)
        await pilot.press("b", "b", "b")  # 2, 4, 5
        await pilot.press("n")
        await wait_until(pilot, lambda: len(screen.decoded.translations) == 3)
        assert factory.calls[-1] == (DATE, 5, 3)
        assert screen.query_one(NBestList).option_count == 3
        await pilot.press("k")
        await wait_until(pilot, lambda: screen.decoded.checkpoint == "last")
        assert [t.checkpoint for t in factory.translators] == ["best", "last"]
        await pilot.press("i")
        assert pilot.app.focused is screen.query_one(Input)

    drive(make_app(run=finished_run, translator_factory=factory), scenario)


def test_choosing_another_hypothesis_shows_its_attention(make_app, finished_run):
    async def scenario(pilot):
        screen = await open_decode(pilot)
        screen.n_best = 3
        screen.query_one(Input).value = DATE
        await wait_until(pilot, lambda: screen.decoded is not None)
        await pilot.pause()
        nbest = screen.query_one(NBestList)
        nbest.focus()
        await pilot.press("down")
        await pilot.pause()
        assert screen.query_one(AttentionGrid).tgt[-2:] == ["!", "</s>"]
        assert pilot.app.decoded_choice == 1

    drive(make_app(run=finished_run), scenario)


def test_a_run_without_checkpoint_says_so(make_app, runs_dir):
    path = write_run(runs_dir, name="young", checkpoint=False)

    async def scenario(pilot):
        screen = await open_decode(pilot)
        screen.query_one(Input).value = DATE
        await wait_until(pilot, lambda: "no checkpoint yet" in options_text(screen))
        assert screen.decoded is None

    drive(make_app(run=path), scenario)


def test_a_checkpoint_that_will_not_load_is_shown_whole_in_the_grid(make_app, finished_run):
    from workbench.engine.checkpoint import CheckpointError

    message = f"{finished_run}/checkpoints/best.safetensors: not a readable checkpoint file (cut short)"

    def broken(run, checkpoint, device):
        raise CheckpointError(message)

    async def scenario(pilot):
        screen = await open_decode(pilot)
        screen.query_one(Input).value = DATE
        await wait_until(pilot, lambda: screen.message == message)  # the message itself, no class name
        await pilot.pause()
        grid = screen.query_one(AttentionGrid)
        width = grid.scrollable_content_region.width
        shown = " ".join(grid.render_line(y).text.strip() for y in range(4))
        assert len(message) > width and "".join(message.split()) in "".join(shown.split())

    drive(make_app(run=finished_run, translator_factory=broken), scenario)


def test_a_new_validation_redecodes_with_the_new_checkpoint(make_app, live_run):
    factory = RecordingFactory()

    async def scenario(pilot):
        screen = await open_decode(pilot)
        screen.query_one(Input).value = DATE
        await wait_until(pilot, lambda: screen.decoded is not None)
        before = len(factory.calls)
        run = RunFolder(live_run)
        weights = run.checkpoints_dir / "best.safetensors"
        weights.write_bytes(b"newer")
        os.utime(weights, (time.time() + 5, time.time() + 5))
        run.append_metrics({"kind": "valid", "step": 500, "loss": 0.1, "exact": 0.6, "wall": 30})
        await wait_until(pilot, lambda: len(factory.calls) > before)
        assert len(factory.translators) == 2  # reloaded

    drive(make_app(run=live_run, translator_factory=factory, poll_interval=0.1), scenario)


def test_the_event_loop_stays_free_while_decoding(make_app, finished_run):
    """A decode that takes 0.5 s runs in a thread: meanwhile the event loop keeps turning."""
    factory = RecordingFactory(delay=0.5)

    async def scenario(pilot):
        screen = await open_decode(pilot)
        screen.query_one(Input).value = DATE
        gaps = []
        while screen.decoded is None:
            start = time.perf_counter()
            await asyncio.sleep(0.01)
            gaps.append(time.perf_counter() - start)
        assert len(gaps) > 10 and max(gaps) < 0.25  # a decode on the loop would stall it 0.5 s

    drive(make_app(run=finished_run, translator_factory=factory), scenario)


CONTROLS = "\x1b]0;retitled\x07 \x1b[2J \x9b31m \x08\x7f"


class ControlTranslator(FakeTranslator):
    """Answers every sentence with escape sequences and Rich markup, in its text and in its pieces."""

    def translate(self, sentences, beam_size=1, n_best=1, attention=False):
        results = super().translate(sentences, beam_size, n_best, attention)
        for nbest in results:
            for t in nbest:
                t.text = f"[bold red]x[/] {CONTROLS}"
                t.tgt_pieces = ["[red]", *CONTROLS.split()]
                t.src_pieces[0] = "\x1b[2J[/]"
                if t.attention is not None:
                    t.attention = [row for row in t.attention[:1] for _ in range(len(t.tgt_pieces) + 1)]
        return results


def drawn_controls(screen) -> list[tuple[str, str]]:
    """(widget, text) for every segment on screen that holds a control character."""
    found = []
    for widget in screen.query("*"):
        region = widget.region
        if not region.area:
            continue
        for strip in widget.render_lines(Region(0, 0, region.width, region.height)):
            for segment in strip:
                if any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in segment.text):
                    found.append((type(widget).__name__, segment.text))
    return found


def test_control_characters_and_markup_typed_or_decoded_never_reach_the_terminal(finished_run):
    app = S2SBenchApp(
        finished_run.parent, run=finished_run, translator_factory=lambda *a: ControlTranslator()
    )

    async def scenario(pilot):
        screen = await open_decode(pilot)
        source = screen.query_one(Input)
        source.post_message(events.Paste(f"Saturday {CONTROLS}\tNovember [b]21[/b]"))
        await wait_until(pilot, lambda: screen.decoded is not None)
        await pilot.pause()
        assert (
            source.value
            == "Saturday \ufffd]0;retitled\ufffd \ufffd[2J \ufffd31m \ufffd\ufffd November [b]21[/b]"
        )
        assert drawn_controls(screen) == []
        option = screen.query_one(NBestList).get_option_at_index(0).prompt
        assert "[bold red]x[/]" in option.plain  # markup is shown as the text it is, never applied
        grid = screen.query_one(AttentionGrid)
        assert grid.tgt[0] == "[red]" and grid.src[0] == "\ufffd[2J[/]"
        await pilot.press("escape", "a")
        await pilot.pause()
        assert drawn_controls(pilot.app.screen) == []

    drive(app, scenario, size=(100, 30))


def test_a_decode_that_ends_after_its_panel_was_taken_down_is_dropped(make_app, finished_run):
    async def scenario(pilot):
        screen = await open_decode(pilot)
        screen._request = request = ("late", 1, 1, "best", 0, 0)
        await screen.query_one(NBestList).remove()  # as the app takes the screen down when it quits
        screen._decoded(request, "a result that arrived too late")  # no error, nothing drawn
        assert screen.decoded is None

    drive(make_app(run=finished_run), scenario)
