"""Driving `s2s-bench` in a real terminal: a tmux server on its own socket, read back with capture-pane."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def s2s_bench_command() -> list[str]:
    """The installed console script beside this Python, else the module."""
    script = Path(sys.executable).with_name("s2s-bench")
    return [str(script)] if script.exists() else [sys.executable, "-m", "workbench"]


class TmuxSession:
    def __init__(self, socket: str, width: int = 100, height: int = 30):
        if shutil.which("tmux") is None:
            raise RuntimeError("tmux is not installed")
        self.socket, self.width, self.height = socket, width, height
        self.session = "s2s"

    def tmux(self, *args: str) -> str:
        out = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=20)
        return out.stdout

    def start(self, command: list[str], env: dict[str, str] | None = None) -> None:
        """Run `command` in a new window; the window stays after it exits so its last screen can be read."""
        environment = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
        # -u: a COLUMNS or LINES inherited from the test runner would override the pane size
        run = f"env -u COLUMNS -u LINES {environment} {shlex.join(command)}"
        line = f"cd {shlex.quote(str(REPO))} && {run}; echo EXITED $?; sleep 600"
        self.tmux(
            "new-session", "-d", "-s", self.session, "-x", str(self.width), "-y", str(self.height), line
        )

    def keys(self, *keys: str) -> None:
        """Press keys one at a time: an Escape followed at once by a letter would read as Alt+letter."""
        for key in keys:
            self.tmux("send-keys", "-t", self.session, key)
            time.sleep(0.3)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", self.session, "-l", text)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.session)

    def wait_for(self, predicate: Callable[[str], bool], timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if predicate(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout:.0f} s waiting for {what}; the screen:\n{screen}"
                )
            time.sleep(0.25)

    def kill(self) -> None:
        self.tmux("kill-server")


def terminal_env() -> dict[str, str]:
    env = {"TERM": "xterm-256color", "COLORTERM": "truecolor", "LANG": os.environ.get("LANG", "C.UTF-8")}
    return env
