"""Decode as you type: the n best translations of the input line and the attention of the chosen one."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.timer import Timer
from textual.widgets import Footer, Input, OptionList, Static
from textual.worker import get_current_worker

from workbench.engine.errors import error_message

from ..components.attention_grid import AttentionGrid
from ..components.nbest_list import NBestList
from ..components.run_bar import RunBar
from ..components.source_input import SourceInput
from ..keys import DECODE_BINDINGS
from ..live_translator import Decoded
from ..run_watcher import RunHistory
from .base import RunScreen

BEAM_CHOICES = (1, 2, 4, 5, 8)
N_BEST_CHOICES = (1, 3, 5)
DEBOUNCE_S = 0.06  # typing faster than this decodes only the last keystroke (see _typed)


class DecodeScreen(RunScreen):
    SCREEN_TITLE = "Decode"
    BINDINGS = DECODE_BINDINGS

    def __init__(self) -> None:
        super().__init__()
        self.beam_size = 5
        self.n_best = 1
        self.checkpoint = "best"
        self.decoded: Decoded | None = None
        self.message = ""
        self._debounce: Timer | None = None
        self._request: tuple | None = None  # what the latest decode was asked for
        self._valid_seen = -1
        self._run_seen: object = None
        self._recipe_seen: object = None

    def compose(self) -> ComposeResult:
        yield RunBar()
        yield SourceInput(placeholder="Type a sentence to translate…", compact=True, id="source")
        yield Static(id="decode-options")
        yield NBestList(id="nbest")
        yield AttentionGrid(id="decode-grid")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(AttentionGrid).border_title = "attention"
        self.query_one(Input).focus()

    def draw(self, history: RunHistory | None) -> None:
        if history is not None and history.run is not self._run_seen:
            self._run_seen, self._recipe_seen = history.run, None
            self.decoded = None
            self._show_results()
            self.preload()
        if history is not None and history.recipe is not None and history.recipe is not self._recipe_seen:
            self._recipe_seen = history.recipe
            self.beam_size = history.recipe.decoding.beam_size  # the recipe's search, until the user picks
            self.n_best = min(self.n_best, self.beam_size)
        # A new validation means a new checkpoint: translate the input again with it.
        valid_count = len(history.valid) if history else 0
        if valid_count != self._valid_seen:
            self._valid_seen = valid_count
            self.schedule_decode(0.0)
        self._show_options()

    # Requests -----------------------------------------------------------------------------------
    @on(Input.Changed, "#source")
    def _typed(self) -> None:
        # The budget is 150 ms from the last keystroke to its translation (p95, default recipe, 2 cores,
        # while training): with a 100 ms debounce it measured 171 ms, with 60 ms it fits.
        self.schedule_decode(DEBOUNCE_S)

    def schedule_decode(self, delay: float) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        self._debounce = self.set_timer(delay, self.decode_now) if delay else None
        if not delay:
            self.call_later(self.decode_now)

    def decode_now(self) -> None:
        text = self.query_one(Input).value.strip()
        live = self.workbench.live_translator
        # The validation count stands for the checkpoint: a new one is worth decoding the same text again.
        request = (text, self.beam_size, self.n_best, self.checkpoint, id(live), self._valid_seen)
        if request == self._request and self.decoded is not None:
            return
        self._request = request
        if not text or live is None:
            self.decoded = self.workbench.decoded = None
            self.message = "" if live is not None else "open a run first (r: runs)"
            self._show_results()
            return
        self._decode(request)

    @work(exclusive=True, thread=True, group="decode")
    def _decode(self, request: tuple) -> None:
        text, beam, n_best, checkpoint, *_ = request
        live = self.workbench.live_translator
        if live is None:
            return
        try:
            decoded: Decoded | str = live.decode(text, beam, n_best, checkpoint)
        except Exception as exc:  # shown to the user: a missing checkpoint, a model that will not load
            decoded = error_message(exc)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._decoded, request, decoded)

    def _decoded(self, request: tuple, decoded: Decoded | str) -> None:
        if request != self._request:
            return  # the input or the options changed meanwhile: a newer decode is on its way
        if not self.is_attached or not self.query(NBestList):
            return  # the screen was closed (the app quit) while the decode ran
        if isinstance(decoded, str):
            self.decoded, self.message = None, decoded
        else:
            self.decoded, self.message = decoded, _cut_notice(decoded)
            self.workbench.decoded = decoded
        self._show_results()

    @work(thread=True, group="preload")
    def preload(self) -> None:
        """Load the model before the first keystroke (importing torch alone takes a second)."""
        live = self.workbench.live_translator
        if live is not None:
            try:
                live.translator(self.checkpoint)
            except Exception:
                pass  # reported when the user decodes

    # Showing results ----------------------------------------------------------------------------
    def _show_options(self) -> None:
        search = "greedy" if self.beam_size == 1 else f"beam {self.beam_size}"
        text = Text.assemble((search, "bold"), " · ", (f"{self.n_best}-best", "bold"), " · checkpoint ")
        if self.decoded is not None:
            step = f" (step {self.decoded.step})" if self.decoded.step is not None else ""
            text.append(f"{self.decoded.checkpoint}{step}", style="bold")
            text.append(f" · {1000 * self.decoded.seconds:.0f} ms", style="dim")
        else:
            text.append(self.checkpoint, style="bold")
        if self.message:
            text.append(f"  {self.message}", style="italic red")
        self.query_one("#decode-options", Static).update(text)

    def _show_results(self) -> None:
        translations = self.decoded.translations if self.decoded else []
        self.query_one(NBestList).show(translations)
        self._show_choice(0)
        self._show_options()

    def _show_choice(self, index: int) -> None:
        grid = self.query_one(AttentionGrid)
        translations = self.decoded.translations if self.decoded else []
        if not translations:  # an error has the grid's room to be read whole
            grid.clear(self.message or "type a sentence above to see its translation and attention")
            return
        index = min(index, len(translations) - 1)
        chosen = translations[index]
        self.workbench.decoded_choice = index
        grid.show(chosen.src_pieces, chosen.tgt_pieces, chosen.attention)

    @on(OptionList.OptionHighlighted, "#nbest")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._show_choice(event.option_index)

    # Actions ------------------------------------------------------------------------------------
    def action_leave_input(self) -> None:
        self.query_one(NBestList).focus()

    def action_focus_input(self) -> None:
        self.query_one(Input).focus()

    def action_cycle_beam(self) -> None:
        self.beam_size = BEAM_CHOICES[(_index(BEAM_CHOICES, self.beam_size) + 1) % len(BEAM_CHOICES)]
        self.n_best = min(self.n_best, self.beam_size)
        self._show_options()
        self.schedule_decode(0.0)

    def action_cycle_n_best(self) -> None:
        choices = [n for n in N_BEST_CHOICES if n <= self.beam_size] or [1]
        self.n_best = choices[(_index(choices, self.n_best) + 1) % len(choices)]
        self._show_options()
        self.schedule_decode(0.0)

    def action_toggle_checkpoint(self) -> None:
        self.checkpoint = "last" if self.checkpoint == "best" else "best"
        self._show_options()
        self.schedule_decode(0.0)


def _cut_notice(decoded: Decoded) -> str:
    """Says so when the input was longer than the recipe's decoding.max_input_pieces and was cut."""
    best = decoded.translations[0] if decoded.translations else None
    if best is None or not best.dropped_pieces:
        return ""
    kept = len(best.src_pieces)
    total = kept + best.dropped_pieces
    return f"input cut: translated the first {kept:,} of {total:,} pieces (decoding.max_input_pieces)"


def _index(choices, value) -> int:
    return list(choices).index(value) if value in choices else 0
