"""The s2s-bench Textual app: follows a run folder, sends it control messages, decodes with its checkpoints.

Screens are modes (t dashboard, d decode, a attention, r runs, l log, g system); the app owns the open
run. One poll of the run folder is in flight at a time, pulled on a timer, read in a thread and applied in
a batch update; the machine's readings (the system view) are taken the same way on a slower timer.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App, SystemCommand
from textual.screen import Screen

from workbench.engine.errors import UserError
from workbench.engine.recipe import DEFAULT_RECIPE, RecipeError, builtin_recipes, load_recipe
from workbench.engine.run_folder import RunFolder, RunFolderError
from workbench.engine.system_monitor import SystemMonitor, live_runs
from workbench.jobs.commands import TrainCommand, TrainerCommand
from workbench.jobs.sweep import Sweep, builtin_sweeps
from workbench.jobs.sweep_queue import SweepQueue, queue_sweep

from .keys import APP_BINDINGS
from .live_translator import Decoded, LiveTranslator, TranslatorFactory, engine_translator
from .run_watcher import RunHistory, RunWatcher
from .runs_index import RunSummary
from .screens.attention import AttentionScreen
from .screens.base import RunScreen
from .screens.compare import CompareScreen
from .screens.confirm import ConfirmScreen
from .screens.dashboard import DashboardScreen
from .screens.decode import DecodeScreen
from .screens.log import LogScreen
from .screens.runs import RunsScreen
from .screens.system import SystemScreen
from .system_history import SystemHistory

POLL_INTERVAL_S = 0.5
SYSTEM_INTERVAL_S = 2.0
STYLES = Path(__file__).parent / "styles"

# A trainer's command -> its process, and a sweep's queue -> its runner's process; tests pass fake ones so
# that nothing trains in-process.
Launcher = Callable[[TrainerCommand], Any]
SweepLauncher = Callable[[SweepQueue], Any]


def engine_launcher(command: TrainerCommand) -> subprocess.Popen:
    from workbench.jobs.launch import start_training

    c = command
    return start_training(c.run, c.device, c.max_steps, c.max_minutes, nproc=c.nproc, threads=c.threads)


def engine_sweep_launcher(queue: SweepQueue) -> subprocess.Popen:
    from workbench.jobs.launch import start_runner

    return start_runner(queue)


class S2SBenchApp(App):
    TITLE = "s2s-bench"
    CSS_PATH = [
        STYLES / name
        for name in (
            "app.tcss",
            "runs.tcss",
            "dashboard.tcss",
            "compare.tcss",
            "decode.tcss",
            "attention.tcss",
            "modals.tcss",
            "log.tcss",
            "system.tcss",
        )
    ]
    BINDINGS = APP_BINDINGS
    MODES = {
        "runs": RunsScreen,
        "dashboard": DashboardScreen,
        "decode": DecodeScreen,
        "attention": AttentionScreen,
        "log": LogScreen,
        "system": SystemScreen,
    }
    DEFAULT_MODE = "runs"

    def __init__(
        self,
        runs_dir: Path,
        recipe: str | None = None,
        run: Path | None = None,
        replay: bool = False,
        *,
        recipes: dict[str, Path] | None = None,
        sweeps: dict[str, Path] | None = None,
        translator_factory: TranslatorFactory | None = None,
        launcher: Launcher | None = None,
        sweep_launcher: SweepLauncher | None = None,
        poll_interval: float = POLL_INTERVAL_S,
        attach_live: bool = True,
        system_monitor: SystemMonitor | None = None,
        system_interval: float = SYSTEM_INTERVAL_S,
        mode: str | None = None,
    ) -> None:
        super().__init__()
        self.runs_dir = Path(runs_dir)
        self.default_recipe = recipe or DEFAULT_RECIPE
        if recipes is None:
            try:
                recipes = builtin_recipes()
            except RecipeError:
                recipes = {}
        self.recipes = recipes
        self.sweeps = builtin_sweeps() if sweeps is None else sweeps
        self.translator_factory = translator_factory
        self.launcher = launcher or engine_launcher
        self.sweep_launcher = sweep_launcher or engine_sweep_launcher
        self.poll_interval = poll_interval
        self.initial_run = Path(run) if run else None
        # open a live run found in the runs folder, unless a run or a screen was asked for
        self.attach_live = attach_live and run is None and mode is None
        self.replay = replay
        self.history: RunHistory | None = None
        self.watcher: RunWatcher | None = None
        self.live_translator: LiveTranslator | None = None
        self.decoded: Decoded | None = None  # the decode screen's latest result, for the attention screen
        self.decoded_choice = 0
        self._poll_lock = asyncio.Lock()
        self._children: list[Any] = []
        self.system_monitor = system_monitor or SystemMonitor()
        self.system_interval = system_interval
        self.system = SystemHistory()
        self.log_sweep: SweepQueue | None = None  # the sweep in focus: the log screen shows its runner.log
        self.log_first: Path | None = None  # the log the log screen shows first when it is next shown
        self.initial_mode = mode

    def on_mount(self) -> None:
        if self.initial_run is not None:
            self.open_run(self.initial_run, replay=self.replay)
        if self.initial_mode is not None:
            self.switch_mode(self.initial_mode)
        self.set_interval(self.poll_interval, self.poll_run)
        if self.system_interval > 0:  # 0: no readings of the machine (the UI benchmark's control)
            self.poll_system()
            self.set_interval(self.system_interval, self.poll_system)

    def on_unmount(self) -> None:
        self.system_monitor.close()

    # The open run -------------------------------------------------------------------------------
    def open_run(self, path: Path, replay: bool = False, mode: str = "dashboard") -> None:
        """Follow a run (or replay it) and show its dashboard."""
        try:
            run = RunFolder.open(path)
        except RunFolderError as exc:
            self.notify(str(exc), severity="error", timeout=8)
            return
        self.attach_live = False
        self.replay = replay
        self.watcher = RunWatcher(run)
        self.history = RunHistory(run)
        self.live_translator = LiveTranslator(run, self.translator_factory)
        self.decoded, self.decoded_choice = None, 0
        self.switch_mode(mode)
        self.refresh_bindings()
        self._sync_screen()
        self.poll_run()

    def close_run(self) -> None:
        self.watcher = self.history = self.live_translator = self.decoded = None
        self.refresh_bindings()
        self._sync_screen()

    def poll_run(self) -> None:
        """Timer callback: start a read of the open run unless one is already in flight."""
        if self.watcher is not None and not self._poll_lock.locked():
            self.run_worker(self.sync_run(), group="poll", exit_on_error=False)
        self._reap_children()

    async def sync_run(self) -> bool:
        """Read what the run folder gained and apply it; True when anything changed."""
        async with self._poll_lock:
            watcher, history = self.watcher, self.history
            if watcher is None or history is None:
                return False
            update = await asyncio.to_thread(watcher.poll)
            if watcher is not self.watcher or not history.apply(update):
                return False  # another run was opened meanwhile, or nothing happened
            with self.batch_update():
                self._sync_screen()
            return True

    def _sync_screen(self) -> None:
        if isinstance(self.screen, RunScreen):
            self.screen.sync()

    # The machine --------------------------------------------------------------------------------
    def poll_system(self) -> None:
        """Timer callback: take a reading of the machine unless one is already being taken."""
        if not any(w.group == "system" and w.is_running for w in self.workers):
            self._read_system()

    @work(thread=True, group="system", exit_on_error=False)
    def _read_system(self) -> None:
        runs = live_runs(self.runs_dir)
        open_run = self.history.run if self.history else None
        if open_run is not None and all(run.name != open_run.name for run in runs):
            runs += [run for run in live_runs(open_run.path.parent) if run.name == open_run.name]
        reading = self.system_monitor.read([pid for run in runs for pid in run.pids])
        self.call_from_thread(self._apply_system, reading, runs)

    def _apply_system(self, reading, runs) -> None:
        self.system.apply(reading, runs)
        if hasattr(self.screen, "show_system"):
            with self.batch_update():
                self.screen.show_system(self.system)

    # Starting, resuming and steering trainers ---------------------------------------------------
    def start_run(self, command: TrainCommand) -> None:
        """Do what `command` (an `s2s-bench train` line) says: make the run folder from the recipe and its
        overrides, launch its trainer(s) in the background and open its dashboard."""

        def trainer() -> TrainerCommand:
            recipe = load_recipe(command.recipe, command.overrides)
            return command.trainer(RunFolder.create(Path(command.runs_dir), recipe, command.name))

        self._launch(trainer, "Started")

    def resume_run(self, path: Path, device: str = "auto") -> None:
        """Resume a run on as many processes as it trained on (its data order depends on that)."""
        processes = RunFolder(Path(path)).read_status_file().get("processes", 1)
        nproc = processes if isinstance(processes, int) and processes > 1 else None
        self._launch(lambda: TrainerCommand(RunFolder.open(path), device, nproc=nproc), "Resumed")

    @work(thread=True, group="launch")
    def _launch(self, trainer: Callable[[], TrainerCommand], verb: str) -> None:
        try:
            command = trainer()
            process = self.launcher(command)
        except Exception as exc:  # shown to the user: a bad device, a folder we cannot write
            self.call_from_thread(
                self.notify, f"Could not start training: {exc}", severity="error", timeout=10
            )
            return
        self._children.append(process)
        run = command.run
        self.call_from_thread(self.notify, f"{verb} {run.name}: training runs in its own process.")
        self.call_from_thread(self.open_run, run.path)

    def send_control(self, command: str, run: RunFolder | None = None) -> None:
        """A control message to `run`'s trainer (default: the open run's)."""
        run = run or (self.history.run if self.history else None)
        if run is not None:
            self._send_control(run, command)

    def confirm_stop(self, run: RunFolder | None = None) -> None:
        """Ask, then send a stop to `run`'s trainer (default: the open run's), as delete asks first."""
        run = run or (self.history.run if self.history else None)
        if run is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.send_control("stop", run)

        question = f"Stop [b]{run.name}[/b]? It saves a checkpoint first; resume it later with u on the runs."
        self.push_screen(ConfirmScreen(question, "Stop"), answered)

    @work(thread=True, group="control")
    def _send_control(self, run: RunFolder, command: str) -> None:
        try:
            run.send_control(command)
        except OSError as exc:
            self.call_from_thread(self.notify, f"Could not send {command}: {exc}", severity="error")
            return
        self.call_from_thread(
            self.notify, f"Sent {command} to {run.name}: the trainer acts on it after its current step."
        )

    # Sweeps -------------------------------------------------------------------------------------
    @work(thread=True, group="launch")
    def start_sweep(self, sweep: Sweep, parallel: int | None = None) -> None:
        """Queue every run of a loaded sweep, start its queue runner and show its table."""
        try:
            queue = queue_sweep(self.runs_dir, sweep, parallel, None)
            process = self.sweep_launcher(queue)
        except (UserError, OSError) as exc:  # already queued, a folder we cannot write
            self.call_from_thread(
                self.notify, f"Could not start the sweep: {exc}", severity="error", timeout=10
            )
            return
        self._children.append(process)
        self.call_from_thread(
            self.notify, f"Queued {len(sweep.points())} runs of {queue.name}: its runner trains them in turn."
        )
        self.call_from_thread(self.show_comparison, sweep=queue)

    def show_comparison(self, runs: list[RunFolder] | None = None, sweep: SweepQueue | None = None) -> None:
        """The comparison table of a sweep or of some runs, over the runs screen."""
        if self.current_mode != "runs":
            self.switch_mode("runs")
        if isinstance(self.screen, CompareScreen):
            self.pop_screen()
        self.push_screen(CompareScreen(runs, sweep))

    @work(thread=True, group="control")
    def stop_sweep(self, queue: SweepQueue) -> None:
        """Stop a whole sweep: its running runs (each saves a checkpoint); its runner starts no more."""
        try:
            stopped = queue.stop()
        except (UserError, OSError) as exc:
            self.call_from_thread(self.notify, f"Could not stop the sweep: {exc}", severity="error")
            return
        self.call_from_thread(
            self.notify,
            f"Stopped sweep {queue.name}: {len(stopped)} running run(s) sent a stop; queued runs wait "
            "(U takes the sweep up again).",
        )

    @work(thread=True, group="launch")
    def resume_sweep(self, queue: SweepQueue) -> None:
        """Start a runner on a sweep again: what is left, the runs a stop interrupted included."""
        try:
            progress = queue.take_up()
            if progress.complete:
                self.call_from_thread(self.notify, f"Sweep {queue.name}: nothing left to run.")
                return
            self._children.append(self.sweep_launcher(queue))
        except (UserError, OSError) as exc:
            self.call_from_thread(self.notify, f"Could not resume the sweep: {exc}", severity="error")
            return
        self.call_from_thread(self.notify, f"Resumed sweep {queue.name}: its runner trains what is left.")

    @work(thread=True, group="control")
    def cancel_queued(self, run: RunFolder, sweep: str) -> None:
        """Take a queued run out of its sweep's queue."""
        try:
            SweepQueue.open(run.path.parent, sweep).cancel(run.name)
        except UserError as exc:
            self.call_from_thread(self.notify, str(exc), severity="error")
            return
        self.call_from_thread(self.notify, f"Cancelled {run.name}: the sweep's runner will not start it.")

    def _reap_children(self) -> None:
        """Collect trainers launched from here that have exited (they would linger as zombies)."""
        self._children = [p for p in self._children if not hasattr(p, "poll") or p.poll() is None]

    # Called by the runs screen ------------------------------------------------------------------
    def runs_listed(self, summaries: list[RunSummary]) -> None:
        """On the first listing, attach to a live run if there is one (the user reopened the app)."""
        if self.attach_live and self.history is None:
            self.attach_live = False
            live = [s for s in summaries if s.live]
            if live:
                self.notify(f"Attached to {live[0].name}, which is {live[0].state}.")
                self.open_run(live[0].path)

    def run_deleted(self, path: Path) -> None:
        if self.history is not None and self.history.run.path == Path(path):
            self.close_run()

    # Keys ---------------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "show" and parameters:
            if parameters[0] == self.current_mode:
                return False  # no key for the screen already shown
            if parameters[0] == "log":
                return self.history is not None or self.log_sweep is not None
            if parameters[0] not in ("runs", "system") and self.history is None:
                return False  # no run open: nothing to show there
        return True

    def action_show(self, mode: str) -> None:
        if self.current_mode != mode:
            self.switch_mode(mode)
            self.refresh_bindings()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The command palette offers every key binding of the screen it was opened from, and Textual's
        own commands but those a binding already offers (its Quit)."""
        offered, seen = [], set()
        for active in screen.active_bindings.values():
            binding = active.binding
            if not binding.description or not binding.id or binding.id in seen or not active.enabled:
                continue
            seen.add(binding.id)
            title = f"{binding.description} ({binding.key_display or binding.key.split(',')[0]})"
            offered.append(
                SystemCommand(
                    title,
                    binding.tooltip or binding.description,
                    partial(self.run_action, binding.action, active.node),
                )
            )
        descriptions = {active.binding.description for active in screen.active_bindings.values()}
        yield from (c for c in super().get_system_commands(screen) if c.title not in descriptions)
        yield from offered


def run_app(
    runs_dir: Path,
    recipe: str | None = None,
    run: Path | None = None,
    replay: bool = False,
    precision: str | None = None,
    mode: str | None = None,
) -> None:
    """The CLI's entry point: the Runs screen (attaching to a live run), or `run`'s dashboard or replay,
    or the screen `mode` names (`system`).

    precision (fp32 | bf16 | int8) overrides the runs' decoding.precision in the decode panel.
    """
    factory = None if precision is None else partial(engine_translator, precision=precision)
    app = S2SBenchApp(runs_dir, recipe=recipe, run=run, replay=replay, translator_factory=factory, mode=mode)
    app.run()
