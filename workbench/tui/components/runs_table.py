"""The runs under the runs folder: name, recipe, state, step, best score, start time; a sweep's runs
grouped under a header row that shows its progress. The columns are those that fit the panel's width."""

from __future__ import annotations

from pathlib import Path

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import DataTable

from ..display_format import metric, metric_label, progress_badge, state_badge, timestamp
from ..keys import TABLE_BINDINGS
from ..run_watcher import HIGHER_IS_BETTER
from ..runs_index import RunSummary, SweepSummary

COLUMNS = ("run", "recipe", "state", "on", "step", "best", "started")
# Who gets the room first when not every column fits: the run's name always, whole; an empty column last.
PRIORITY = ("run", "state", "step", "best", "on", "started", "recipe")
Cell = Text | str


def best_text(runs: list[RunSummary]) -> str:
    scored = [s for s in runs if s.best is not None]
    if not scored or len({s.metric for s in scored}) > 1:
        return "—"
    name = scored[0].metric
    pick = max if name in HIGHER_IS_BETTER else min
    return f"{metric_label(name)} {metric(name, pick(s.best for s in scored))}"


def fitting_columns(cells: list[tuple[Cell, ...]], room: int, padding: int = 1) -> list[str]:
    """The COLUMNS that fit in `room` cells of width, in table order, given every row's cells (in COLUMNS'
    order) and each cell's padding on either side: by PRIORITY, skipping a column that does not fit."""
    widths, empty = {}, set()
    for index, name in enumerate(COLUMNS):
        column = [cell_len(str(row[index])) for row in cells]
        widths[name] = max([cell_len(name), *column]) + 2 * padding
        if not any(column):
            empty.add(name)
    chosen, used = set(), 0
    for name in sorted(PRIORITY, key=lambda n: (n in empty and n != "run", PRIORITY.index(n))):
        if name == "run" or used + widths[name] <= room:
            chosen.add(name)
            used += widths[name]
    return [name for name in COLUMNS if name in chosen]


