"""Starting a trainer or a sweep's queue runner as its own process, so that it outlives the terminal."""

from __future__ import annotations

import subprocess
import sys

from .run_folder import RunFolder
from .sweep_queue import SweepQueue


def start_training(
    run: RunFolder,
    device: str = "auto",
    max_steps: int | None = None,
    max_minutes: float | None = None,
    threads: int | None = None,
) -> subprocess.Popen:
    """Train `run` in a background process in a new session (closing the TUI or SSH does not stop it)."""
    command = [sys.executable, "-m", "workbench", "resume", str(run.path), "--headless", "--quiet"]
    command += ["--device", device]
    if max_steps is not None:
        command += ["--max-steps", str(max_steps)]
    if max_minutes is not None:
        command += ["--max-minutes", str(max_minutes)]
    if threads is not None:
        command += ["--threads", str(threads)]
    with open(run.path / "console.log", "ab") as console:
        return _detached(command, console)


def start_runner(queue: SweepQueue) -> subprocess.Popen:
    """Run a sweep's queue in a background process in a new session; it writes to the queue's runner.log."""
    command = [
        sys.executable,
        "-m",
        "workbench",
        "sweep-runner",
        queue.name,
        "--runs-dir",
        str(queue.runs_dir),
    ]
    with open(queue.log_path, "ab") as log:
        return _detached(command, log)


def _detached(command: list[str], output) -> subprocess.Popen:
    return subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
    )
