"""Runs: the built-in recipes and the runs in the runs folder, and what can be done with them."""

from __future__ import annotations

import shutil
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.widgets import DataTable, Footer, Input

from workbench.engine.run_folder import RunFolder, RunFolderError

from ..components.recipes_table import RecipesTable
from ..components.run_bar import RunBar
from ..components.runs_table import RunsTable
from ..keys import NAV_BINDINGS, RUNS_BINDINGS
from ..run_watcher import RunHistory
from ..runs_index import RunsIndex, RunSummary
from .base import RunScreen
from .compare import CompareScreen
from .confirm import ConfirmScreen
from .new_run import NewRunRequest, NewRunScreen

REFRESH_S = 1.5


class RunsScreen(RunScreen, inherit_bindings=False):
    SCREEN_TITLE = "Runs"
    AUTO_FOCUS = "#recipes"
    BINDINGS = RUNS_BINDINGS + NAV_BINDINGS  # here what can be done to runs comes first in the footer

    def __init__(self) -> None:
        super().__init__()
        self.summaries: list[RunSummary] = []
        self._index: RunsIndex | None = None

    def compose(self) -> ComposeResult:
        yield RunBar()
        yield Input(placeholder="/ filter recipes and runs", compact=True, id="filter")
        yield RecipesTable(id="recipes")
        yield RunsTable(id="runs")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._index = RunsIndex(self.bench.runs_dir)
        self.query_one(RecipesTable).show(self.bench.recipes, preferred=self.bench.default_recipe)
        self.query_one(RunsTable).border_subtitle = f"in {self.bench.runs_dir.name}/"
        self.refresh_runs()
        self.set_interval(REFRESH_S, self.refresh_runs)

    def draw(self, history: RunHistory | None) -> None:
        pass  # this screen lists every run; the bar above shows the open one

    # Reading the runs folder (off the event loop, one read in flight) ---------------------------
    def refresh_runs(self) -> None:
        if not self.is_current and self.summaries:
            return  # nobody is looking; the next visit refreshes
        if any(w.group == "runs-index" and w.is_running for w in self.app.workers):
            return
        self._read_runs()

    @work(thread=True, group="runs-index")
    def _read_runs(self) -> None:
        summaries = self._index.refresh() if self._index else []
        self.app.call_from_thread(self._show_runs, summaries)

    def _show_runs(self, summaries: list[RunSummary]) -> None:
        if not self.summaries and summaries and self.focused is self.query_one(RecipesTable):
            self.query_one(RunsTable).focus()  # runs to come back to: start there
        if summaries != self.summaries or not self.query_one(RunsTable).row_count:
            self.summaries = summaries  # rebuilt only when a run changed: not every refresh of idle runs
            self.query_one(RunsTable).show(summaries, self.query_one("#filter", Input).value)
        self.bench.runs_listed(summaries)

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.refresh_runs()

    @on(Input.Changed, "#filter")
    def _filter(self, event: Input.Changed) -> None:
        self.query_one(RunsTable).show(self.summaries, event.value)
        self.query_one(RecipesTable).show(self.bench.recipes, event.value)

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self.query_one(RunsTable).focus()

    @on(DataTable.RowSelected, "#runs")
    def _run_selected(self) -> None:
        self.action_open_run()

    @on(DataTable.RowSelected, "#recipes")
    def _recipe_selected(self) -> None:
        self.action_new_run()

    # Actions ------------------------------------------------------------------------------------
    def _highlighted(self) -> RunSummary | None:
        run = self.query_one(RunsTable).highlighted_run()
        if run is None:
            self.notify("No run highlighted: start one from a recipe (n).", severity="warning")
        return run

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_new_run(self) -> None:
        name = self.query_one(RecipesTable).highlighted_recipe() or self.bench.default_recipe

        def started(request: NewRunRequest | None) -> None:
            if request is not None:
                self.bench.start_run(request.recipe, request.device, request.nproc)

        self.app.push_screen(NewRunScreen(self.bench.recipes, name), started)

    def action_open_run(self) -> None:
        if (run := self._highlighted()) is not None:
            self.bench.open_run(run.path)

    def action_replay_run(self) -> None:
        if (run := self._highlighted()) is not None:
            self.bench.open_run(run.path, replay=True)

    def action_resume_run(self) -> None:
        run = self._highlighted()
        if run is None:
            return
        if run.live:
            self.notify(f"{run.name} is already {run.state}; opening it.")
            self.bench.open_run(run.path)
            return
        if run.state == "finished":
            self.notify(f"{run.name} has finished; replaying it instead.", severity="warning")
            self.bench.open_run(run.path, replay=True)
            return
        self.bench.resume_run(run.path)

    def action_mark_run(self) -> None:
        table = self.query_one(RunsTable)
        run = self._highlighted()
        if run is None:
            return
        table.marked = None if table.marked == run.path else run.path
        table.show(self.summaries, self.query_one("#filter", Input).value)
        if table.marked:
            self.notify(f"Marked {run.name}: highlight another run and press c to compare.")

    def action_compare_runs(self) -> None:
        table = self.query_one(RunsTable)
        run = self._highlighted()
        if run is None:
            return
        if table.marked is None or table.marked == run.path:
            self.notify("Mark one run (m), then highlight another and press c.", severity="warning")
            return
        try:
            first, second = RunFolder.open(table.marked), RunFolder.open(run.path)
        except RunFolderError as exc:
            self.notify(str(exc), severity="error")
            return
        self.app.push_screen(CompareScreen(first, second))

    def action_delete_run(self) -> None:
        run = self._highlighted()
        if run is None:
            return
        if run.live:
            self.notify(f"{run.name} is {run.state}: stop it first (open it, then s).", severity="error")
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._delete(run.path)

        self.app.push_screen(
            ConfirmScreen(f"Delete the run [b]{run.name}[/b] and all its files?", "Delete"), confirmed
        )

    @work(thread=True, group="delete")
    def _delete(self, path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)
        self.app.call_from_thread(self._deleted, path)

    def _deleted(self, path: Path) -> None:
        self.notify(f"Deleted {path.name}.")
        self.bench.run_deleted(path)
        self.refresh_runs()
