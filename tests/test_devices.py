"""Threads for training on the CPU: as many as there are idle cores, judged now and over the last minute;
and which training precisions autocast."""

import os

import pytest
import torch

from workbench.engine import devices
from workbench.engine.devices import autocast_dtype, fast_bf16_cpu


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
    monkeypatch.setattr(devices, "usable_cpus", lambda: [0, 1, 2, 3])
    monkeypatch.setattr(devices.psutil, "cpu_percent", lambda interval, percpu: [percent_now] * 4)
    monkeypatch.setattr(devices.psutil, "getloadavg", lambda: (load_average, 0.0, 0.0))
    assert devices.cpu_threads(0) == threads


@pytest.mark.parametrize(
    ("allowed", "threads"),
    [
        ([2, 3, 4, 5], 3),  # a job's 4 cores of 8 (taskset, a cluster's CPU set), one of them busy
        ([6, 7], 2),  # two idle cores: the machine's load average is the other jobs'
        ([4], 1),
    ],
)
def test_auto_threads_count_only_the_cores_the_process_may_use(monkeypatch, allowed, threads):
    use = [100.0, 100.0, 100.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # CPUs 0-2 busy
    monkeypatch.setattr(devices, "usable_cpus", lambda: allowed)
    monkeypatch.setattr(devices.psutil, "cpu_percent", lambda interval, percpu: use)
    monkeypatch.setattr(devices.psutil, "getloadavg", lambda: (7.0, 0.0, 0.0))
    assert devices.cpu_threads(0) == threads


def test_usable_cpus_are_the_process_cpu_set():
    cpus = devices.usable_cpus()
    assert cpus and len(cpus) <= (os.cpu_count() or 1)
    if hasattr(os, "sched_getaffinity"):
        assert cpus == sorted(os.sched_getaffinity(0))


def test_asked_threads_are_kept():
    assert devices.cpu_threads(3) == 3


def test_training_precision_maps_to_autocast_only_where_asked():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert autocast_dtype(cuda, "auto") is None  # fp32: faster for these models (docs/benchmarks.md)
    assert autocast_dtype(cuda, "fp32") is None
    assert autocast_dtype(cuda, "bf16") is torch.bfloat16
    assert autocast_dtype(cuda, "fp16") is torch.float16
    # AMX / AVX-512 BF16 products; elsewhere fp32
    assert autocast_dtype(cpu, "bf16") is (torch.bfloat16 if fast_bf16_cpu() else None)
    assert all(autocast_dtype(cpu, p) is None for p in ("auto", "fp32", "fp16"))


def test_fp32_on_a_gpu_is_fp32_in_the_cudnn_rnns_and_the_matrix_products(monkeypatch, tf32_flags):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    torch.backends.cudnn.allow_tf32 = True  # cuDNN's default, which runs the GRU/LSTM in TF32
    assert devices.resolve_device("cuda:1") == torch.device("cuda", 1)
    assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = True
    devices.resolve_device("auto")
    assert not torch.backends.cudnn.allow_tf32


def test_the_declared_torch_floor_has_the_apis_the_engine_calls():
    import re
    from pathlib import Path

    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    (major, minor), *others = re.findall(r'"torch>=(\d+)\.(\d+)"', pyproject)
    # torch.is_autocast_enabled(device_type), torch.get_autocast_dtype and fused Adam and SGD on the CPU
    # (the trainer's optimizers) arrived in torch 2.4.
    assert not others and (int(major), int(minor)) >= (2, 4)
