"""Choosing the device and numeric precision a run trains and decodes on."""

from __future__ import annotations

import contextlib
import os

import psutil
import torch

from workbench.engine.errors import UserError


class DeviceError(UserError):
    """A device that this machine does not have."""


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present; asking for CUDA on a machine without it is an error.

    On CUDA, fp32 is then fp32 throughout (`exact_fp32`)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError("--device cuda: this machine has no CUDA GPU visible to torch (use --device cpu)")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"--device {name}: not a device (auto, cpu or cuda)") from None
    if device.type == "cuda":
        exact_fp32()
    return device


def exact_fp32() -> None:
    """Turn TF32 off for cuDNN (its RNNs and convolutions) and for CUDA matrix products.

    cuDNN allows TF32 by default, so on Ampere and later GPUs the encoder's GRU/LSTM would multiply with
    10-bit mantissas while the rest of the model runs in fp32: a recipe's numbers would then depend on
    the GPU. The flags are the process's; the workbench trains and decodes on one device per process.
    """
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def cpu_threads(requested: int) -> int:
    """Intra-op threads: as asked, or with 0 one per idle core among those this process may use.

    On a shared machine a thread whose core is busy stalls every parallel region of every step, so
    two threads on two busy cores train several times slower than one. Busy cores: the larger of the
    1-minute load average, which lags a process that has just started (a training then took two
    threads beside a busy one and ran several times slower), and the CPU use of the last 0.2 s,
    which misses one that has just paused. The cores are those of the process's CPU set (`taskset`,
    a cluster job's cgroup): where that is not the whole machine, only their own use counts, since
    the load average is the machine's and a job's neighbours load other cores.
    """
    if requested:
        return requested
    allowed = usable_cpus()
    cores = len(allowed)
    per_cpu = psutil.cpu_percent(interval=0.2, percpu=True)
    now = sum(per_cpu[i] for i in allowed if i < len(per_cpu)) / 100
    whole_machine = cores >= len(per_cpu)
    busy = int((max(psutil.getloadavg()[0], now) if whole_machine else now) + 0.5)
    return max(1, min(cores, cores - busy))


def usable_cpus() -> list[int]:
    """The CPUs this process may run on (all of them where the platform cannot say)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype of a recipe's training precision on a device; None: plain fp32.

    "auto" is fp32, which keeps a recipe's numbers the same on every machine; bf16 and fp16 are there
    to choose. On an H200 the reference model trained at 0.6-0.85x fp32's speed under bf16 autocast
    (docs/benchmarks.md): its step is bound by many small kernels, not by its products. On a CPU with
    AMX, bf16 products run several times faster than fp32 ones and bf16 pays; fp16 is CUDA's only. A CPU
    without bf16 instructions trains in fp32: there bf16 is emulated, slower, and torch's LSTM has no
    bf16 kernel at all (oneDNN cannot create the primitive).
    """
    if precision in ("fp32", "auto") or (device.type == "cpu" and precision == "fp16"):
        return None
    if device.type == "cpu" and not fast_bf16_cpu():
        return None
    return torch.bfloat16 if precision == "bf16" else torch.float16


def fast_bf16_cpu() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AMX tiles or AVX-512 BF16); without, bf16 is slow."""
    probes = [
        getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    ]
    return any(probe() for probe in probes if probe is not None)


def product_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype the engine's own products of x run in: the autocast dtype inside an autocast region
    (the fused training paths and the loss cast for themselves), else x's."""
    return torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU, whose operations finish as they return)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The autocast region of a training precision on a device (none for fp32)."""
    dtype = autocast_dtype(device, precision)
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def describe(device: torch.device) -> str:
    """A short human description of the device."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'s' if threads != 1 else ''})"
