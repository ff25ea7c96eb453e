"""The machine's measured matmul peak: FLOP/s of GEMMs of the model's own shapes and a large square one.

Measured in the benchmark's own process, after the trainer has set its thread count, so that model
FLOP/s divided by this peak (MFU) compares like with like. The peak is the best of all shapes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from workbench.engine.devices import synchronize
from workbench.engine.recipe import ModelConfig

from .flops import GATES

SQUARE = 2048


@dataclass(frozen=True)
class Gemm:
    """One (m, k) x (k, n) product, named after where the model uses it."""

    name: str
    m: int
    k: int
    n: int

    @property
    def flops(self) -> int:
        return 2 * self.m * self.k * self.n

    @property
    def shape(self) -> str:
        return f"({self.m}x{self.k})x({self.k}x{self.n})"


def model_gemms(cfg: ModelConfig, tgt_vocab: int, batch: int, mean_src: float, mean_tgt: float) -> list[Gemm]:
    """The products that dominate a training step of this model, at its batch shapes, and a square one."""
    g, e, h = GATES[cfg.cell], cfg.embedding_size, cfg.hidden_size
    k = (2 if cfg.bidirectional else 1) * h
    src_rows, tgt_rows = max(1, round(batch * mean_src)), max(1, round(batch * mean_tgt))
    out_in = e if cfg.tie_embeddings else h
    rnn_in = e + (h if cfg.input_feeding else 0)
    gemms = [
        Gemm("output_projection", tgt_rows, out_in, tgt_vocab),
        Gemm("decoder_rnn_input", batch, rnn_in, g * h),
        Gemm("decoder_rnn_hidden", batch, h, g * h),
        Gemm("encoder_rnn_input", src_rows, e, g * h),
        Gemm("encoder_rnn_hidden", batch, h, g * h),
    ]
    if cfg.attention != "none":
        gemms.append(Gemm("attentional_layer", batch, h + k, h))
        if cfg.attention != "dot":
            gemms.append(Gemm("attention_keys", src_rows, k, h))
    gemms.append(Gemm("square", SQUARE, SQUARE, SQUARE))
    return gemms


@dataclass
class PeakResult:
    peak_flops_per_s: float
    dtype: str
    by_gemm: dict[str, dict[str, float | str]]  # name -> shape and FLOP/s


def measure_peak(
    gemms: list[Gemm],
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    seconds_each: float = 0.5,
) -> PeakResult:
    """Best-of-repeats FLOP/s of each product (after one warm-up call); the peak is the fastest."""
    by_gemm: dict[str, dict[str, float | str]] = {}
    for gemm in gemms:
        a = torch.randn(gemm.m, gemm.k, device=device, dtype=dtype)
        b = torch.randn(gemm.k, gemm.n, device=device, dtype=dtype)
        out = torch.empty(gemm.m, gemm.n, device=device, dtype=dtype)
        torch.mm(a, b, out=out)  # warm-up: allocation, kernel choice, caches
        synchronize(device)
        best, spent = float("inf"), 0.0
        # On a GPU one product is microseconds: time a run of them so the clock's resolution is no issue.
        repeats = 1 if device.type == "cpu" else 20
        while spent < seconds_each or best == float("inf"):
            start = time.perf_counter()
            for _ in range(repeats):
                torch.mm(a, b, out=out)
            synchronize(device)
            elapsed = time.perf_counter() - start
            best, spent = min(best, elapsed / repeats), spent + elapsed
        by_gemm[gemm.name] = {"shape": gemm.shape, "flops_per_s": gemm.flops / best}
    peak = max(float(v["flops_per_s"]) for v in by_gemm.values())
    return PeakResult(peak, str(dtype).removeprefix("torch."), by_gemm)
