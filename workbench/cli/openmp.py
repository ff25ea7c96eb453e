"""OpenMP thread binding, switched off before torch and sentencepiece load their OpenMP runtimes.

CPU tuning guides advise `OMP_PROC_BIND` and `OMP_PLACES`, and cluster modules often set them. Here
they put every training thread on one core: torch and sentencepiece each bring their own libgomp, the
first to load binds the main thread to the first place, and the second then sees only that core, so
torch's threads share it. `s2s-bench bench train recipes/bench-gru512.toml` ran at 156 target tokens/s
with `OMP_PROC_BIND=true` against 3,014–3,058 without (2 threads, docs/benchmarks.md).

s2s-bench chooses its thread count itself (`training.threads`; 0 takes the idle cores of those the
process may use), which a fixed binding to the first places would defeat anyway. So the command line
drops these variables for its own process and the trainers it starts, and says so. `taskset` or a
cluster's CPU set still limits which cores are used: the thread count follows them.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

BINDING_VARIABLES = ("OMP_PROC_BIND", "OMP_PLACES", "GOMP_CPU_AFFINITY")


def release_thread_binding(environ: MutableMapping[str, str] = os.environ) -> list[str]:
    """Remove the OpenMP binding variables from environ; returns the names removed.

    Must run before torch or sentencepiece is imported: their runtimes read the variables when they
    load. `OMP_PROC_BIND=false` binds nothing and is left alone.
    """
    dropped = [
        name
        for name in BINDING_VARIABLES
        if name in environ and not (name == "OMP_PROC_BIND" and environ[name].strip().lower() == "false")
    ]
    for name in dropped:
        del environ[name]
    return dropped
