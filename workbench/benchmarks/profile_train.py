"""Where a training step's time goes: torch.profiler over real `Trainer.train_step` calls.

Named ranges are opened around the model's parts with module hooks (encoder, attention keys, bridge,
decoder RNN cell, attention, attentional layer), around the forward pass, the fused output projection
and loss (which computes its gradients in its forward pass) and the gradient clipping; torch labels the
optimizer's `zero_grad` and `step` itself. What the forward pass spends outside those ranges is a part
of its own and the backward pass is what is left of the step, so the parts add up to the step; the
backward pass's autograd nodes and the busiest operators are listed too. Nothing in the engine
changes: the hooks and wrappers are removed when profiling ends.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function

from workbench.engine import model as model_module
from workbench.engine.data.batching import Batch
from workbench.engine.devices import autocast_dtype, synchronize
from workbench.engine.recipe import Recipe
from workbench.engine.run_folder import RunFolder
from workbench.engine.session import TrainingSession
from workbench.engine.training import Trainer

from .train_bench import batch_flops, trainer_flops, trainer_peak

# Range name -> the submodule it wraps (attribute path from the model); missing ones are skipped.
MODULE_RANGES = {
    "encoder": "encoder",
    "attention keys": "decoder.attention.key_layer",
    "bridge": "decoder.bridge",
    "decoder": "decoder",
    "decoder rnn cell": "decoder.rnn",
    "attention": "decoder.attention",
    "attentional layer": "decoder.attentional_layer",
}
STEP, FORWARD, CLIP = "train_step", "forward", "clip_grad_norm"
LOSS = "output projection + loss (and their gradients)"
REST = "rest of the forward pass"
ZERO_GRAD, OPTIMIZER = "Optimizer.zero_grad", "Optimizer.step"
# The matrix-product operators that do the work (leaves: aten::linear and aten::matmul call these).
GEMM_OPS = ("aten::mm", "aten::addmm", "aten::addmm_", "aten::bmm", "aten::baddbmm", "aten::addbmm")
FUSED_RNN_OPS = ("aten::mkldnn_rnn_layer", "aten::mkldnn_rnn_layer_backward")  # CPU LSTM layers


def profile_train(
    recipe: Recipe,
    steps: int = 20,
    warmup_steps: int = 5,
    device: str = "auto",
    top: int = 12,
    peak_seconds: float = 0.5,
) -> dict[str, Any]:
    """Milliseconds per step by part of the training step, averaged over `steps` profiled steps, and
    the matrix products' share of the step and speed against the measured matmul peak."""
    folder = Path(tempfile.mkdtemp(prefix="s2s-bench-profile-"))
    try:
        trainer = Trainer(TrainingSession(RunFolder.create(folder, recipe, name="bench"), device).prepare())
        order = _forever(trainer)
        for _ in range(warmup_steps):
            _step(trainer, trainer.train_batch(next(order)))
        batches = [trainer.train_batch(next(order)) for _ in range(steps)]
        start = time.perf_counter()
        for batch in batches:
            _step(trainer, batch)
        plain_ms = 1000 * (time.perf_counter() - start) / steps
        # The same batches again, profiled (the model has moved on by `steps` updates: same shapes).
        activities = [ProfilerActivity.CPU] + (
            [ProfilerActivity.CUDA] if trainer.device.type == "cuda" else []
        )
        with _ranges(trainer.model), profile(activities=activities, record_shapes=True) as prof:
            for batch in batches:
                with record_function(STEP):
                    _step(trainer, batch)
        result = _summary(prof, steps, plain_ms, top)
        if trainer.device.type == "cpu":  # on a GPU the host-side times of the products mean nothing
            result["matmul"] = _matmul_share(trainer, prof, batches, result, peak_seconds)
        return result
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _forever(trainer: Trainer) -> Iterator[list[int]]:
    epoch = 0
    while True:
        yield from trainer.epoch_order(epoch)
        epoch += 1


def _step(trainer: Trainer, batch: Batch) -> None:
    trainer.progress.step += 1
    trainer.train_step(batch)
    synchronize(trainer.device)


@contextmanager
def _ranges(model: nn.Module) -> Iterator[None]:
    """Profiler ranges around the model's parts, the loss and clipping; all removed on exit."""
    with ExitStack() as stack:
        for name, path in MODULE_RANGES.items():
            module = _submodule(model, path)
            if module is None:
                continue
            open_ranges: list[Any] = []

            def enter(mod: nn.Module, args: Any, name: str = name, open_ranges: list = open_ranges) -> None:
                rf = record_function(name)
                rf.__enter__()
                open_ranges.append(rf)

            def leave(mod: nn.Module, args: Any, out: Any, open_ranges: list = open_ranges) -> None:
                open_ranges.pop().__exit__(None, None, None)

            stack.callback(module.register_forward_pre_hook(enter).remove)
            stack.callback(module.register_forward_hook(leave).remove)
        stack.enter_context(_wrapped(model_module.Seq2Seq, "loss", FORWARD))
        stack.enter_context(_wrapped(model_module, "projected_cross_entropy", LOSS))
        stack.enter_context(_wrapped(torch.nn.utils, "clip_grad_norm_", CLIP))
        yield


@contextmanager
def _wrapped(owner: Any, attribute: str, name: str) -> Iterator[None]:
    original: Callable = getattr(owner, attribute)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with record_function(name):
            return original(*args, **kwargs)

    setattr(owner, attribute, wrapper)
    try:
        yield
    finally:
        setattr(owner, attribute, original)


def _submodule(model: nn.Module, path: str) -> nn.Module | None:
    module: Any = model
    for part in path.split(".") if path else []:
        module = getattr(module, part, None)
        if not isinstance(module, nn.Module):
            return None
    return module


