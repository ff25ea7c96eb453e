"""The whole machine, as nvitop shows it: each GPU and the host with their recent history, then every
process of every run training here (each rank of a distributed run, each run of a sweep)."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Footer, Static

from workbench.engine.system_monitor import GPU_COLUMNS, PROCESS_COLUMNS, gpu_rows, process_rows

from ..components.run_bar import RunBar
from ..run_watcher import RunHistory
from ..system_history import SystemHistory, sparkline
from .base import RunScreen

CHART_WIDTH = 16


class SystemScreen(RunScreen):
    SCREEN_TITLE = "System"

    def compose(self) -> ComposeResult:
        yield RunBar()
        yield Static("Reading the machine…", id="devices", classes="pane")
        yield Static(id="trainers", classes="pane")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#devices").border_title = "devices"
        self.query_one("#trainers").border_title = "trainers"

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.show_system(self.workbench.system)

    def draw(self, history: RunHistory | None) -> None:
        pass  # the machine, not the open run: drawn by show_system

    def show_system(self, system: SystemHistory) -> None:
        reading = system.latest
        if reading is None or not self.is_mounted:
            return
        devices = Table(box=None, padding=(0, 1), expand=True)
        for column in (*GPU_COLUMNS, "history"):
            devices.add_column(column, no_wrap=True, justify="right" if column == "busy" else "left")
        for row in gpu_rows(reading):
            series = system.cpu_series() if row[0] == "cpu" else system.gpu_series(int(row[0]))
            devices.add_row(*row, Text(sparkline(series, CHART_WIDTH, top=100), style="green"))
        note = Text(reading.no_gpu, style="dim") if reading.no_gpu else Text("")
        self.query_one("#devices", Static).update(Group(devices, note))
        rows = process_rows(reading, system.runs)
        if not rows:
            self.query_one("#trainers", Static).update(
                Text("No run is training on this machine.", style="dim")
            )
            return
        trainers = Table(box=None, padding=(0, 1), expand=True)
        for column in (*PROCESS_COLUMNS, "cpu history"):
            trainers.add_column(column, no_wrap=True, overflow="ellipsis")
        charts = {
            run.name: sparkline(system.run_series(run.name, "cpu_percent"), CHART_WIDTH)
            for run in system.runs
        }
        for row in rows:  # a run's first row carries its chart; its other ranks' rows follow it
            trainers.add_row(*row, Text(charts.get(row[0], ""), style="cyan"))
        self.query_one("#trainers", Static).update(trainers)
