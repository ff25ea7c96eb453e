"""Decoding speed through `Translator.translate`, the one decode path: latency of single sentences of
about 20 tokens, and the throughput of translating a whole valid set in batches.

Search time follows the output length, so the model matters: a trained run (`translator_from_run`)
gives real lengths. Without one (`translator_from_recipe`) the model has random weights, which
seldom choose EOS: there the maximum output length is set to the source length (ratio 1, offset 0),
so every search runs about as many steps as a trained model would on Multi30k (where target and
source lengths are alike), and beam search runs to that limit: a fair-to-pessimistic workload.
Every result reports the mean output length, so runs with different models can be read side by side.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from workbench.engine.data.cache import CorpusCache, cache_folder
from workbench.engine.data.prepare import prepare
from workbench.engine.devices import describe
from workbench.engine.recipe import Recipe
from workbench.engine.run_folder import RunFolder
from workbench.engine.session import TrainingSession
from workbench.engine.translator import Translator, decoding_model

LATENCY_SRC_TOKENS = 20


@dataclasses.dataclass
class DecodeSetup:
    """A translator to time and the source sentences of its valid set."""

    translator: Translator
    sources: list[str]
    weights: str  # "trained: <run> (<checkpoint>)" or "random"
    threads: int


@contextmanager
def translator_from_recipe(recipe: Recipe, device: str = "cpu") -> Iterator[DecodeSetup]:
    """A random-weight model of the recipe (tokenizers trained on its data in a temporary folder)."""
    folder = Path(tempfile.mkdtemp(prefix="s2s-bench-decode-"))
    try:
        run = RunFolder.create(folder, recipe, name="bench")
        prepared = TrainingSession(run, device).prepare()  # sets the recipe's thread count
        decoding = dataclasses.replace(recipe.decoding, max_length_ratio=1.0, max_length_offset=0)
        model = decoding_model(prepared.model, decoding.precision, prepared.device)  # as from_run does
        translator = Translator(model, prepared.tokenizers, decoding, prepared.device)
        sources = [src for src, _ in prepared.data.valid_pairs()]
        yield DecodeSetup(translator, sources, "random", torch.get_num_threads())
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def translator_from_run(
    run: str | Path,
    checkpoint: str = "best",
    device: str = "cpu",
    threads: int | None = None,
    precision: str | None = None,
) -> Iterator[DecodeSetup]:
    """A run's trained model and its recipe's valid set; threads and precision default to the recipe's."""
    folder = RunFolder.open(run)
    recipe = folder.recipe()
    threads = threads or recipe.training.threads
    if threads:
        torch.set_num_threads(threads)
    translator = Translator.from_run(folder, checkpoint, device, precision)
    cache = CorpusCache(cache_folder(folder.path.parent))
    sources = [src for src, _ in prepare(recipe, cache, folder.tokenizer_dir).valid_pairs()]
    yield DecodeSetup(translator, sources, f"trained: {folder.path} ({checkpoint})", torch.get_num_threads())


def latency_inputs(translator: Translator, sources: Sequence[str], n: int) -> list[str]:
    """The n sources whose tokenized length is nearest to 20 (exactly 20 where the set has enough)."""
    lengths = [len(translator.tokenizers.src.encode(s)) for s in sources]
    order = sorted(range(len(sources)), key=lambda i: (abs(lengths[i] - LATENCY_SRC_TOKENS), i))
    return [sources[i] for i in order[:n] if lengths[i] > 0]


def bench_decode(
    setup: DecodeSetup,
    beam_size: int = 5,
    latency_sentences: int = 50,
    batch_sentences: int | None = None,
    log: Any = None,
) -> dict[str, Any]:
    """Greedy and beam latency p50/p95 on ~20-token inputs and batch sentences/s on the valid set."""
    say = log or (lambda message: None)
    translator = setup.translator
    single = latency_inputs(translator, setup.sources, latency_sentences)
    batch = list(setup.sources[: batch_sentences or len(setup.sources)])
    result: dict[str, Any] = {
        "device": describe(translator.device),
        "threads": setup.threads,
        "torch": torch.__version__,
        "load_average": round(os.getloadavg()[0], 2),  # other processes slow every number
        "weights": setup.weights,
        "precision": translator.decoding.precision,
        "max_length": f"ceil(src * {translator.decoding.max_length_ratio:g}) + "
        f"{translator.decoding.max_length_offset}",
        "latency_sentences": len(single),
        "latency_src_tokens_mean": round(
            statistics.fmean(len(translator.tokenizers.src.encode(s)) for s in single), 2
        ),
        "batch_sentences": len(batch),
    }
    for beam in (1, beam_size):
        name = "greedy" if beam == 1 else f"beam{beam}"
        say(f"{name}: latency of {len(single)} single sentences")
        translator.translate(single[:1], beam)  # warm-up
        times, out_lengths = [], []
        for sentence in single:
            start = time.perf_counter()
            nbest = translator.translate([sentence], beam)[0]
            times.append(1000 * (time.perf_counter() - start))
            out_lengths.append(len(nbest[0].tgt_pieces))
        result[f"{name}_latency_ms_p50"] = round(percentile(times, 50), 2)
        result[f"{name}_latency_ms_p95"] = round(percentile(times, 95), 2)
        result[f"{name}_latency_out_tokens_mean"] = round(statistics.fmean(out_lengths), 2)
        say(f"{name}: translating {len(batch)} sentences in batches")
        start = time.perf_counter()
        translations = translator.translate(batch, beam)
        seconds = time.perf_counter() - start
        result[f"{name}_sentences_per_s"] = round(len(batch) / seconds, 2)
        result[f"{name}_batch_out_tokens_mean"] = round(
            statistics.fmean(len(t[0].tgt_pieces) for t in translations), 2
        )
    return result


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile with linear interpolation between order statistics (numpy's default)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
