"""The logs of the run or sweep in focus, followed as they grow: the run's train.log, its background
trainer's console output (console.log) and its sweep runner's runner.log, with a search that shows
only the lines holding a text."""

from __future__ import annotations

from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.widgets import Footer, Input, Log

from workbench.engine.run_folder import RunFolder
from workbench.jobs.sweep_queue import SWEEPS_FOLDER, SweepQueue

from ..components.run_bar import RunBar
from ..keys import LOG_BINDINGS, RUN_NAV_BINDINGS
from ..run_watcher import RunHistory
from .base import RunScreen

FOLLOW_S = 0.5
KEEP_LINES = 50_000  # a log longer than this shows its last lines


def log_sources(run: RunFolder | None, sweep: SweepQueue | None) -> list[tuple[str, Path]]:
    """(label, file) of every log there is to show: the sweep in focus first when no run is open."""
    sources = []
    if run is not None:
        sources += [("train.log", run.log_path), ("console", run.path / "console.log")]
        info = run.sweep_info()
        if info and isinstance(info.get("sweep"), str):
            queue = SweepQueue(run.path.parent / SWEEPS_FOLDER / info["sweep"])
            sources.append((f"sweep {queue.name}", queue.log_path))
    if sweep is not None and all(path != sweep.log_path for _, path in sources):
        sources.append((f"sweep {sweep.name}", sweep.log_path))
    return sources


def read_lines(path: Path, offset: int) -> tuple[list[str], int, bool]:
    """The whole lines appended to `path` from byte `offset`, the offset after them, and whether the file
    was read from its start again because it shrank (rewritten)."""
    restarted = False
    try:
        with open(path, "rb") as f:
            if f.seek(0, 2) < offset:
                offset, restarted = 0, True
            f.seek(offset)
            data = f.read()
    except OSError:
        return [], offset, False
    end = data.rfind(b"\n") + 1
    return data[:end].decode("utf-8", errors="replace").splitlines(), offset + end, restarted


class LogScreen(RunScreen, inherit_bindings=False):
    SCREEN_TITLE = "Log"
    BINDINGS = LOG_BINDINGS + RUN_NAV_BINDINGS

    def __init__(self) -> None:
        super().__init__()
        self.sources: list[tuple[str, Path]] = []
        self.source = 0
        self._focus: tuple[Path | None, Path | None] | None = None  # the run and sweep the sources are of
        self.lines: list[str] = []
        self._offset = 0

    def compose(self) -> ComposeResult:
        yield RunBar()
        yield Input(placeholder="/ search the log", compact=True, id="log-search")
        yield Log(id="log", classes="pane", max_lines=KEEP_LINES)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.set_interval(FOLLOW_S, self.follow)

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self._choose_sources()
        self.query_one(Log).focus()

    def draw(self, history: RunHistory | None) -> None:
        self._choose_sources()

    def _choose_sources(self) -> None:
        """The logs of the run and sweep in focus, read again only when the focus changed; the one the
        app asked for first (`log_first`) shown, else the first."""
        run, sweep, first = self.workbench.history, self.workbench.log_sweep, self.workbench.log_first
        focus = (run.run.path if run else None, sweep.path if sweep else None)
        if focus == self._focus and first is None:
            return
        self._focus, self.workbench.log_first = focus, None
        self.sources = log_sources(run.run if run else None, sweep)
        self._show_source(next((i for i, (_, path) in enumerate(self.sources) if path == first), 0))

    def _show_source(self, index: int) -> None:
        self.source = index
        self.lines, self._offset = [], 0
        self.query_one(Log).clear()
        self._title()
        self.follow()

    @property
    def path(self) -> Path | None:
        return self.sources[self.source][1] if self.sources else None

    # Following the file (off the event loop, one read in flight) ----------------------------------
    def follow(self) -> None:
        if self.path is None or not self.is_current:
            return
        if any(w.group == "log-follow" and w.is_running for w in self.workers):
            return
        self._read(self.path, self._offset)

    @work(thread=True, group="log-follow")
    def _read(self, path: Path, offset: int) -> None:
        lines, end, restarted = read_lines(path, offset)
        self.app.call_from_thread(self._append, path, offset, lines, end, restarted)

    def _append(self, path: Path, offset: int, lines: list[str], end: int, restarted: bool) -> None:
        if path != self.path or offset != self._offset:
            return  # another source was chosen while this one was read
        if restarted:
            self.lines = []
            self.query_one(Log).clear()
        self._offset = end
        if not lines:
            return
        self.lines = (self.lines + lines)[-KEEP_LINES:]
        needle = self.needle
        self.query_one(Log).write_lines([line for line in lines if needle in line.lower()])
        self._title()

    # Search ---------------------------------------------------------------------------------------
    @property
    def needle(self) -> str:
        return self.query_one("#log-search", Input).value.strip().lower()

    @on(Input.Changed, "#log-search")
    def _search(self) -> None:
        log, needle = self.query_one(Log), self.needle
        log.clear()
        log.write_lines([line for line in self.lines if needle in line.lower()])
        self._title()

    @on(Input.Submitted, "#log-search")
    def _searched(self) -> None:
        self.query_one(Log).focus()

    def _title(self) -> None:
        log = self.query_one(Log)
        if not self.sources:
            log.border_title = "no log: open a run (r), or highlight a sweep"
            log.border_subtitle = ""
            return
        label, path = self.sources[self.source]
        log.border_title = f"{label} ({self.source + 1}/{len(self.sources)}, v: next)"
        if self.needle:
            found = sum(1 for line in self.lines if self.needle in line.lower())
            log.border_subtitle = f"{found} of {len(self.lines)} lines hold {self.needle!r}"
        else:
            log.border_subtitle = str(path) if path.exists() else f"{path.name}: not written yet"

    # Keys -----------------------------------------------------------------------------------------
    def action_focus_search(self) -> None:
        self.query_one("#log-search", Input).focus()

    def action_clear_search(self) -> None:
        self.query_one("#log-search", Input).value = ""
        self.query_one(Log).focus()

    def action_next_source(self) -> None:
        if len(self.sources) > 1:
            self._show_source((self.source + 1) % len(self.sources))
