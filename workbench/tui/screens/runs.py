"""Runs: the built-in recipes and sweeps, the runs in the runs folder (a sweep's grouped under it), and
what can be done with them."""

from __future__ import annotations

from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Footer, Input

from workbench.engine.errors import UserError
from workbench.engine.run_folder import RunFolder, RunFolderError
from workbench.engine.system_monitor import busy_text
from workbench.jobs.commands import TrainCommand
from workbench.jobs.sweep_queue import SweepQueue

from ..components.recipes_table import RecipesTable
from ..components.run_bar import RunBar
from ..components.runs_table import RunsTable
from ..display_format import folder_text
from ..keys import NAV_BINDINGS, RUNS_BINDINGS
from ..run_watcher import RunHistory
from ..runs_index import RunsIndex, RunSummary, SweepSummary
from ..system_history import SystemHistory
from .base import RunScreen
from .confirm import ConfirmScreen
from .new_run import NewRunScreen
from .new_sweep import NewSweepRequest, NewSweepScreen

REFRESH_S = 1.5
PANEL_CHROME = 3  # a table panel's lines besides its rows: the border's two and the header


def panel_heights(room: int, recipe_rows: int, run_rows: int) -> tuple[int, int]:
    """The heights of the recipes and the runs panels in `room` lines: the recipes get what they need when
    the runs leave it, and at least half the room when both need more; the runs get the rest."""
    need = recipe_rows + PANEL_CHROME, max(run_rows, 1) + PANEL_CHROME
    recipes = min(need[0], max(room // 2, room - need[1]))
    return recipes, room - recipes


class RunsScreen(RunScreen, inherit_bindings=False):
    SCREEN_TITLE = "Runs"
    AUTO_FOCUS = "#recipes"
    # here what can be done to runs comes first in the footer; l shows the highlighted run's log
    BINDINGS = RUNS_BINDINGS + [b for b in NAV_BINDINGS if b.id != "app.log"]

    def __init__(self) -> None:
        super().__init__()
        self.summaries: list[RunSummary] = []
        self.sweeps: list[SweepSummary] = []
        self._index: RunsIndex | None = None

    def compose(self) -> ComposeResult:
        yield RunBar()
        yield Input(placeholder="/ filter recipes and runs", compact=True, id="filter")
        with Vertical(id="panels"):
            yield RecipesTable(id="recipes")
            yield RunsTable(id="runs")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._index = RunsIndex(self.workbench.runs_dir)
        self.query_one(RecipesTable).show(
            self.workbench.recipes, preferred=self.workbench.default_recipe, sweeps=self.workbench.sweeps
        )
        self.query_one(RunsTable).border_subtitle = f"in {folder_text(self.workbench.runs_dir)}"
        self.refresh_runs()
        self.set_interval(REFRESH_S, self.refresh_runs)

    def on_resize(self) -> None:
        self.call_after_refresh(self._share_height)

    def _share_height(self) -> None:
        """Split the room between the recipes and the runs by what each has to show (panel_heights)."""
        recipes, runs = self.query_one(RecipesTable), self.query_one(RunsTable)
        room = self.query_one("#panels").size.height
        if room:
            recipes.styles.height, runs.styles.height = panel_heights(room, recipes.row_count, runs.row_count)

    def draw(self, history: RunHistory | None) -> None:
        pass  # this screen lists every run; the bar above shows the open one

    def show_system(self, system: SystemHistory) -> None:
        """The GPU each live run holds and how busy it is, in the runs table's `on` column."""
        table = self.query_one(RunsTable)
        busy = {s.name: busy_text(system.latest, system.live_run(s.name)) for s in self.summaries if s.live}
        if busy != table.busy:
            table.busy = busy
            self._show_table()

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
        sweeps = self._index.sweeps() if self._index else []
        self.app.call_from_thread(self._show_runs, summaries, sweeps)

    def _show_runs(self, summaries: list[RunSummary], sweeps: list[SweepSummary]) -> None:
        if not self.is_attached or not self.query(RunsTable):
            return  # the app quit while the runs were read
        if not self.summaries and summaries and self.focused is self.query_one(RecipesTable):
            self.query_one(RunsTable).focus()  # runs to come back to: start there
        changed = summaries != self.summaries or sweeps != self.sweeps
        if changed or not self.query_one(RunsTable).row_count:
            # rebuilt only when a run changed: not every refresh of idle runs
            self.summaries, self.sweeps = summaries, sweeps
            self._show_table()
        self.workbench.runs_listed(summaries)

    def _show_table(self) -> None:
        self.query_one(RunsTable).show(self.summaries, self.sweeps, self.query_one("#filter", Input).value)
        self._share_height()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.refresh_runs()

    @on(Input.Changed, "#filter")
    def _filter(self, event: Input.Changed) -> None:
        self.query_one(RecipesTable).show(self.workbench.recipes, event.value, sweeps=self.workbench.sweeps)
        self._show_table()

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self.query_one(RunsTable).focus()

    @on(DataTable.RowSelected, "#runs")
    def _run_selected(self) -> None:
        if isinstance(self.query_one(RunsTable).highlighted(), SweepSummary):
            self.action_compare_runs()
        else:
            self.action_open_run()

    @on(DataTable.RowSelected, "#recipes")
    def _recipe_selected(self) -> None:
        self.action_new_run()

    # Actions ------------------------------------------------------------------------------------
    def _highlighted(self) -> RunSummary | None:
        table = self.query_one(RunsTable)
        run = table.highlighted_run()
        if run is None and table.highlighted() is not None:
            self.notify("A sweep is highlighted: Enter (or c) opens its table.", severity="warning")
        elif run is None:
            self.notify("No run highlighted: start one from a recipe (n).", severity="warning")
        return run

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_new_run(self) -> None:
        recipes = self.query_one(RecipesTable)
        if (sweep := recipes.highlighted_sweep()) is not None:
            self._new_sweep(sweep)
            return
        name = recipes.highlighted_recipe() or self.workbench.default_recipe
        self._new_run(NewRunScreen(self.workbench.recipes, name, self.workbench.runs_dir))

    def action_clone_run(self) -> None:
        """The new-run form on the highlighted run's own recipe (its resolved recipe.toml), to change a few
        keys and start a run that differs from it in those only."""
        if (run := self._highlighted()) is not None:
            self._new_run(NewRunScreen(self.workbench.recipes, "", self.workbench.runs_dir, clone=run.path))

    def _new_run(self, form: NewRunScreen) -> None:
        def started(command: TrainCommand | None) -> None:
            if command is not None:
                self.workbench.start_run(command)

        self.app.push_screen(form, started)

    def _new_sweep(self, name: str) -> None:
        def started(request: NewSweepRequest | None) -> None:
            if request is not None:
                self.workbench.start_sweep(request.sweep, request.parallel)

        self.app.push_screen(NewSweepScreen(self.workbench.sweeps, name), started)

    def action_open_run(self) -> None:
        if (run := self._highlighted()) is not None:
            self.workbench.open_run(run.path)

    def action_replay_run(self) -> None:
        if (run := self._highlighted()) is not None:
            self.workbench.open_run(run.path, replay=True)

    def action_resume_run(self) -> None:
        run = self._highlighted()
        if run is None:
            return
        if run.live:
            self.notify(f"{run.name} is already {run.state}; opening it.")
            self.workbench.open_run(run.path)
            return
        if run.state == "finished":
            self.notify(f"{run.name} has finished; replaying it instead.", severity="warning")
            self.workbench.open_run(run.path, replay=True)
            return
        self.workbench.resume_run(run.path)

    def action_mark_run(self) -> None:
        table = self.query_one(RunsTable)
        run = self._highlighted()
        if run is None:
            return
        if run.path in table.marked:
            table.marked.remove(run.path)
        else:
            table.marked.append(run.path)
        self._show_table()
        if len(table.marked) == 1:
            self.notify(f"Marked {run.name}: mark more, or highlight another run, and press c to compare.")
        elif table.marked:
            self.notify(f"{len(table.marked)} runs marked: c compares them.")

    def action_compare_runs(self) -> None:
        """The marked runs (with the highlighted one while fewer than two are marked), else its sweep."""
        table = self.query_one(RunsTable)
        marked = [s.path for s in table.summaries if s.path in table.marked]
        marked.sort(key=table.marked.index)
        run = table.highlighted_run()
        if len(marked) < 2 and run is not None and run.path not in marked and (marked or run.sweep is None):
            marked.append(run.path)
        if len(marked) >= 2:
            try:
                runs = [RunFolder.open(path) for path in marked]
            except RunFolderError as exc:
                self.notify(str(exc), severity="error")
                return
            self.workbench.show_comparison(runs=runs)
            return
        sweep = table.highlighted_sweep()
        if sweep is None:
            self.notify("Mark runs to compare (m), or highlight a sweep, then press c.", severity="warning")
            return
        try:
            self.workbench.show_comparison(sweep=SweepQueue.open(self.workbench.runs_dir, sweep))
        except UserError as exc:
            self.notify(str(exc), severity="error")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel_run":  # shown only where it can act: on a sweep's queued run
            run = self.query_one(RunsTable).highlighted_run() if self.is_mounted else None
            return run is not None and run.sweep is not None and run.state == "queued"
        if action == "fold_sweep":
            return self.is_mounted and self.query_one(RunsTable).highlighted_sweep() is not None
        return True

    @on(DataTable.RowHighlighted, "#runs")
    def _run_highlighted(self) -> None:
        self.refresh_bindings()

    def action_show_log(self) -> None:
        """The logs of the highlighted run (opened), or of the highlighted sweep's runner."""
        table = self.query_one(RunsTable)
        sweep, run = table.highlighted_sweep(), table.highlighted_run()
        try:
            self.workbench.log_sweep = SweepQueue.open(self.workbench.runs_dir, sweep) if sweep else None
        except UserError:
            self.workbench.log_sweep = None
        if run is not None:
            self.workbench.open_run(run.path, mode="log")
        elif self.workbench.log_sweep is not None:
            self.workbench.log_first = self.workbench.log_sweep.log_path  # before the open run's own logs
            self.workbench.action_show("log")
        else:
            self.notify("No run or sweep highlighted: its log is what l shows.", severity="warning")

    def action_fold_sweep(self) -> None:
        table = self.query_one(RunsTable)
        sweep = table.highlighted_sweep()
        if sweep is None:
            return
        table.toggle_fold(sweep)
        self._show_table()
        for row, item in enumerate(table.items):  # the cursor on the sweep's header
            if isinstance(item, SweepSummary) and item.name == sweep:
                table.move_cursor(row=row, animate=False)
                break

    def action_cancel_run(self) -> None:
        run = self.query_one(RunsTable).highlighted_run()
        if run is not None and run.sweep is not None:
            self.workbench.cancel_queued(RunFolder(run.path), run.sweep)

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
        try:
            RunFolder(path).delete()
        except UserError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        self.app.call_from_thread(self._deleted, path)

    def _deleted(self, path: Path) -> None:
        self.notify(f"Deleted {path.name}.")
        self.workbench.run_deleted(path)
        self.refresh_runs()
