"""Fast paths: the same maths as the reference modules, computed faster where they apply.

| fast path | reference | runs in |
|---|---|---|
| `packed_gru.py` | `nn.GRU` in `encoders.RecurrentEncoder` | training, CPU, one-layer GRU encoder |
| `decoder_loop.py` | `decoders.RecurrentDecoder.step`, looped | training, input feeding, GRU/LSTM cell |
| `search_step.py` | `model.Seq2Seq.step` | greedy and beam search, input feeding, GRU/LSTM cell |

`kernels.py` holds the gate updates and products the two training paths share. docs/architecture.md
says when each one runs and which test holds it equal to its reference.

`reference_maths()` (a context manager), or `S2S_REFERENCE=1` in the environment, runs the reference
modules everywhere instead: the equivalence tests and scripts/cuda_ab.py use it, and so can anyone who
suspects a fast path of a wrong result.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

_reference = os.environ.get("S2S_REFERENCE", "") not in ("", "0")  # read once, at import


def enabled() -> bool:
    """Whether the fast paths may run (False under `reference_maths()` or with S2S_REFERENCE=1)."""
    return not _reference


@contextmanager
def reference_maths(on: bool = True) -> Iterator[None]:
    """Within the block, only the reference modules compute (on=False: the fast paths where they apply)."""
    global _reference
    previous, _reference = _reference, on
    try:
        yield
    finally:
        _reference = previous


def trains_fused(x: Tensor, weight: Tensor) -> bool:
    """Whether a recurrence on input x with this weight takes a fused training path: fast paths enabled,
    gradients wanted, the weight trained, in fp32 or fp64, without autocast or under the CPU's bf16 one
    (CUDA autocast keeps torch's kernels)."""
    autocast = torch.is_autocast_enabled(x.device.type)
    return (
        enabled()
        and torch.is_grad_enabled()
        and weight.requires_grad
        and x.dtype in (torch.float32, torch.float64)
        and (not autocast or (x.device.type == "cpu" and torch.get_autocast_dtype("cpu") == torch.bfloat16))
    )
