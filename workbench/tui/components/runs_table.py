"""The runs under the runs folder: name, recipe, state, step, best score, start time; a sweep's runs
grouped under a header row that shows its progress."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.widgets import DataTable

from ..display_format import metric, metric_label, progress_badge, state_badge, timestamp
from ..run_watcher import HIGHER_IS_BETTER
from ..runs_index import RunSummary, SweepSummary


def best_text(runs: list[RunSummary]) -> str:
    scored = [s for s in runs if s.best is not None]
    if not scored or len({s.metric for s in scored}) > 1:
        return "—"
    name = scored[0].metric
    pick = max if name in HIGHER_IS_BETTER else min
    return f"{metric_label(name)} {metric(name, pick(s.best for s in scored))}"


class RunsTable(DataTable):
    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        self.add_columns("run", "recipe", "state", "on", "step", "best", "started")
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
        self.clear()
        for index, item in enumerate(self.items):
            if isinstance(item, SweepSummary):
                self._add_sweep(item, [by_name[n] for n in item.runs if n in by_name])
            else:
                after = self.items[index + 1] if index + 1 < len(self.items) else None
                last = not isinstance(after, RunSummary) or after.name not in grouped
                self._add_run(item, "" if item.name not in grouped else ("  └ " if last else "  ├ "))
        self.border_title = f"runs ({len(self.summaries) + folded_runs})"
        if current is not None:
            for row, item in enumerate(self.items):
                if _key(item) == _key(current):
                    self.move_cursor(row=row, animate=False)
                    break

    def toggle_fold(self, sweep: str) -> None:
        """Show a sweep as its header row alone, or with its runs again."""
        self.folded ^= {sweep}

    def _add_sweep(self, sweep: SweepSummary, runs: list[RunSummary]) -> None:
        self.add_row(
            Text.assemble(
                ("▸ " if sweep.name in self.folded else "▾ ", "dim"), ("sweep ", "dim"), (sweep.name, "bold")
            ),
            sweep.base,
            progress_badge(sweep.progress),
            "",
            f"{len(sweep.runs)} runs",
            best_text(runs),
            timestamp(sweep.created),
            key=_key(sweep),
        )

    def _add_run(self, s: RunSummary, branch: str) -> None:
        name = s.name.removeprefix(f"{s.sweep}-") if branch else s.name  # under its sweep's name
        mark = "▶ " if s.path in self.marked else ""
        best = f"{metric_label(s.metric)} {metric(s.metric, s.best)}" if s.best is not None else "—"
        self.add_row(
            Text.assemble((branch, "dim"), (mark + name, "bold" if s.live else "")),
            s.recipe,
            state_badge(s.state),
            self.busy.get(s.name, ""),
            s.preparing or f"{s.step:,}",
            best,
            timestamp(s.started),
            key=_key(s),
        )

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
