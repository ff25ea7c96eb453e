"""In-process A/B of the CUDA training step on a recipe (default: the reference, bench-gru512).

One trainer, prepared once; each round times every variant on the same batches, one after the other,
so that the GPU's clocks and the host's load hit all of them alike. Variants:

- fp32 step-loop: the decoder's Python step loop differentiated by autograd (the reference maths,
  `fast_paths.reference_maths()`; also the path of bf16/fp16 autocast on a GPU);
- fp32 fused-decoder: the engine's fp32 path, the decoder loop as one autograd node
  (fast_paths/decoder_loop.py);
- bf16: the engine's step at `training.precision = "bf16"` (autocast, so the step loop).

The encoder is torch's cuDNN GRU in all three. Before timing, the two decoder paths are compared on
one batch without dropout (loss and gradient norm). Prints one JSON line per measurement, then a summary.
Usage: python scripts/cuda_ab.py [RECIPE] [--rounds 3] [--steps 50] [--batch-sizes 64,256]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from workbench.engine.devices import describe, synchronize
from workbench.engine.fast_paths import reference_maths
from workbench.engine.recipe import load_recipe
from workbench.engine.run_folder import RunFolder
from workbench.engine.session import TrainingSession
from workbench.engine.training import Trainer

VARIANTS = {"fp32 step-loop": ("fp32", True), "fp32 fused-decoder": ("fp32", False), "bf16": ("bf16", False)}


def use(trainer: Trainer, variant: str):
    """The variant's precision set on the trainer; returns the context its steps run in."""
    precision, reference = VARIANTS[variant]
    trainer.recipe.training.precision = precision
    return reference_maths(reference)


def loss_and_norm(trainer: Trainer, batch) -> tuple[float, float]:
    """Loss per token and gradient norm of one batch without dropout (cuDNN's backward needs train
    mode, so the dropout modules are set to 0 meanwhile); no optimizer step."""
    model = trainer.model
    dropouts = [(m, m.p) for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    try:
        for m, _ in dropouts:
            m.p = 0.0
        model.zero_grad(set_to_none=True)
        loss = model.loss(batch.src, batch.src_lengths, batch.tgt_in, batch.tgt_out) / batch.n_tgt_tokens
        loss.backward()
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
        return loss.item(), norm.item()
    finally:
        for m, p in dropouts:
            m.p = p
        model.zero_grad(set_to_none=True)


def timed(trainer: Trainer, batches: list) -> float:
    """Seconds for train_step over the batches, the GPU's work included."""
    synchronize(trainer.device)
    start = time.perf_counter()
    for batch in batches:
        trainer.progress.step += 1
        trainer.train_step(batch)
    synchronize(trainer.device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("recipe", nargs="?", default="recipes/bench-gru512.toml")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-sizes", default="64,256")
    parser.add_argument("--device", default="cuda", help="cpu: a smoke run of this script")
    parser.add_argument("--set", action="append", default=[], help="A recipe override, section.key=value")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="s2s-cuda-ab-"))
    try:
        run = RunFolder.create(folder, load_recipe(args.recipe, args.set), name="ab")
        trainer = Trainer(TrainingSession(run, args.device).prepare())
        check = trainer.train_batch(trainer.epoch_order(0)[0])
        for variant in ("fp32 step-loop", "fp32 fused-decoder"):
            with use(trainer, variant):
                loss, norm = loss_and_norm(trainer, check)
            print(json.dumps({"check": variant, "loss": loss, "grad_norm": norm}), flush=True)
        results: dict[tuple[str, int], list[float]] = {}
        for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
            trainer.recipe.training.batch_size = batch_size
            order = trainer.epoch_order(1)
            for variant in VARIANTS:  # warm-up: handles, autotuning, the allocator's pools
                with use(trainer, variant):
                    timed(trainer, [trainer.train_batch(i) for i in order[:3]])
            for r in range(args.rounds):
                chunk = order[r * args.steps : (r + 1) * args.steps]
                batches = [trainer.train_batch(i) for i in chunk]
                tokens = sum(b.n_tgt_tokens for b in batches)
                for variant in VARIANTS:
                    with use(trainer, variant):
                        seconds = timed(trainer, batches)
                    results.setdefault((variant, batch_size), []).append(tokens / seconds)
                    print(json.dumps({
                        "variant": variant, "batch_size": batch_size, "round": r + 1,
                        "steps": len(batches), "tgt_tokens_per_s": round(tokens / seconds),
                        "step_ms": round(1000 * seconds / len(batches), 2),
                    }), flush=True)  # fmt: skip
        print(f"\n{describe(trainer.device)}, torch {torch.__version__}: median target tokens/s")
        for (variant, batch_size), rates in results.items():
            print(f"  batch {batch_size:>4}  {variant:<20} {statistics.median(rates):>10,.0f}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
