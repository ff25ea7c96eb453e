"""Two runs side by side: their curves overlaid and the recipe keys where they differ."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from workbench.engine.run_folder import RunFolder

from ..components.loss_chart import LossChart
from ..components.score_chart import ScoreChart
from ..display_format import metric, metric_label
from ..keys import COMPARE_BINDINGS
from ..recipe_diff import recipe_differences
from ..run_watcher import RunHistory, RunWatcher


class CompareScreen(Screen):
    BINDINGS = COMPARE_BINDINGS

    def __init__(self, run_a: RunFolder, run_b: RunFolder) -> None:
        super().__init__()
        self.runs = (run_a, run_b)

    def compose(self) -> ComposeResult:
        yield Static(id="compare-title", classes="run-bar")
        with Horizontal(id="compare-charts"):
            yield LossChart(id="compare-loss")
            yield ScoreChart(id="compare-score")
        yield DataTable(id="recipe-diff", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        a, b = self.runs
        self.query_one("#compare-title", Static).update(
            f"[b]s2s-bench › Compare[/b]  │  [cyan]1: {a.name}[/cyan]  vs  [magenta]2: {b.name}[/magenta]"
        )
        table = self.query_one(DataTable)
        table.add_columns("recipe key", f"1: {a.name}", f"2: {b.name}")
        table.border_title = "recipe differences"
        self.load()

    @work(thread=True, exclusive=True)
    def load(self) -> None:
        histories = []
        for run in self.runs:
            history = RunHistory(run)
            history.apply(RunWatcher(run).poll())
            histories.append(history)
        self.app.call_from_thread(self.show, *histories)

    def show(self, a: RunHistory, b: RunHistory) -> None:
        self.histories = (a, b)
        self.query_one(LossChart).show(a, b)
        self.query_one(ScoreChart).show(a, b)
        table = self.query_one(DataTable)
        table.clear()
        best_a, best_b = a.best(), b.best()
        table.add_row(
            f"best {metric_label(a.metric)}",
            metric(a.metric, best_a[0] if best_a else None),
            metric(b.metric, best_b[0] if best_b else None),
        )
        if a.recipe is None or b.recipe is None:
            table.add_row(
                "recipe", "unreadable" if a.recipe is None else "", "unreadable" if b.recipe is None else ""
            )
            return
        differences = recipe_differences(a.recipe, b.recipe)
        for key, value_a, value_b in differences:
            table.add_row(key, repr(value_a), repr(value_b))
        if not differences:
            table.add_row("(none)", "the recipes are identical", "")

    def action_close(self) -> None:
        self.dismiss()

    def action_toggle_log(self) -> None:
        chart = self.query_one(LossChart)
        chart.set_options(log_scale=not chart.log_scale)
