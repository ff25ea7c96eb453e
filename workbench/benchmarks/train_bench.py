"""Training throughput: the real `Trainer.train_step` on a recipe, timed for a number of seconds.

A throw-away run folder (a temporary directory, removed afterwards) holds the tokenizers; the trainer
prepares data, tokenizers and model as in a real run, warms up for a few steps, then runs steps until
`seconds` have passed. Excluded from the timing: data loading, tokenizer training and encoding
(`prepare`), and building each padded batch (`train_batch`, reported apart as `loop_*`). The step
itself (forward, loss, backward, clipping, optimizer) is what `tgt_tokens_per_s` measures.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from workbench.engine.data.batching import Batch
from workbench.engine.devices import autocast_dtype, describe, synchronize
from workbench.engine.recipe import Recipe
from workbench.engine.run_folder import RunFolder
from workbench.engine.session import TrainingSession
from workbench.engine.training import Trainer

from .flops import ModelFlops, count_flops
from .peak import PeakResult, measure_peak, model_gemms


def bench_train(
    recipe: Recipe,
    seconds: float,
    device: str = "auto",
    warmup_steps: int = 5,
    peak_seconds: float = 0.5,
    log: Any = None,
) -> dict[str, Any]:
    """Train `recipe` for `seconds` after `warmup_steps`; throughput, model FLOP/s, matmul peak and MFU.

    `log(message)` hears progress (preparing, timing, measuring the peak); the result is plain values.
    """
    say = log or (lambda message: None)
    folder = Path(tempfile.mkdtemp(prefix="s2s-bench-train-"))
    try:
        run = RunFolder.create(folder, recipe, name="bench")
        session = TrainingSession(run, device)
        say("preparing data, tokenizers and model (not timed)")
        start = time.perf_counter()
        trainer = Trainer(session.prepare())
        prepare_seconds = time.perf_counter() - start
        return _timed_steps(trainer, seconds, warmup_steps, peak_seconds, prepare_seconds, say)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _batches(trainer: Trainer) -> Iterator[tuple[Batch, float]]:
    """The training batches in the trainer's own order, epoch after epoch, with the seconds each took."""
    epoch = trainer.progress.epoch
    while True:
        for indices in trainer.epoch_order(epoch):
            start = time.perf_counter()
            batch = trainer.train_batch(indices)
            yield batch, time.perf_counter() - start
        epoch += 1


