"""Driving `s2s-bench serve` from a real browser: Debian's chromium under Playwright, no browser download.

xterm.js draws the terminal on a canvas, so its text is not in the page's DOM: the screen is read by
replaying the bytes the page's websocket received (what xterm.js drew) in a VT emulator (pyte).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pyte

CHROMIUM = "/usr/bin/chromium"
# This network refuses chromium's background connections (updates, sync, safe browsing...); without these
# flags it waits on them.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
URL = re.compile(r"http://\S+/\?token=\S+")


def chromium() -> str | None:
    """Debian's chromium, where it is installed (scripts/test installs it)."""
    return CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")


def start_server(runs_dir: Path, port: int, *extra: str) -> tuple[subprocess.Popen, str]:
    """`s2s-bench serve` in its own process; returns it and the URL it printed."""
    command = [sys.executable, "-m", "workbench", "serve", "--port", str(port), "--runs-dir", str(runs_dir)]
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}  # the apps inherit it: keep colour
    env["PYTHONUNBUFFERED"] = "1"
    server = subprocess.Popen([*command, *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 60
    assert server.stdout is not None
    while time.monotonic() < deadline:
        line = server.stdout.readline().decode()
        if not line:
            break
        found = URL.search(line)
        if found:
            return server, found.group(0)
    server.kill()
    raise AssertionError("s2s-bench serve printed no URL")


class TerminalReader:
    """The screen of the page's terminal, rebuilt from the bytes its websocket received."""

    def __init__(self, page) -> None:
        self.screen = pyte.Screen(80, 24)
        self.stream = pyte.ByteStream(self.screen)
        self.sockets = 0
        page.on("websocket", self._attach)

    def _attach(self, websocket) -> None:
        self.sockets += 1
        size = re.search(r"width=(\d+)&height=(\d+)", websocket.url)
        if size:
            self.screen.resize(int(size.group(2)), int(size.group(1)))
        websocket.on("framereceived", self._received)
        websocket.on("framesent", self._sent)

    def _received(self, payload) -> None:
        if isinstance(payload, bytes):
            self.stream.feed(payload)

    def _sent(self, payload) -> None:
        size = re.match(r'\["resize",\s*\{"width":\s*(\d+),\s*"height":\s*(\d+)', str(payload))
        if size:
            self.screen.resize(int(size.group(2)), int(size.group(1)))

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)


def wait_for(
    page, reader: TerminalReader, predicate: Callable[[str], bool], timeout: float, what: str
) -> str:
    """Wait (letting the page run) until the terminal's screen satisfies `predicate`."""
    deadline = time.monotonic() + timeout
    while True:
        screen = reader.text()
        if predicate(screen):
            return screen
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; the screen:\n{screen}")
        page.wait_for_timeout(250)
