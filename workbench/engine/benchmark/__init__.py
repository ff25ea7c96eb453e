"""Benchmarks of the engine: training throughput with model FLOPs and MFU, and decoding speed.

`bench_train` times the real `Trainer.train_step`; `bench_decode` times `Translator.translate`, the one
decode path. Numbers and how they were taken are in docs/benchmarks.md.
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
