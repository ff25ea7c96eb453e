"""End to end in a real browser: `s2s-bench serve`, Debian's chromium under Playwright. Open the printed
URL, start the default recipe, watch the loss on the dashboard, close the tab (the trainer goes on), open
another, type a date into the decode panel and read the French date back, see its attention grid.

Trains the default recipe for real (a few minutes on 2 CPU cores): marked slow.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
from pathlib import Path

import pytest

from workbench.engine.run_folder import RunFolder, list_runs

from .browser_session import CHROMIUM_ARGS, TerminalReader, chromium, start_server, wait_for
from .test_tmux import DATE, EXPECTED, grid_labels, probe_translated, wait

CAPTURES = os.environ.get("S2S_E2E_CAPTURES")  # a folder to keep each screen's text and screenshot in

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(chromium() is None, reason="chromium is not installed (scripts/test installs it)"),
]


def save(page, name: str, screen: str, screenshot: bool = False) -> None:
    if CAPTURES:
        Path(CAPTURES).mkdir(parents=True, exist_ok=True)
        (Path(CAPTURES) / f"browser-{name}.txt").write_text(screen)
        if screenshot:
            page.screenshot(path=str(Path(CAPTURES) / f"browser-{name}.png"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def open_tab(context, url: str):
    """A new tab on the workbench, its terminal focused so that keys reach the app."""
    page = context.new_page()
    reader = TerminalReader(page)
    page.goto(url)
    page.wait_for_selector(".xterm-helper-textarea", state="attached", timeout=30_000)
    page.focus(".xterm-helper-textarea")
    return page, reader


def press(page, *keys: str) -> None:
    for key in keys:
        page.keyboard.press(key)
        page.wait_for_timeout(300)


def test_the_workbench_in_a_browser_trains_decodes_and_outlives_its_tab(tmp_path):
    from playwright.sync_api import sync_playwright

    runs_dir = tmp_path / "runs"
    server, url = start_server(runs_dir, free_port())
    run: RunFolder | None = None
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"),  # a fresh user data dir
                executable_path=chromium(),
                args=CHROMIUM_ARGS,
                headless=True,
                viewport={"width": 1200, "height": 640},
            )
            page, reader = open_tab(context, url)
            screen = wait_for(
                page, reader, lambda s: "recipes" in s and "dates-en-fr" in s, 60, "the runs screen"
            )
            save(page, "runs-empty", screen)

            # Start the default recipe: n opens the form, Enter presses Start.
            press(page, "n")
            wait_for(page, reader, lambda s: "Start a run" in s, 10, "the new-run form")
            press(page, "Enter")
            wait_for(
                page, reader, lambda s: "Dashboard" in s and "running" in s, 60, "the new run's dashboard"
            )
            (run,) = [RunFolder(r.path) for r in list_runs(runs_dir)]
            screen = wait_for(
                page,
                reader,
                lambda s: re.search(r"loss\s+\d+\.\d{3}", s) is not None,
                120,
                "a loss value on the dashboard",
            )
            save(page, "dashboard", screen, screenshot=True)

            # Close the tab: its app quits, the trainer goes on in its own process.
            page.close()
            wait(lambda: not _session_apps(server.pid), 30, "the tab's app to quit")
            assert run.trainer_alive() and run.status()["state"] == "running", run.status()

            # Another tab attaches to the live run; decode once a validation translates the probe.
            page, reader = open_tab(context, url)
            wait_for(
                page, reader, lambda s: "Dashboard" in s and run.name in s, 60, "the live run's dashboard"
            )
            wait(
                lambda: probe_translated(run), 600, f"a validation that translates the probe to '{EXPECTED}'"
            )
            press(page, "d")
            wait_for(page, reader, lambda s: "Type a sentence" in s, 10, "the decode screen")
            page.keyboard.type(DATE, delay=20)
            screen = wait_for(
                page,
                reader,
                lambda s: re.search(rf"1\.\s+-?\d+\.\d+\s+{EXPECTED}", s) is not None,
                30,
                "the translation of the date",
            )
            page.wait_for_timeout(500)  # the canvas catches up with the last frame
            screen = reader.text()
            save(page, "decode", screen, screenshot=True)
            assert grid_labels(screen).replace("▁", "") == EXPECTED.replace(" ", "")

            press(page, "Escape", "a")
            screen = wait_for(
                page, reader, lambda s: "decode panel" in s and EXPECTED in s, 10, "the attention screen"
            )
            save(page, "attention", screen)
            press(page, "r")
            screen = wait_for(
                page, reader, lambda s: run.name in s and "runs (1)" in s, 10, "the runs screen"
            )
            save(page, "runs", screen)

            # Compare it with a copy of itself (a run folder is portable), then replay it.
            stop(run)
            shutil.copytree(run.path, runs_dir / "copy")
            wait_for(page, reader, lambda s: "runs (2)" in s and "copy" in s, 20, "the copy listed")
            press(page, "m", "ArrowDown", "c")
            screen = wait_for(
                page,
                reader,
                lambda s: "Compare │ 2 runs" in s and "the reference run" in s,
                20,
                "the compare screen",
            )
            save(page, "compare", screen)
            press(page, "Escape")
            wait_for(page, reader, lambda s: "runs (2)" in s, 10, "the runs screen")
            press(page, "R")
            screen = wait_for(page, reader, lambda s: "⏵ replay" in s, 20, "a replay's dashboard")
            save(page, "replay", screen)
            context.close()
    finally:
        if run is not None:
            stop(run)
        server.terminate()
        server.wait(timeout=30)


def stop(run: RunFolder) -> None:
    """Stop the run's trainer, if it is still going, and wait for it to exit."""
    if run.trainer_alive():
        run.send_control("stop")
    deadline = time.monotonic() + 60
    while run.trainer_alive() and time.monotonic() < deadline:
        time.sleep(0.5)


def _session_apps(server_pid: int) -> list:
    """The server's session apps: its children that run the workbench (trainers are not its children)."""
    import psutil

    return [p for p in psutil.Process(server_pid).children() if "--runs-dir" in p.cmdline()]
