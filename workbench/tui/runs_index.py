"""The runs and sweeps under a runs folder, summarised for the Runs screen and kept up to date."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from workbench.engine.errors import UserError
from workbench.engine.run_folder import LIVE_STATES, list_runs
from workbench.jobs.sweep_queue import SweepProgress, list_sweeps

from .run_watcher import RunHistory, RunWatcher


@dataclass(frozen=True)
class RunSummary:
    """One row of the Runs screen."""

    path: Path
    name: str
    recipe: str
    state: str
    reason: str
    step: int
    metric: str
    best: float | None
    started: float | None
    sweep: str | None = None  # the sweep the run belongs to
    preparing: str = ""  # while its corpus is prepared: the phase and how far ("encoding 45%")

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES


@dataclass(frozen=True)
class SweepSummary:
    """A sweep's header row on the Runs screen: its runs (in sweep order) and how far it got."""

    name: str
    base: str
    runs: tuple[str, ...]
    progress: SweepProgress
    created: float | None


class RunsIndex:
    """Summaries of every run in a folder; each refresh reads only what was appended since the last one."""

    def __init__(self, runs_dir: Path):
        self.runs_dir = Path(runs_dir)
        self._runs: dict[Path, tuple[RunWatcher, RunHistory]] = {}
        self._sweep_of: dict[Path, str | None] = {}  # a run's sweep.json never changes: read once

    def refresh(self) -> list[RunSummary]:
        """Blocking file reads: call it off the event loop. Newest run first."""
        found = {run.path: run for run in list_runs(self.runs_dir)}
        for path in list(self._runs):
            if path not in found:
                del self._runs[path]
        summaries = []
        for path, run in found.items():
            if path not in self._runs:
                self._runs[path] = (RunWatcher(run), RunHistory(run))
                self._sweep_of[path] = (run.sweep_info() or {}).get("sweep")
            watcher, history = self._runs[path]
            try:
                history.apply(watcher.poll())
            except OSError:
                continue  # deleted while we read it
            summaries.append(summarize(history, self._sweep_of[path]))
        return sorted(summaries, key=lambda s: (s.started or 0, s.name), reverse=True)

    def sweeps(self) -> list[SweepSummary]:
        """Blocking file reads: call it off the event loop. Newest sweep first."""
        found = []
        for queue in list_sweeps(self.runs_dir):
            try:
                queued = queue.read()
                progress = queue.progress()
                first = queue.runs()[0].sweep_info() if queued["runs"] else None
            except (UserError, OSError, KeyError, IndexError):
                continue  # being made or deleted while we read it
            base = str((first or {}).get("base", "?"))
            found.append(
                SweepSummary(queue.name, base, tuple(queued["runs"]), progress, queued.get("created"))
            )
        return sorted(found, key=lambda s: (s.created or 0, s.name), reverse=True)

    def history(self, path: Path) -> RunHistory | None:
        entry = self._runs.get(Path(path))
        return entry[1] if entry else None


def summarize(history: RunHistory, sweep: str | None = None) -> RunSummary:
    status = history.status
    best = history.best()
    step = status.get("step")
    if not isinstance(step, int):
        step = history.train[-1]["step"] if history.train else 0
    return RunSummary(
        path=history.run.path,
        name=history.run.name,
        recipe=history.recipe.name if history.recipe else "?",
        state=history.state,
        reason=str(status.get("reason") or ""),
        step=step,
        metric=history.metric,
        best=best[0] if best else None,
        started=status.get("started"),
        sweep=sweep,
        preparing=preparing_badge(status) if history.live else "",
    )


def preparing_badge(status: dict) -> str:
    """A live run's preparation in a few words, "encoding 45%"; "" once it trains."""
    preparing = status.get("preparing")
    if not isinstance(preparing, dict):
        return ""
    fraction = preparing.get("fraction")
    percent = f" {fraction:.0%}" if isinstance(fraction, (int, float)) else ""
    return f"{preparing.get('phase', 'preparing')}{percent}"
