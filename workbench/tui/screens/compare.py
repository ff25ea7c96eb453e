"""Comparing runs (a sweep, or any marked runs): their table, their curves overlaid, and the recipe of the
highlighted run against the sweep's base. Refreshed while they train: one read in flight, off the loop."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import DataTable, Footer, Input, Static

from workbench.engine.errors import UserError
from workbench.engine.recipe import Recipe
from workbench.engine.run_folder import LIVE_STATES, RunFolder
from workbench.jobs.comparison import Comparison, RunRow, compare_runs
from workbench.jobs.sweep_queue import SweepProgress, SweepQueue

from ..components.comparison_table import MAX_OVERLAID, ComparisonTable, value_text
from ..components.curve_legend import CurveLegend
from ..components.loss_chart import LossChart
from ..components.recipe_diff_line import RecipeDiffLine
from ..components.score_chart import ScoreChart
from ..display_format import progress_badge, run_color
from ..keys import COMPARE_BINDINGS, NAV_BINDINGS
from ..recipe_diff import recipe_differences
from ..run_watcher import RunHistory, RunUpdate, RunWatcher
from .chart_keys import ChartKeys

if TYPE_CHECKING:
    from ..app import S2SBenchApp

REFRESH_S = 1.5


def run_label(row: RunRow) -> str:
    """A run as the legend names it: the values it varies (its name when it varies none)."""
    return " · ".join(value_text(v) for v in row.values.values()) or row.name


class CompareScreen(ChartKeys):
    BINDINGS = COMPARE_BINDINGS + NAV_BINDINGS

    def __init__(self, runs: list[RunFolder] | None = None, sweep: SweepQueue | None = None) -> None:
        super().__init__()
        self.runs = list(runs or [])
        self.sweep = sweep
        self.comparison: Comparison | None = None
        self.progress: SweepProgress | None = None
        self.base: Recipe | None = None  # the sweep's base recipe
        self.histories: dict[Path, RunHistory] = {}
        self._watchers: dict[Path, RunWatcher] = {}  # used only by the one read in flight
        self._diff_drawn: object = None

    @property
    def workbench(self) -> S2SBenchApp:
        """The app, typed: the workbench this screen belongs to."""
        return cast("S2SBenchApp", self.app)

    def compose(self) -> ComposeResult:
        yield Static(id="compare-title", classes="run-bar")
        yield Input(placeholder="/ filter runs by name, value or state", compact=True, id="compare-filter")
        yield ComparisonTable(id="comparison")
        yield RecipeDiffLine(id="recipe-diff")
        with Horizontal(id="compare-charts"):
            yield LossChart(id="compare-loss")
            yield ScoreChart(id="compare-score")
        yield CurveLegend(id="curve-legend")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        if self.sweep is not None:
            self.workbench.log_sweep = self.sweep  # l shows its runner's log
        self.query_one(ComparisonTable).with_names = self.sweep is None
        self._draw_title()
        self.refresh_rows()
        self.set_interval(REFRESH_S, self.refresh_rows)
        self.query_one(ComparisonTable).focus()

    # Reading the runs (off the event loop, one read in flight) ----------------------------------
    def refresh_rows(self) -> None:
        if not self.is_current and self.comparison is not None:
            return  # nobody is looking
        if any(w.group == "compare-read" and w.is_running for w in self.workers):
            return
        self._read()

    @work(thread=True, group="compare-read")
    def _read(self) -> None:
        try:
            runs = self.sweep.runs() if self.sweep else self.runs
            comparison = compare_runs(runs, self.sweep.varied_keys() if self.sweep else None)
            progress = self.sweep.progress() if self.sweep else None
            # with absolute data paths, as its runs keep them (a relative data.dir is no difference)
            base = self.base or (self.sweep.base_recipe().with_absolute_paths() if self.sweep else None)
        except UserError as exc:  # the sweep's queue was deleted or damaged meanwhile
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        updates: dict[Path, RunUpdate] = {}
        for run in runs:
            watcher = self._watchers.setdefault(run.path, RunWatcher(run))
            try:
                updates[run.path] = watcher.poll()
            except OSError:
                continue  # deleted while we read it
        self.app.call_from_thread(self._show, comparison, progress, base, updates)

    def _show(
        self,
        comparison: Comparison,
        progress: SweepProgress | None,
        base: Recipe | None,
        updates: dict[Path, RunUpdate],
    ) -> None:
        if not self.is_attached or not self.query(ComparisonTable):
            return  # the screen was closed while the runs were read
        self.comparison, self.progress, self.base = comparison, progress, base
        for row in comparison.rows:
            if row.run.path in updates:
                history = self.histories.setdefault(row.run.path, RunHistory(row.run))
                history.apply(updates[row.run.path])
        with self.app.batch_update():
            self.query_one(ComparisonTable).show(comparison)
            self._draw_title()
            self._draw_curves()
            self._draw_diff()
            self.refresh_bindings()  # what the keys can do follows the highlighted run's state

    # Drawing ------------------------------------------------------------------------------------
    def _draw_title(self) -> None:
        text = Text.assemble(("s2s-bench", "bold"), " › ", ("Compare", "bold"), " │ ")
        if self.sweep is not None:
            text.append(f"sweep {self.sweep.name}", style="bold")
            if self.progress is not None:
                text.append(" ")
                text.append_text(progress_badge(self.progress))
        else:
            text.append(f"{len(self.runs)} runs", style="bold")
        self.query_one("#compare-title", Static).update(text)

    def _draw_curves(self) -> None:
        table = self.query_one(ComparisonTable)
        rows = [row for row in table.overlaid_rows() if row.run.path in self.histories]
        colors = [run_color(table.color_index[row.run.path]) for row in rows]
        histories = [self.histories[row.run.path] for row in rows]
        self.query_one(LossChart).show(*histories, colors=colors)
        self.query_one(ScoreChart).show(*histories, colors=colors)
        self.query_one(CurveLegend).show([(run_label(row), c) for row, c in zip(rows, colors)])

    def _draw_diff(self) -> None:
        """The highlighted run's recipe against the sweep's base (or against the first compared run, which
        is said to be the reference when it is highlighted)."""
        row = self.query_one(ComparisonTable).highlighted_row()
        if row is None or self.comparison is None:
            return
        history = self.histories.get(row.run.path)
        first = self.comparison.rows[0]
        base, against = self.base, "sweep base"
        if self.sweep is None:
            base = self.histories[first.run.path].recipe if first.run.path in self.histories else None
            against = run_label(first)
        recipe = history.recipe if history else None
        key = (row.run.path, id(base), id(recipe))
        if key == self._diff_drawn:
            return
        self._diff_drawn = key
        if self.sweep is None and row.run.path == first.run.path:
            self.query_one(RecipeDiffLine).show_reference(run_label(row))
            return
        differences = None
        if base is not None and recipe is not None:
            differences = [
                (name, value_text(value_base), value_text(value_run))
                for name, value_base, value_run in recipe_differences(base, recipe)
                if name not in ("name", "description")
            ]
        self.query_one(RecipeDiffLine).show(run_label(row), against, differences)

    @on(DataTable.RowHighlighted, "#comparison")
    def _highlighted(self) -> None:
        self._draw_diff()
        self.refresh_bindings()

    @on(DataTable.RowSelected, "#comparison")
    def _selected(self) -> None:
        row = self.query_one(ComparisonTable).highlighted_row()
        if row is not None:
            self.dismiss()
            self.workbench.open_run(row.run.path)

    @on(Input.Changed, "#compare-filter")
    def _filter(self, event: Input.Changed) -> None:
        self.query_one(ComparisonTable).set_filter(event.value)
        self._draw_diff()

    @on(Input.Submitted, "#compare-filter")
    def _filter_done(self) -> None:
        self.query_one(ComparisonTable).focus()

    # Keys ---------------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        row = self.query_one(ComparisonTable).highlighted_row() if self.is_mounted else None
        if action in ("toggle_pause", "stop"):
            return row is not None and row.state in LIVE_STATES
        if action == "cancel_run":
            return row is not None and row.state == "queued" and row.sweep is not None
        if action in ("stop_sweep", "resume_sweep"):
            return self.sweep is not None
        return True

    def action_close(self) -> None:
        if self.focused is self.query_one("#compare-filter"):
            self.query_one(ComparisonTable).focus()
            return
        self.dismiss()

    def action_focus_filter(self) -> None:
        self.query_one("#compare-filter", Input).focus()

    def action_toggle_overlay(self) -> None:
        table = self.query_one(ComparisonTable)
        row = table.highlighted_row()
        if row is None:
            return
        if not table.toggle_overlay(row):
            self.notify(f"At most {MAX_OVERLAID} runs' curves at once: take one off first (space).")
        self._draw_curves()

    def action_next_sort(self) -> None:
        self.query_one(ComparisonTable).next_sort()

    def action_reverse_sort(self) -> None:
        table = self.query_one(ComparisonTable)
        if table.sort_key is not None:
            table.sort_by(table.sort_key)

    def action_toggle_pause(self) -> None:
        row = self.query_one(ComparisonTable).highlighted_row()
        if row is not None:
            self.workbench.send_control("resume" if row.state == "paused" else "pause", row.run)

    def action_stop(self) -> None:
        row = self.query_one(ComparisonTable).highlighted_row()
        if row is not None:
            self.workbench.confirm_stop(row.run)

    def action_stop_sweep(self) -> None:
        if self.sweep is not None:
            self.workbench.stop_sweep(self.sweep)

    def action_resume_sweep(self) -> None:
        if self.sweep is not None:
            self.workbench.resume_sweep(self.sweep)

    def action_cancel_run(self) -> None:
        row = self.query_one(ComparisonTable).highlighted_row()
        if row is not None and row.sweep is not None:
            self.workbench.cancel_queued(row.run, row.sweep)