def _timed_steps(
    trainer: Trainer,
    seconds: float,
    warmup_steps: int,
    peak_seconds: float,
    prepare_seconds: float,
    say: Any,
) -> dict[str, Any]:
    recipe, device, progress = trainer.recipe, trainer.device, trainer.progress
    flops = trainer_flops(trainer)
    batches = _batches(trainer)

    say(f"warming up for {warmup_steps} steps")
    for _ in range(warmup_steps):
        batch, _ = next(batches)
        progress.step += 1
        trainer.train_step(batch)
    synchronize(device)

    say(f"timing training steps for {seconds:g} s")
    load_before = os.getloadavg()[0]
    step_times: list[float] = []
    collate_seconds = 0.0
    n_src = n_tgt = n_sentences = padded_src = padded_tgt = 0
    model_flops = 0
    loss_total = torch.zeros((), dtype=torch.float64, device=device)
    loop_start = time.perf_counter()
    while True:
        batch, collate = next(batches)
        collate_seconds += collate
        progress.step += 1
        step_start = time.perf_counter()
        loss_sum, _ = trainer.train_step(batch)
        step_times.append(time.perf_counter() - step_start)
        loss_total += loss_sum.detach()  # stays on the device: no host sync per step, as in the trainer
        model_flops += batch_flops(trainer, flops, batch)
        n_src += batch.n_src_tokens
        n_tgt += batch.n_tgt_tokens
        n_sentences += len(batch)
        padded_src += batch.src.numel()
        padded_tgt += batch.tgt_out.numel()
        if time.perf_counter() - loop_start >= seconds:
            break
    synchronize(device)
    loop_seconds = time.perf_counter() - loop_start
    load_after = os.getloadavg()[0]
    mean_loss = loss_total.item() / max(n_tgt, 1)
    # On a GPU a step's host time is only its launch time; there the loop's wall time minus batch
    # building is the honest measure. On the CPU every step ends before train_step returns.
    step_seconds = sum(step_times) if device.type == "cpu" else loop_seconds - collate_seconds
    steps = len(step_times)

    say(f"measuring the matmul peak ({peak_seconds:g} s a shape)")
    dtype = autocast_dtype(device, recipe.training.precision) or torch.float32
    peak = trainer_peak(trainer, steps, n_sentences, padded_src, padded_tgt, dtype, peak_seconds)

    model_flops_per_s = model_flops / step_seconds
    return {
        "recipe": recipe.name,
        "device": describe(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        # Other processes on the machine (1-minute load average): a busy machine slows every number.
        "load_average": [round(load_before, 2), round(load_after, 2)],
        "steps": steps,
        "warmup_steps": warmup_steps,
        "seconds": round(step_seconds, 3),
        "tgt_tokens_per_s": round(n_tgt / step_seconds, 1),
        "src_tokens_per_s": round(n_src / step_seconds, 1),
        "sentences_per_s": round(n_sentences / step_seconds, 2),
        "step_ms_p50": round(1000 * statistics.median(step_times), 2) if device.type == "cpu" else None,
        "step_ms_mean": round(1000 * step_seconds / steps, 2),
        # Including the building of each padded batch (data loading a real run pays for too).
        "loop_seconds": round(loop_seconds, 3),
        "loop_tgt_tokens_per_s": round(n_tgt / loop_seconds, 1),
        "tgt_tokens_per_batch": round(n_tgt / steps, 1),
        "src_tokens_per_batch": round(n_src / steps, 1),
        "padding_fraction": round(1 - (n_src + n_tgt) / (padded_src + padded_tgt), 4),
        "src_padding_fraction": round(1 - n_src / padded_src, 4),
        "tgt_padding_fraction": round(1 - n_tgt / padded_tgt, 4),
        "loss": round(mean_loss, 4),
        "params": trainer.setup.params,
        "model_flops_per_tgt_token": round(model_flops / n_tgt),
        "model_flops_per_s": round(model_flops_per_s),
        "matmul_peak_flops_per_s": round(peak.peak_flops_per_s),
        "matmul_dtype": peak.dtype,
        "matmul_gemms": {
            name: {"shape": g["shape"], "flops_per_s": round(float(g["flops_per_s"]))}
            for name, g in peak.by_gemm.items()
        },
        "mfu": round(model_flops_per_s / peak.peak_flops_per_s, 6),
        "prepare_seconds": round(prepare_seconds, 2),
        "not_timed": "data loading, tokenizer training and encoding (prepare); batch building (in loop_*)",
    }


def trainer_flops(trainer: Trainer) -> ModelFlops:
    """The FLOP count of the trainer's model."""
    tokenizers = trainer.setup.tokenizers
    return count_flops(trainer.recipe.model, tokenizers.src.vocab_size, tokenizers.tgt.vocab_size)


def batch_flops(trainer: Trainer, flops: ModelFlops, batch: Batch) -> int:
    """Model FLOPs of a training step on `batch`; targets count EOS (one decoder step each)."""
    tgt_lengths = (trainer.setup.data.train.lengths["tgt"][batch.indices] + 1).tolist()
    return flops.training(batch.src_lengths.tolist(), tgt_lengths)


def trainer_peak(
    trainer: Trainer,
    steps: int,
    sentences: int,
    padded_src: int,
    padded_tgt: int,
    dtype: torch.dtype,
    seconds: float,
) -> PeakResult:
    """The matmul peak at the products of the trainer's model for batches of these mean shapes."""
    gemms = model_gemms(
        trainer.recipe.model,
        trainer.setup.tokenizers.tgt.vocab_size,
        batch=round(sentences / steps),
        mean_src=padded_src / sentences,
        mean_tgt=padded_tgt / sentences,
    )
    return measure_peak(gemms, trainer.device, dtype, seconds)
