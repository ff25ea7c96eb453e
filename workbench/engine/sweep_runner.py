"""The queue runner: starts a sweep's queued runs as slots free up and resumes the interrupted ones.

One runner per sweep (runner.lock). Each run trains in its own background trainer process
(launch.start_training), so a runner that dies leaves its trainers training; a new runner waits for
them. A run that a user stopped or cancelled is not started again, nor a run that failed with an error.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from .devices import usable_cpus
from .launch import start_training
from .run_folder import RunFolder
from .sweep_queue import SweepQueue, outcome

POLL_S = 0.5
MAX_STARTS = 3  # a run whose trainer keeps dying (killed for memory...) is given up after this many starts
START_TIMEOUT_S = 180  # from starting a trainer to its holding the run's lock (it imports torch first)


@dataclass(frozen=True)
class Slots:
    """Where runs train: `parallel` at a time over `devices`, CPU runs with `threads` threads each."""

    devices: list[str]
    parallel: int
    threads: int | None


def plan_slots(parallel: int | None, devices: list[str] | None) -> Slots:
    """One run per GPU by default (all, unless `devices` says), else `parallel` CPU runs sharing the cores."""
    if not devices:
        import torch

        devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())] or ["cpu"]
    parallel = parallel or (1 if devices == ["cpu"] else len(devices))
    threads = max(1, len(usable_cpus()) // parallel) if "cpu" in devices else None
    return Slots(list(devices), parallel, threads)


def run_queue(queue: SweepQueue, poll_s: float = POLL_S) -> None:
    """Run the sweep until no run is left to start or to wait for."""
    lock = queue.claim_runner()
    try:
        settings = queue.read()
        slots = plan_slots(settings.get("parallel"), settings.get("devices"))
        threads = f", {slots.threads} CPU thread(s) each" if slots.threads else ""
        queue.log(f"runner {os.getpid()}: {slots.parallel} at a time on {', '.join(slots.devices)}{threads}")
        children: dict[str, tuple[subprocess.Popen, str]] = {}
        starts: Counter[str] = Counter()
        while _step(queue, slots, children, starts):
            time.sleep(poll_s)
        p = queue.progress()
        queue.log(
            f"runner {os.getpid()}: nothing left to run: {p.done} finished, {p.failed} failed, "
            f"{p.stopped} stopped, {p.cancelled} cancelled"
        )
    finally:
        lock.close()


def _step(
    queue: SweepQueue, slots: Slots, children: dict[str, tuple[subprocess.Popen, str]], starts: Counter[str]
) -> bool:
    """Start what the free slots allow; False when nothing is left to start or to wait for."""
    for name, (process, _) in list(children.items()):
        if process.poll() is not None:
            del children[name]
            queue.log(
                f"{name}: trainer exited ({process.returncode}): {RunFolder(queue.runs_dir / name).status()}"
            )
    with queue.locked():  # a cancel waits until the runs started here hold their locks
        runs = queue.runs()
        kinds = {run.name: outcome(run.status()) for run in runs}
        busy = [run for run in runs if kinds[run.name] == "running" or run.name in children]
        todo = [
            run for run in runs if kinds[run.name] in ("queued", "interrupted") and run.name not in children
        ]
        if not busy and not todo:
            return False
        started = []
        for run in todo[: max(0, slots.parallel - len(busy))]:
            if starts[run.name] >= MAX_STARTS:
                reason = f"its trainer was started {MAX_STARTS} times by the sweep runner and never finished"
                run.write_status("failed", reason=reason)
                queue.log(f"{run.name}: given up: {reason}")
                continue
            device = _least_used(slots.devices, [d for _, d in children.values()])
            threads = slots.threads if device == "cpu" else None
            again = "resumed" if kinds[run.name] == "interrupted" else "started"
            children[run.name] = (start_training(run, device, threads=threads), device)
            starts[run.name] += 1
            queue.log(f"{run.name}: {again} on {device}" + (f" ({threads} threads)" if threads else ""))
            started.append(run)
        _wait_until_held(started, children)
    return True


def _least_used(devices: list[str], in_use: list[str]) -> str:
    use = Counter(in_use)
    return min(devices, key=lambda d: use[d])


def _wait_until_held(runs: list[RunFolder], children: dict[str, Any]) -> None:
    """Wait until each started trainer holds its run's lock (or has exited)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    for run in runs:
        process = children[run.name][0]
        while not run.trainer_alive() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
