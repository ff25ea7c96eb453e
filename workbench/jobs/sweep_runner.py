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
from pathlib import Path
from typing import Any

from workbench.engine.devices import usable_cpus
from workbench.engine.errors import UserError
from workbench.engine.run_folder import RunFolder, list_runs
from workbench.jobs.launch import start_training
from workbench.jobs.sweep_queue import SweepQueue

POLL_S = 0.5
MAX_STARTS = 3  # a run whose trainer keeps dying (killed for memory...) is given up after this many starts
START_TIMEOUT_S = 180  # from starting a trainer to its holding the run's lock (it imports torch first)


@dataclass(frozen=True)
class Slots:
    """Where runs train: `parallel` at a time over `devices`, each trainer with `threads` CPU threads."""

    devices: list[str]
    parallel: int
    threads: int | None


def plan_slots(parallel: int | None, devices: list[str] | None) -> Slots:
    """One run per GPU by default (all, unless `devices` says), else `parallel` CPU runs; either way the
    trainers share the cores (a GPU trainer's CPU threads build its batches, and each would otherwise
    start one per core)."""
    if not devices:
        import torch

        devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())] or ["cpu"]
    parallel = parallel or (1 if devices == ["cpu"] else len(devices))
    return Slots(list(devices), parallel, max(1, len(usable_cpus()) // parallel))


def run_queue(queue: SweepQueue, poll_s: float = POLL_S) -> None:
    """Run the sweep until no run is left to start or to wait for."""
    lock = queue.claim_runner()
    try:
        settings = queue.read()
        runner = QueueRunner(queue, plan_slots(settings.get("parallel"), settings.get("devices")))
        slots = runner.slots
        threads = f", {slots.threads} CPU thread(s) each" if slots.threads else ""
        queue.log(f"runner {os.getpid()}: {slots.parallel} at a time on {', '.join(slots.devices)}{threads}")
        while runner.step():
            time.sleep(poll_s)
        p = queue.progress()
        what = "the sweep is stopped" if queue.held else "nothing left to run"
        queue.log(
            f"runner {os.getpid()}: {what}: {p.done} finished, {p.failed} failed, {p.stopped} stopped, "
            f"{p.cancelled} cancelled, {p.queued + p.interrupted} to run"
        )
    finally:
        lock.close()


class QueueRunner:
    """One poll at a time: note the runs that ended, start what the free slots allow."""

    def __init__(self, queue: SweepQueue, slots: Slots):
        self.queue, self.slots = queue, slots
        self.children: dict[str, tuple[subprocess.Popen, str]] = {}  # run name -> (trainer, device)
        self.starts: Counter[str] = Counter()
        self.live: set[str] = set()  # runs seen training, ours or a previous runner's

    def step(self) -> bool:
        """False when nothing is left to start or to wait for."""
        for name, (process, _) in list(self.children.items()):
            if process.poll() is not None:
                del self.children[name]
        with self.queue.locked():  # a cancel waits until the runs started here hold their locks
            runs = self.queue.runs()
            statuses = {run.name: run.status() for run in runs}
            kinds = self.queue.outcomes(statuses)
            for name in [n for n in self.live if kinds[n] != "running" and n not in self.children]:
                self.live.discard(name)
                s = statuses[name]
                self.queue.log(f"{name}: {s.get('state')} at step {s.get('step', 0)} ({s.get('reason', '')})")
            self.live |= {name for name, kind in kinds.items() if kind == "running"}
            busy = [run for run in runs if kinds[run.name] == "running" or run.name in self.children]
            todo = [
                r for r in runs if kinds[r.name] in ("queued", "interrupted") and r.name not in self.children
            ]
            if self.queue.held:  # `sweep --stop`: wait for the runs that were sent a stop, start nothing
                todo = []
            if not busy and not todo:
                return False
            # The devices in use: this runner's trainers', and those of live trainers it did not start (a
            # dead runner's, another sweep's, a plain `train` in the same runs folder), as their status says.
            in_use = [device for _, device in self.children.values()] + [
                statuses[run.name].get("torch_device", "") for run in busy if run.name not in self.children
            ]
            in_use += _other_trainers(self.queue.runs_dir, {run.name for run in runs})
            started = [
                run
                for run in todo[: max(0, self.slots.parallel - len(busy))]
                if self._start(run, kinds[run.name] == "interrupted", in_use)
            ]
            _wait_until_held(started, self.children)
            self.queue.resumed([run.name for run in started])
        return True

    def _start(self, run: RunFolder, resumed: bool, in_use: list[str]) -> bool:
        if self.starts[run.name] >= MAX_STARTS:
            reason = f"its trainer was started {MAX_STARTS} times by the sweep runner and never finished"
            run.write_status("failed", reason=reason)
            self.queue.log(f"{run.name}: given up: {reason}")
            return False
        device = _least_used(self.slots.devices, in_use)
        in_use.append(device)
        try:  # a recipe that names its thread count keeps it; else the run gets its share of the cores
            own_threads = run.recipe().training.threads
        except UserError:
            own_threads = 0  # its trainer fails on it too, and the run is given up after MAX_STARTS
        threads = None if own_threads else self.slots.threads
        self.children[run.name] = (start_training(run, device, threads=threads), device)
        self.starts[run.name] += 1
        self.live.add(run.name)
        how = f"{'resumed' if resumed else 'started'} on {device}" + (
            f", {threads} thread(s)" if threads else ""
        )
        self.queue.log(f"{run.name}: {how}")
        return True


def _least_used(devices: list[str], in_use: list[str]) -> str:
    use = Counter("cuda:0" if device == "cuda" else device for device in in_use)
    return min(devices, key=lambda d: use[d])


def _other_trainers(runs_dir: Path, ours: set[str]) -> list[str]:
    """The devices of the live trainers of the runs folder's other runs (their status's torch_device)."""
    return [
        run.status().get("torch_device", "")
        for run in list_runs(runs_dir)
        if run.name not in ours and run.trainer_alive()
    ]


def _wait_until_held(runs: list[RunFolder], children: dict[str, Any]) -> None:
    """Wait until each started trainer holds its run's lock (or has exited)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    for run in runs:
        process = children[run.name][0]
        while not run.trainer_alive() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