class RunsTable(DataTable):
    BINDINGS = TABLE_BINDINGS

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        self.shown: list[str] = []  # the columns shown, those of COLUMNS that fit
        self.rows_cells: list[tuple[tuple[Cell, ...], str]] = []  # every row's cells and key
        self.summaries: list[RunSummary] = []  # the runs shown
        self.items: list[RunSummary | SweepSummary] = []  # every row, sweep headers included
        self.marked: list[Path] = []  # in the order they were marked: the compared set's order
        self.folded: set[str] = set()  # sweeps shown as their header row alone
        self.busy: dict[str, str] = {}  # a live run's name -> the GPU it holds and how busy ("gpu0 87%")

    def show(self, summaries: list[RunSummary], sweeps: list[SweepSummary], filter_text: str = "") -> None:
        """Replace the rows, keeping the cursor on the same run or sweep."""
        current = self.highlighted()
        needle = filter_text.lower().strip()
        by_name = {s.name: s for s in summaries}
        grouped = {name for sweep in sweeps for name in sweep.runs}
        entries: list[tuple[float, RunSummary | SweepSummary]] = [(s.created or 0, s) for s in sweeps]
        entries += [(s.started or 0, s) for s in summaries if s.name not in grouped]
        self.items, self.summaries = [], []
        folded_runs = 0  # in folded sweeps: counted, not shown
        for _, entry in sorted(entries, key=lambda e: e[0], reverse=True):
            if isinstance(entry, RunSummary):
                if needle in f"{entry.name} {entry.recipe} {entry.state}".lower():
                    self.items.append(entry)
                    self.summaries.append(entry)
                continue
            runs = [by_name[name] for name in entry.runs if name in by_name]
            if needle not in entry.name.lower():
                runs = [s for s in runs if needle in f"{s.name} {s.recipe} {s.state}".lower()]
                if not runs:
                    continue
            if entry.name in self.folded and not needle:  # a filter shows what it finds
                folded_runs += len(runs)
                runs = []
            self.items += [entry, *runs]
            self.summaries += runs
        self.rows_cells = []
        for index, item in enumerate(self.items):
            if isinstance(item, SweepSummary):
                self.rows_cells.append(self._sweep_row(item, [by_name[n] for n in item.runs if n in by_name]))
            else:
                after = self.items[index + 1] if index + 1 < len(self.items) else None
                last = not isinstance(after, RunSummary) or after.name not in grouped
                self.rows_cells.append(
                    self._run_row(item, "" if item.name not in grouped else ("  └ " if last else "  ├ "))
                )
        self._fill()
        self.border_title = f"runs ({len(self.summaries) + folded_runs})"
        if current is not None:
            for row, item in enumerate(self.items):
                if _key(item) == _key(current):
                    self.move_cursor(row=row, animate=False)
                    break

    def _fill(self) -> None:
        """Put the rows in the table, in the columns that fit its width."""
        room = self.content_region.width
        if len(self.rows_cells) + 1 > self.content_region.height:  # a vertical scrollbar takes its share
            room -= self.styles.scrollbar_size_vertical
        cells = [row for row, _ in self.rows_cells]
        shown = fitting_columns(cells, room, self.cell_padding) if room > 0 else list(COLUMNS)
        cursor = self.cursor_row
        if shown != self.shown:
            self.clear(columns=True)
            self.add_columns(*shown)
            self.shown = shown
        else:
            self.clear()
        indexes = [COLUMNS.index(name) for name in shown]
        for row, key in self.rows_cells:
            self.add_row(*(row[i] for i in indexes), key=key)
        if 0 <= cursor < self.row_count:
            self.move_cursor(row=cursor, animate=False)

    def on_resize(self) -> None:
        if self.rows_cells:
            self._fill()

    def toggle_fold(self, sweep: str) -> None:
        """Show a sweep as its header row alone, or with its runs again."""
        self.folded ^= {sweep}

    def _sweep_row(self, sweep: SweepSummary, runs: list[RunSummary]) -> tuple[tuple[Cell, ...], str]:
        cells = (
            Text.assemble(
                ("▸ " if sweep.name in self.folded else "▾ ", "dim"), ("sweep ", "dim"), (sweep.name, "bold")
            ),
            sweep.base,
            progress_badge(sweep.progress),
            "",
            f"{len(sweep.runs)} runs",
            best_text(runs),
            timestamp(sweep.created),
        )
        return cells, _key(sweep)

    def _run_row(self, s: RunSummary, branch: str) -> tuple[tuple[Cell, ...], str]:
        name = s.name.removeprefix(f"{s.sweep}-") if branch else s.name  # under its sweep's name
        mark = "▶ " if s.path in self.marked else ""
        best = f"{metric_label(s.metric)} {metric(s.metric, s.best)}" if s.best is not None else "—"
        cells = (
            Text.assemble((branch, "dim"), (mark + name, "bold" if s.live else "")),
            s.recipe,
            state_badge(s.state),
            self.busy.get(s.name, ""),
            s.preparing or f"{s.step:,}",
            best,
            timestamp(s.started),
        )
        return cells, _key(s)

    def highlighted(self) -> RunSummary | SweepSummary | None:
        if not self.items or not (0 <= self.cursor_row < len(self.items)):
            return None
        return self.items[self.cursor_row]

    def highlighted_run(self) -> RunSummary | None:
        item = self.highlighted()
        return item if isinstance(item, RunSummary) else None

    def highlighted_sweep(self) -> str | None:
        """The sweep of the highlighted row: a sweep's header or one of its runs."""
        item = self.highlighted()
        if isinstance(item, SweepSummary):
            return item.name
        return item.sweep if item is not None else None


def _key(item: RunSummary | SweepSummary) -> str:
    return f"sweep:{item.name}" if isinstance(item, SweepSummary) else str(item.path)
