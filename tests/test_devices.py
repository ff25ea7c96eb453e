"""Threads for training on the CPU: as many as there are idle cores, judged now and over the last minute."""

import pytest

from workbench.engine import devices


@pytest.mark.parametrize(
    ("percent_now", "load_average", "threads"),
    [
        (0.0, 0.1, 4),  # an idle machine: every core
        (50.0, 0.2, 2),  # two cores busy since a moment ago: the load average has not seen them yet
        (1.0, 2.9, 1),  # a process that has just paused still counts through the load average
        (100.0, 4.0, 1),  # every core busy: one thread still
    ],
)
def test_auto_threads_leave_the_busy_cores_alone(monkeypatch, percent_now, load_average, threads):
    monkeypatch.setattr(devices.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(devices.psutil, "cpu_percent", lambda interval: percent_now)
    monkeypatch.setattr(devices.psutil, "getloadavg", lambda: (load_average, 0.0, 0.0))
    assert devices.cpu_threads(0) == threads


def test_asked_threads_are_kept():
    assert devices.cpu_threads(3) == 3
