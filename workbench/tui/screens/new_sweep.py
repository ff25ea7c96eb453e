"""The short form for starting a sweep: which one, how many runs at a time, keys set in every run."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical
from textual.widgets import Button, Input, Label, Select, Static

from workbench.engine.errors import UserError
from workbench.jobs.sweep import Sweep, load_sweep

from .form import FormScreen


@dataclass
class NewSweepRequest:
    sweep: Sweep  # loaded, every point validated
    parallel: int | None  # None: the runner's default (one per GPU, else one)


class NewSweepScreen(FormScreen[NewSweepRequest]):
    """Pick a sweep, say how many runs train at once and what to `--set` in each; returns it loaded."""

    def __init__(self, sweeps: dict[str, Path], sweep_name: str) -> None:
        super().__init__()
        self.sweeps = sweeps
        self.sweep_name = sweep_name if sweep_name in sweeps else next(iter(sweeps), "")

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="new-sweep"):
            yield Static("[b]Start a sweep[/b]", classes="title")
            with Grid(classes="form"):
                yield Label("sweep")
                yield Select(
                    [(n, n) for n in self.sweeps],
                    value=self.sweep_name or Select.BLANK,
                    allow_blank=False,
                    compact=True,
                    id="sweep",
                )
                yield Label("runs at a time")
                yield Input(compact=True, type="integer", placeholder="one per GPU, else 1", id="parallel")
                yield Label("set in every run")
                yield Input(compact=True, placeholder="training.max_steps=300 ...", id="overrides")
            yield Static("", id="sweep-summary")
            yield Static("", id="form-error")
            with Horizontal(classes="buttons"):
                yield Button("Start", variant="primary", compact=True, id="start")
                yield Button("Cancel", compact=True, id="cancel")

    def on_mount(self) -> None:
        self._describe()

    @on(Select.Changed, "#sweep")
    def _sweep_changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self.sweep_name = event.value
            self._describe()

    def _describe(self) -> None:
        summary = self.query_one("#sweep-summary", Static)
        try:
            sweep = load_sweep(self.sweeps[self.sweep_name])
        except (UserError, KeyError) as exc:
            summary.update(Text(str(exc), style="red"))
            return
        if sweep.rungs:
            rungs = " > ".join(rung["name"] for rung in sweep.rungs)
            summary.update(f"a ladder of {len(sweep.points())} runs from {sweep.base}: {rungs}")
            return
        axes = ", ".join(f"{k} ({len(v) if isinstance(v, list) else 'drawn'})" for k, v in sweep.axes.items())
        summary.update(f"{len(sweep.points())} runs of {sweep.base} over {axes}")

    def request(self) -> NewSweepRequest:
        """The form as a loaded sweep; a UserError naming what is wrong."""
        text = self.query_one("#parallel", Input).value.strip()
        parallel = int(text) if text else None
        if parallel is not None and parallel < 1:
            raise UserError(f"runs at a time: at least 1, not {parallel}")
        try:
            overrides = shlex.split(self.query_one("#overrides", Input).value)
        except ValueError as exc:
            raise UserError(f"set in every run: {exc}") from None
        return NewSweepRequest(load_sweep(self.sweeps[self.sweep_name], overrides), parallel)

    def submit(self) -> None:
        try:
            request = self.request()
        except (UserError, ValueError, KeyError) as exc:
            self.query_one("#form-error", Static).update(Text(str(exc), style="red"))
            return
        self.dismiss(request)
