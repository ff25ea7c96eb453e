"""Measurement code, apart from the product: training throughput with model FLOPs and MFU, decoding
speed, and the TUI's responsiveness while a trainer runs (ui_latency.py).

`bench_train` times the real `Trainer.train_step`; `bench_decode` times `Translator.translate`, the one
decode path. This package imports the engine and the TUI; neither imports it (an import-linter contract
in pyproject.toml). `s2s-bench bench` runs it; the numbers and the method are in docs/benchmarks.md.
"""

from .decode_bench import bench_decode, translator_from_recipe, translator_from_run
from .flops import ModelFlops, count_flops
from .peak import measure_peak, model_gemms
from .train_bench import bench_train

__all__ = [
    "ModelFlops",
    "bench_decode",
    "bench_train",
    "count_flops",
    "measure_peak",
    "model_gemms",
    "translator_from_recipe",
    "translator_from_run",
]
