"""Starting a trainer as its own process, so that it outlives the terminal that started it."""

from __future__ import annotations

import subprocess
import sys

from .run_folder import RunFolder


def start_training(
    run: RunFolder, device: str = "auto", max_steps: int | None = None, max_minutes: float | None = None
) -> subprocess.Popen:
    """Train `run` in a background process in a new session (closing the TUI or SSH does not stop it)."""
    command = [sys.executable, "-m", "workbench", "resume", str(run.path), "--headless", "--quiet"]
    command += ["--device", device]
    if max_steps is not None:
        command += ["--max-steps", str(max_steps)]
    if max_minutes is not None:
        command += ["--max-minutes", str(max_minutes)]
    with open(run.path / "console.log", "ab") as console:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
