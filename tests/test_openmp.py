"""OpenMP thread binding from the environment is dropped before torch loads (workbench/cli/openmp.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.cli.openmp import release_thread_binding


def test_binding_variables_are_dropped_and_the_rest_kept():
    env = {
        "OMP_PROC_BIND": "close",
        "OMP_PLACES": "cores",
        "GOMP_CPU_AFFINITY": "0-3",
        "OMP_NUM_THREADS": "2",
        "PATH": "/bin",
    }
    assert release_thread_binding(env) == ["OMP_PROC_BIND", "OMP_PLACES", "GOMP_CPU_AFFINITY"]
    assert env == {"OMP_NUM_THREADS": "2", "PATH": "/bin"}


def test_a_binding_that_binds_nothing_is_left_alone():
    env = {"OMP_PROC_BIND": " FALSE "}
    assert release_thread_binding(env) == []
    assert env == {"OMP_PROC_BIND": " FALSE "}


# The command line's entry point runs a command that loads no torch, then the process imports what
# `s2s-bench train` imports (torch, then sentencepiece with its own libgomp), sets two threads and
# runs a parallel operator: no thread may then be pinned to a subset of the process's CPUs.
THREADS_AFTER_MAIN = """
import json, os, sys
allowed = sorted(os.sched_getaffinity(0))
sys.argv = ["s2s-bench", "recipes"]
from workbench.cli.main import main
try:
    main()
except SystemExit:
    pass
import torch
import workbench.engine.session
torch.set_num_threads(2)
torch.randn(512, 2048).sigmoid_()
threads = []
for task in os.listdir("/proc/self/task"):
    status = open(f"/proc/self/task/{task}/status").read()
    threads.append(status.split("Cpus_allowed_list:")[1].split()[0])
print(json.dumps({"allowed": allowed, "threads": threads}))
"""


def _parse(cpu_list: str) -> set[int]:
    """'0-1,4' -> {0, 1, 4}"""
    cpus: set[int] = set()
    for part in cpu_list.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


@pytest.mark.skipif(
    not Path("/proc/self/task").is_dir() or len(os.sched_getaffinity(0)) < 2,
    reason="needs Linux's /proc and at least two usable CPUs",
)
@pytest.mark.parametrize("binding", [{"OMP_PROC_BIND": "true"}, {"GOMP_CPU_AFFINITY": "0-1"}])
def test_the_command_line_leaves_torch_threads_free_to_use_every_core(binding):
    env = {**os.environ, **binding}
    result = subprocess.run(
        [sys.executable, "-c", THREADS_AFTER_MAIN], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    allowed = set(report["allowed"])
    assert len(report["threads"]) >= 2  # the main thread and torch's second one
    assert all(_parse(cpus) == allowed for cpus in report["threads"]), report
    assert f"note: ignoring {next(iter(binding))}" in result.stderr
