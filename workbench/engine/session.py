"""The lifecycle of one training session of a run folder: its lock, the disk space held back to report a
full disk, the stop signals, and the report of whatever failure ends it (in train.log and status.json)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench.engine.distributed import (
    PeerError,
    Topology,
    follow_launcher,
    is_peer_failure,
    peer_error,
    record_failure,
)
from workbench.engine.errors import UserError, disk_error, error_message
from workbench.engine.run_folder import RunFolder

RESERVE, RESERVE_BYTES = ".reserve", 64 * 1024  # freed on a full disk, for the status and the log


class DivergedError(UserError):
    """Training produced a loss or gradient that is not finite: the weights would be lost to NaN."""


class TrainingSession:
    """Runs a training body inside the run's lock and stop signals; reports a failure in one line."""

    def __init__(self, run: RunFolder, topology: Topology, collective_timeout: float):
        self.run = run
        self.topology = topology
        self.collective_timeout = collective_timeout
        self.stop_requested = False  # set by SIGTERM, SIGHUP (and SIGINT with several processes)

    def run_training(
        self, train: Callable[[], str], interrupted: Callable[[], str], close: Callable[[], None]
    ) -> str:
        """`train()`'s end state; on Ctrl-C `interrupted()`'s. `close()` runs whatever ends the session."""
        # SIGTERM and SIGHUP (a closed SSH session) stop cleanly with a checkpoint; only the main thread
        # may install handlers, so a trainer run from another thread relies on the control channel.
        # Several processes stop together: Ctrl-C, too, only asks, and every process agrees on the step.
        main = self.topology.main
        in_main = threading.current_thread() is threading.main_thread()
        signals = (signal.SIGTERM, signal.SIGHUP) if in_main else ()
        if in_main and self.topology.distributed:
            signals += (signal.SIGINT,)
        lock = self._claim() if main else None  # one trainer per run; readers tell a live run by it
        previous: dict[int, Any] = {}
        # From here on every failure, a full disk at the first write included, is said in one line and
        # recorded in the run folder, which stays resumable.
        try:
            if main:
                reserve(self.run.path / RESERVE)
            previous = {signum: signal.signal(signum, self.request_stop) for signum in signals}
            if in_main and self.topology.launched:
                follow_launcher(lambda: self.request_stop(signal.SIGTERM, None))
            return train()
        except KeyboardInterrupt:
            return interrupted()
        except Exception as exc:
            peer = self.topology.distributed and is_peer_failure(exc)
            if peer and not isinstance(exc, PeerError):  # raised by torch's own collectives (DDP's)
                exc = peer_error(exc, self.collective_timeout)
            disk = disk_error(exc, self.run.path)
            message = error_message(disk or exc)
            if self.topology.distributed:
                message = f"rank {self.topology.rank}: {message}"
                record_failure(message, peer=peer)
            if disk is not None and main:
                (self.run.path / RESERVE).unlink(missing_ok=True)  # room to say why in the run folder
            self._record_failure(message)
            if peer or disk:
                raise (disk or exc) from None  # one line: not this process's bug, and no traceback
            raise
        finally:
            close()
            if lock is not None:
                lock.close()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

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