def _summary(prof: Any, steps: int, plain_ms: float, top: int) -> dict[str, Any]:
    totals: dict[str, float] = {}
    for event in prof.key_averages():
        key = event.key.split("#")[0]  # "Optimizer.step#Adam.step" -> "Optimizer.step"
        totals[key] = totals.get(key, 0.0) + event.cpu_time_total / 1000 / steps
    names = [STEP, FORWARD, *MODULE_RANGES, LOSS, CLIP, ZERO_GRAD, OPTIMIZER]
    regions = {name: totals.get(name, 0.0) for name in names}
    step = regions[STEP]
    decoder = regions["decoder"]
    parts = {
        "encoder": regions["encoder"],
        "attention keys + bridge": regions["attention keys"] + regions["bridge"],
        "decoder loop (rnn cell + attention + attentional layer + glue)": decoder,
        "  of which rnn cell": regions["decoder rnn cell"],
        "  of which attention": regions["attention"],
        "  of which attentional layer": regions["attentional layer"],
        LOSS: regions[LOSS],
        REST: regions[FORWARD]
        - regions["encoder"]
        - regions["attention keys"]
        - regions["bridge"]
        - decoder
        - regions[LOSS],
        "backward": step - regions[FORWARD] - regions[CLIP] - regions[ZERO_GRAD] - regions[OPTIMIZER],
        "clip_grad_norm": regions[CLIP],
        "optimizer (zero_grad + step)": regions[ZERO_GRAD] + regions[OPTIMIZER],
    }
    ops = sorted(
        (e for e in prof.key_averages() if e.key.startswith("aten::")),
        key=lambda e: e.self_cpu_time_total,
        reverse=True,
    )
    backward_nodes = sorted(
        (e for e in prof.key_averages() if e.key.startswith("autograd::engine::evaluate_function")),
        key=lambda e: e.cpu_time_total,
        reverse=True,
    )
    # The fused training loop (fast_paths/decoder_loop.py) calls no submodule: its parts are not timed apart.
    parts = {name: ms for name, ms in parts.items() if ms or not name.startswith("  of which")}
    return {
        "steps": steps,
        "step_ms_unprofiled": round(plain_ms, 2),
        "step_ms_profiled": round(step, 2),
        "parts_ms": {name: round(ms, 2) for name, ms in parts.items()},
        "top_ops_self_ms": {
            e.key: {"ms": round(e.self_cpu_time_total / 1000 / steps, 2), "calls": round(e.count / steps, 1)}
            for e in ops[:top]
        },
        "top_backward_nodes_ms": {
            e.key.split(": ", 1)[-1]: round(e.cpu_time_total / 1000 / steps, 2) for e in backward_nodes[:top]
        },
        "aten_ops_per_step": sum(  # nested calls included (aten::linear and its aten::addmm)
            e.count for e in prof.key_averages() if e.key.startswith("aten::")
        )
        // steps,
    }


def _gemm_flops(name: str, shapes: list[list[int]]) -> int:
    """2·m·k·n (times the batch) of one matrix-product call, from its recorded input shapes."""
    a, b = (shapes[0], shapes[1]) if name in ("aten::mm", "aten::bmm") else (shapes[1], shapes[2])
    if name == "aten::addbmm":  # a sum of a batch of products
        return 2 * a[0] * a[1] * a[2] * b[2]
    batch = a[0] if len(a) == 3 else 1
    return 2 * batch * a[-2] * a[-1] * b[-1]


def _matmul_share(
    trainer: Trainer, prof: Any, batches: list[Batch], result: dict[str, Any], peak_seconds: float
) -> dict[str, float]:
    """The products' time and speed per step, the matmul peak, and the MFU they bound the step to."""
    steps = len(batches)
    gemm_us = gemm_flops = fused_us = 0.0
    for event in prof.events():
        if event.name in GEMM_OPS and event.input_shapes:
            gemm_us += event.self_cpu_time_total
            gemm_flops += _gemm_flops(event.name, event.input_shapes)
        elif event.name in FUSED_RNN_OPS:
            fused_us += event.self_cpu_time_total
    flops = trainer_flops(trainer)
    model_flops = sum(batch_flops(trainer, flops, b) for b in batches)
    sentences = sum(len(b) for b in batches)
    padded_src = sum(b.src.numel() for b in batches)
    padded_tgt = sum(b.tgt_out.numel() for b in batches)
    dtype = autocast_dtype(trainer.device, trainer.recipe.training.precision) or torch.float32
    peak = trainer_peak(trainer, steps, sentences, padded_src, padded_tgt, dtype, peak_seconds)
    peak = peak.peak_flops_per_s
    gemm_seconds, product_seconds = gemm_us / 1e6, (gemm_us + fused_us) / 1e6
    return {
        "ms_per_step": round(1000 * gemm_seconds / steps, 2),
        "fused_rnn_ms_per_step": round(1000 * fused_us / 1e6 / steps, 2),
        "share_of_step": round(1000 * product_seconds / steps / result["step_ms_profiled"], 4),
        "flops_per_step": round(gemm_flops / steps),  # as computed, padding included (no fused layers)
        "model_flops_per_step": round(model_flops / steps),  # as counted for MFU, padding excluded
        "flops_per_s": round(gemm_flops / gemm_seconds),
        "peak_flops_per_s": round(peak),
        "peak_dtype": str(dtype).removeprefix("torch."),
        "fraction_of_peak": round(gemm_flops / gemm_seconds / peak, 4),
        "mfu": round(model_flops / (result["step_ms_unprofiled"] * steps / 1000) / peak, 4),
        "mfu_ceiling": round(model_flops / product_seconds / peak, 4),
    }
