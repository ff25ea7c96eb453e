"""Attention: the alignment of the decode panel's translation, or of the validation sentences over time."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.timer import Timer
from textual.widgets import Footer, Static

from ..components.attention_grid import AttentionGrid
from ..components.run_bar import RunBar
from ..display_format import printable
from ..keys import ATTENTION_BINDINGS
from ..run_watcher import RunHistory
from .base import RunScreen

PLAY_INTERVAL_S = 0.6


class AttentionScreen(RunScreen):
    SCREEN_TITLE = "Attention"
    BINDINGS = ATTENTION_BINDINGS

    def __init__(self) -> None:
        super().__init__()
        self.source = "valid"  # decode | valid
        self.step_index: int | None = None  # None follows the latest validation
        self.sentence_index: int | None = None  # None: the first probe sentence
        self._player: Timer | None = None
        self._decoded_seen: object = None

    def compose(self) -> ComposeResult:
        yield RunBar()
        yield Static(id="attention-info")
        yield AttentionGrid(id="attention-grid")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(AttentionGrid).focus()

    def on_screen_resume(self) -> None:
        decoded = self.workbench.decoded
        if decoded is not None and decoded is not self._decoded_seen:
            self.source = "decode"  # just translated something: show it
        self._decoded_seen = decoded
        self.sync(force=True)

    def draw(self, history: RunHistory | None) -> None:
        if self.source == "decode":
            self._draw_decoded()
        else:
            self._draw_validation(history)

    @property
    def validations(self) -> list[dict[str, Any]]:
        history = self.workbench.history
        return history.validations if history else []

    def _draw_decoded(self) -> None:
        grid, info = self.query_one(AttentionGrid), self.query_one("#attention-info", Static)
        decoded = self.workbench.decoded
        if decoded is None or not decoded.translations:
            info.update(Text("decode panel", style="bold"))
            grid.clear(
                "nothing decoded yet: type a sentence on the decode screen (d), or press v for "
                "the validation sentences"
            )
            return
        chosen = decoded.translations[min(self.workbench.decoded_choice, len(decoded.translations) - 1)]
        step = f" (step {decoded.step})" if decoded.step is not None else ""
        info.update(
            Text.assemble(
                ("decode panel", "bold"),
                f" · {decoded.checkpoint} checkpoint{step}\n",
                (printable(decoded.text), ""),
                (" → ", "dim"),
                (printable(chosen.text), "bold"),
            )
        )
        grid.show(chosen.src_pieces, chosen.tgt_pieces, chosen.attention)

    def _draw_validation(self, history: RunHistory | None) -> None:
        grid, info = self.query_one(AttentionGrid), self.query_one("#attention-info", Static)
        validations = self.validations
        if not validations:
            info.update(Text("validation sentences", style="bold"))
            grid.clear("no validation yet: alignments appear after the first one")
            return
        index = (
            len(validations) - 1 if self.step_index is None else min(self.step_index, len(validations) - 1)
        )
        validation = validations[index]
        samples = validation.get("samples") or []
        if not samples:
            grid.clear("this validation has no samples")
            return
        sentence = self._sentence(samples)
        sample = samples[sentence]
        probe = sample.get("ref") is None
        correct = "" if probe else ("  ✓" if sample.get("hyp") == sample.get("ref") else "  ✗")
        info.update(
            Text.assemble(
                ("validation ", "bold"),
                (f"{index + 1}/{len(validations)}", "bold"),
                f" · step {validation.get('step', '?')} · sentence {sentence + 1}/{len(samples)}",
                (" (probe)" if probe else "", "dim"),
                ("  ▶ playing" if self._player else "", "italic"),
                "\n",
                (printable(sample.get("src", "")), ""),
                (" → ", "dim"),
                (printable(sample.get("hyp", "")), "bold"),
                correct,
            )
        )
        grid.show(sample.get("src_pieces", []), sample.get("hyp_pieces", []), sample.get("attention"))

    def _sentence(self, samples: list[dict[str, Any]]) -> int:
        if self.sentence_index is None:
            probes = [i for i, s in enumerate(samples) if s.get("ref") is None]
            return probes[0] if probes else 0
        return min(self.sentence_index, len(samples) - 1)

    # Actions ------------------------------------------------------------------------------------
    def action_step(self, delta: int) -> None:
        count = len(self.validations)
        if not count:
            return
        self.source = "valid"
        current = count - 1 if self.step_index is None else self.step_index
        target = min(max(current + delta, 0), count - 1)
        self.step_index = None if target == count - 1 and self._player is None else target
        self.sync(force=True)

    def action_sentence(self, delta: int) -> None:
        validations = self.validations
        if not validations:
            return
        self.source = "valid"
        samples = validations[-1].get("samples") or [{}]
        self.sentence_index = (self._sentence(samples) + delta) % len(samples)
        self.sync(force=True)

    def action_toggle_play(self) -> None:
        if self._player is not None:
            self._stop_playing()
            return
        if len(self.validations) < 2:
            return
        self.source = "valid"
        if self.step_index is None or self.step_index >= len(self.validations) - 1:
            self.step_index = 0
        self._player = self.set_interval(PLAY_INTERVAL_S, self._play_step)
        self.sync(force=True)

    def _play_step(self) -> None:
        if self.step_index is None or self.step_index >= len(self.validations) - 1:
            self.step_index = None  # at the latest: follow new validations again
            self._stop_playing()
            return
        self.step_index += 1
        self.sync(force=True)

    def _stop_playing(self) -> None:
        if self._player is not None:
            self._player.stop()
            self._player = None
        self.sync(force=True)

    def action_toggle_source(self) -> None:
        self.source = "valid" if self.source == "decode" else "decode"
        self.sync(force=True)

    def action_toggle_numbers(self) -> None:
        grid = self.query_one(AttentionGrid)
        grid.numbers = not grid.numbers
