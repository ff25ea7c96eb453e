"""The system view's readings: GPUs through a stand-in NVML, processes through psutil, peak memory in
the metrics, and `s2s-bench system --once` as text."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest
from fake_nvml import FakeGpu, FakeNvml
from test_run_names import TINY
from typer.testing import CliRunner

from workbench.engine.recipe import load_recipe
from workbench.engine.run_folder import RunFolder
from workbench.engine.system_monitor import (
    SystemMonitor,
    busy_text,
    gpu_rows,
    live_runs,
    process_rows,
    trainer_pids,
)
from workbench.jobs.comparison import compare_runs


def live_status(run: RunFolder, pid: int, **fields) -> None:
    status = {"state": "running", "pid": pid, "host": socket.gethostname(), "step": 5, **fields}
    run.status_path.write_text(json.dumps(status))


@pytest.fixture
def run(tmp_path):
    return RunFolder.create(tmp_path / "runs", load_recipe("reverse"), name="rev")


def test_each_gpu_reads_its_use_memory_temperature_and_power_and_each_process_its_share():
    me = os.getpid()
    nvml = FakeNvml([FakeGpu(processes={me: 3 * 2**30}), FakeGpu(utilization=5, milliwatts=None)])
    reading = SystemMonitor(nvml).read([me])
    first, second = reading.gpus
    assert (first.utilization, first.memory_used, first.temperature, first.power) == (87, 12 * 2**30, 61, 310)
    assert second.power is None and second.processes == {}
    assert reading.no_gpu == ""
    mine = reading.processes[me]
    assert mine.gpus == (0,) and mine.gpu_memory == 3 * 2**30 and mine.rss > 0
    rows = gpu_rows(reading)
    assert rows[0] == ("0", "NVIDIA H100 80GB HBM3", "87%", "12.0 / 80.0 GiB", "61 °C", "310 W")
    assert rows[1][5] == "—"  # a board that does not report its power
    assert rows[-1][0] == "cpu"


def test_without_nvml_the_view_has_the_cpu_side_and_says_there_is_no_gpu():
    reading = SystemMonitor(FakeNvml(init_error="NVML Shared Library Not Found")).read([os.getpid()])
    assert reading.gpus == () and "no NVIDIA GPU" in reading.no_gpu
    assert [row[0] for row in gpu_rows(reading)] == ["cpu"]
    assert reading.memory_total > reading.memory_used > 0 and reading.processes[os.getpid()].gpus == ()
    assert "no NVIDIA GPU" in SystemMonitor(FakeNvml([])).read().no_gpu  # a driver, but no board


def test_a_gpu_that_fails_to_answer_leaves_the_cpu_side_and_says_why():
    reading = SystemMonitor(FakeNvml([FakeGpu(), FakeGpu(lost=True)])).read([os.getpid()])
    assert reading.gpus == () and "GPU is lost" in reading.no_gpu and os.getpid() in reading.processes


def test_a_live_run_is_found_with_its_processes_and_shows_which_gpu_it_holds_and_how_busy(run):
    lock = run.lock()
    try:
        live_status(run, os.getpid(), torch_device="cuda:0")
        (found,) = live_runs(run.path.parent)
        assert (found.name, found.device, found.pids) == ("rev", "cuda:0", (os.getpid(),))
        nvml = FakeNvml([FakeGpu(utilization=42, processes={os.getpid(): 2**30})])
        reading = SystemMonitor(nvml).read(found.pids)
        assert busy_text(reading, found) == "gpu0 42%"
        (row,) = process_rows(reading, [found])
        assert row[:3] == ("rev", str(os.getpid()), "gpu0") and row[5] == "1.0 GiB"
        on_cpu = SystemMonitor(FakeNvml([])).read(found.pids)
        assert busy_text(on_cpu, found).startswith("cpu ") and busy_text(on_cpu, None) == ""
    finally:
        lock.close()
    assert live_runs(run.path.parent) == []  # its trainer is gone: nothing training here


def test_in_a_container_whose_pids_nvml_does_not_list_a_run_holds_its_torch_devices_gpu():
    from workbench.engine.system_monitor import LiveRun

    run = LiveRun("rev", "cuda:1", (os.getpid(),))
    nvml = FakeNvml([FakeGpu(utilization=80, processes={1: 2**30}), FakeGpu(utilization=5)])
    reading = SystemMonitor(nvml).read(run.pids)
    assert reading.processes[os.getpid()].gpus == () and busy_text(reading, run) == "gpu1 5%"
    assert busy_text(reading, LiveRun("rev", "cpu", run.pids)).startswith("cpu ")


def test_a_distributed_runs_ranks_are_its_trainers_siblings_under_the_launcher(run):
    ranks = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) for _ in range(2)]
    lock = run.lock()
    try:
        live_status(run, ranks[0].pid, processes=2)
        assert trainer_pids(run) == [ranks[0].pid, ranks[1].pid]
        live_status(run, ranks[0].pid, processes=2, host="another-machine")
        assert trainer_pids(run) == []  # a pid of another machine names nothing here
    finally:
        lock.close()
        for rank in ranks:
            rank.kill()
            rank.wait()


def test_a_trainer_records_its_peak_memory_and_compare_shows_it(run):
    from workbench.engine.session import TrainingSession

    tiny = RunFolder.create(
        run.path.parent,
        load_recipe(
            "reverse",
            TINY,
        ),
        name="tiny",
    )
    TrainingSession(tiny, "cpu").train(max_steps=10)
    train = [r for r in tiny.read_metrics()[0] if r["kind"] == "train"]
    assert train and all(r["peak_host_mb"] > 10 and "peak_cuda_mb" not in r for r in train)
    (row,) = compare_runs([tiny]).rows
    assert row.peak_memory_mb == max(r["peak_host_mb"] for r in train)
    assert row.as_dict()["peak_memory_mb"] == row.peak_memory_mb


def test_system_once_prints_the_gpus_and_each_trainer(run, monkeypatch):
    from workbench.cli.main import app

    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([FakeGpu(processes={os.getpid(): 2**30})]))
    monkeypatch.setattr("workbench.cli.system.CPU_WINDOW_S", 0.0)
    lock = run.lock()
    try:
        live_status(run, os.getpid(), torch_device="cuda:0")
        result = CliRunner().invoke(app, ["system", "--once", "--runs-dir", str(run.path.parent)])
    finally:
        lock.close()
    assert result.exit_code == 0, result.output
    assert "NVIDIA H100 80GB HBM3" in result.output and "87%" in result.output
    assert "rev" in result.output and "gpu0" in result.output and "no NVIDIA GPU" not in result.output


def test_system_once_on_a_machine_without_a_gpu_says_so_without_an_error(tmp_path):
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "120"}
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "workbench", "system", "--once", "--runs-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0 and not done.stderr, done.stderr
    assert "cpu" in done.stdout and "no run is training on this machine" in done.stdout
    if not os.path.exists("/dev/nvidiactl"):
        assert "no NVIDIA GPU" in done.stdout
    assert time.monotonic() - start < 60
