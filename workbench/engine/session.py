"""The lifecycle of one training session of a run folder: its lock, the disk space held back to report a
full disk, the stop signals, set-up (`setup.prepare_training`), the loop of the `Trainer` built from it,
and the report of whatever failure ends it (in train.log and status.json)."""

from __future__ import annotations

import signal
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from workbench.engine.distributed import (
    PeerError,
    follow_launcher,
    is_peer_failure,
    peer_error,
    record_failure,
    topology_from_environment,
)
from workbench.engine.errors import disk_error, error_message
from workbench.engine.run_folder import RunFolder
from workbench.engine.setup import TrainingSetup, prepare_training, training_device
from workbench.engine.training import Event, Trainer

RESERVE, RESERVE_BYTES = ".reserve", 64 * 1024  # freed on a full disk, for the status and the log


class TrainingSession:
    """Trains one run folder: `train()` holds the run's lock and stop signals, sets up, runs the loop of a
    `Trainer` built from the finished set-up, and reports a failure in one line.

    `device` is "auto", "cpu", "cuda" or "cuda:N"; `threads` a sweep's share of the cores (else the
    recipe's); `on_event(kind, record)` hears each metrics record and the end.
    """

    def __init__(
        self, run: RunFolder, device: str = "auto", on_event: Event | None = None, threads: int | None = None
    ):
        self.run = run
        self.recipe = run.recipe()
        self.threads = threads or self.recipe.training.threads
        self.topology = topology_from_environment()
        self.device = training_device(device, self.topology, self.threads)
        self.on_event = on_event or (lambda kind, record: None)
        self.stop_requested = False  # set by SIGTERM, SIGHUP (and SIGINT with several processes)

    def train(self, max_steps: int | None = None, max_minutes: float | None = None) -> str:
        """Train until a limit (the recipe's where None), early stopping or a stop message; the end state
        ("finished", "stopped"). The run folder records everything, a failure too."""
        with ExitStack() as held:  # the lock, the signal handlers and the set-up's team, released last
            if self.topology.main:  # one trainer per run; readers tell a live run by it
                held.callback(self._claim().close)
            # From here on every failure, a full disk at the first write included, is said in one line and
            # recorded in the run folder, which stays resumable.
            try:
                return self._prepare_and_train(held, max_steps, max_minutes)
            except Exception as exc:
                peer = self.topology.distributed and is_peer_failure(exc)
                if peer and not isinstance(exc, PeerError):  # raised by torch's own collectives (DDP's)
                    exc = peer_error(exc, self.recipe.training.collective_timeout)
                disk = disk_error(exc, self.run.path)
                message = error_message(disk or exc)
                if self.topology.distributed:
                    message = f"rank {self.topology.rank}: {message}"
                    record_failure(message, peer=peer)
                if disk is not None and self.topology.main:
                    (self.run.path / RESERVE).unlink(missing_ok=True)  # room to say why in the run folder
                self._record_failure(message)
                if peer or disk:
                    raise (disk or exc) from None  # one line: not this process's bug, and no traceback
                raise

    def prepare(self) -> TrainingSetup:
        """The run's set-up (`setup.prepare_training`). `train()` calls it inside the lifecycle; called
        alone (no lock, no signals, the team left open) it serves benchmarks and tests that build a
        `Trainer` and take its steps by hand."""
        return prepare_training(self.run, self.recipe, self.topology, self.device, self.threads)

    def _prepare_and_train(self, held: ExitStack, max_steps: int | None, max_minutes: float | None) -> str:
        """Set up, then train. Ctrl-C while setting up leaves nothing to keep; in the loop it saves `last`."""
        try:
            if self.topology.main:
                reserve(self.run.path / RESERVE)
            self._take_signals(held)
            if self.topology.main:
                self.run.write_status("running", device=str(self.device), torch_device=str(self.device),
                                      reason="preparing data and model")  # fmt: skip
            setup = self.prepare()
        except KeyboardInterrupt:  # before the first step: nothing to keep
            if self.topology.main:
                self.run.write_status("stopped", reason="interrupted while preparing")
            return "stopped"
        held.callback(setup.close)
        trainer = Trainer(setup, self.on_event, lambda: self.stop_requested)
        try:
            return trainer.train(max_steps, max_minutes)
        except KeyboardInterrupt:
            return trainer.stop("interrupted")

    def _take_signals(self, held: ExitStack) -> None:
        """Stop cleanly, with a checkpoint, on SIGTERM and SIGHUP (a closed SSH session); the handlers before
        go back when the session ends. Only the main thread may install handlers, so a trainer run from
        another thread relies on the control channel. Several processes stop together: Ctrl-C, too, only
        asks, and every process agrees on the step."""
        if threading.current_thread() is not threading.main_thread():
            return
        signals = [signal.SIGTERM, signal.SIGHUP] + ([signal.SIGINT] if self.topology.distributed else [])
        for signum in signals:
            held.callback(signal.signal, signum, signal.signal(signum, self.request_stop))
        if self.topology.launched:
            follow_launcher(lambda: self.request_stop(signal.SIGTERM, None))

    def request_stop(self, signum: int, frame: Any) -> None:
        self.stop_requested = True

    def _claim(self) -> Any:
        """The run's lock; a disk that refuses even its empty file (read-only, out of inodes) is one line."""
        try:
            return self.run.lock()
        except OSError as exc:
            disk = disk_error(exc, self.run.path)
            if disk is None:
                raise
            raise disk from None

    def _record_failure(self, message: str) -> None:
        """Write why the run failed into train.log and status.json. A write the disk refuses gives back the
        reserve and is tried once more: an error that hides a full disk (the corpus cache's) still leaves
        its reason. Where even that fails the message reaches the terminal all the same."""
        if not self.topology.main:
            return
        writes = (
            lambda: self.run.log(f"failed: {message}"),
            lambda: self.run.write_status("failed", reason=message),
        )
        for write in writes:
            try:
                write()
            except OSError:
                (self.run.path / RESERVE).unlink(missing_ok=True)
                try:
                    write()
                except OSError:
                    pass


def reserve(path: Path) -> None:
    """Hold a little disk space that a full disk gives back, so that the run can still say why it failed."""
    try:
        if not path.is_file():
            path.write_bytes(b"\0" * RESERVE_BYTES)
    except OSError:
        path.unlink(missing_ok=True)  # the disk is already full: the run will say so when it writes
