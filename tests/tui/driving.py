"""Driving the app in a headless terminal from tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from textual.pilot import Pilot

from workbench.tui.app import S2SBenchApp


def drive(app: S2SBenchApp, scenario: Callable[[Pilot], Awaitable[None]], size=(80, 24)) -> None:
    """Run `scenario` against the app in a headless terminal of `size`."""

    async def main():
        async with app.run_test(size=size) as pilot:
            await scenario(pilot)

    asyncio.run(main())


async def settle(pilot: Pilot, seconds: float = 0.0) -> None:
    """Let the app read the run folder, finish its workers and redraw."""
    app = pilot.app
    await app.sync_run()
    await app.workers.wait_for_complete()
    await pilot.pause(seconds)
    await app.workers.wait_for_complete()
    await pilot.pause()


async def wait_until(pilot: Pilot, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Pause until `predicate()` holds (the app polls on timers), failing after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {predicate}")
        await pilot.pause(0.05)


def screen_lines(app: S2SBenchApp) -> list[str]:
    """The terminal's text as the user sees it, one string per line (the screen on top)."""
    return [strip.text for strip in app.screen._compositor.render_strips()]
