"""The most memory a trainer has held, so that a finished run still says what it needed."""

from __future__ import annotations

import resource

import torch


def peak_memory(device: torch.device) -> dict[str, float]:
    """This process's peak resident memory and, on CUDA, the caching allocator's peak, in MiB."""
    peak = {"peak_host_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}  # KiB
    if device.type == "cuda":
        peak["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return peak
