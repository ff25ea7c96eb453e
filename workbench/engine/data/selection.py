"""Which of a file corpus's kept training pairs train and which validate: `data.max_pairs` (a seeded sample,
in file order), `data.valid_fraction` (a seeded share held out), or, for a TSV file without a valid file, a
seeded hold-out that keeps every pair of a source on one side.

The draws depend only on the seed and the number of pairs kept (and, for the hold-out, the sources), so
every run, resume and process of a recipe agrees without holding the pairs in memory.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

import numpy as np

from workbench.engine.data import CorpusError
from workbench.engine.recipe import DataConfig

UNUSED, TRAIN, VALID = 0, 1, 2
# When no valid file is given for a TSV corpus, this share of the training pairs (at most HOLD_OUT_MAX)
# becomes valid.
HOLD_OUT_SHARE = 0.05
HOLD_OUT_MAX = 1000


@dataclass
class Selection:
    roles: np.ndarray  # int8, one per kept pair of the training source: UNUSED, TRAIN or VALID
    notes: list[str]  # what was drawn, in words, for train.log

    def count(self, role: int) -> int:
        return int(np.count_nonzero(self.roles == role))


def source_hash(text: str) -> int:
    """A stable 64-bit hash of a source sentence (Python's own hash changes with every process)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def select(
    cfg: DataConfig, seed: int, n: int, name: str, hold_out: bool, hashes: np.ndarray | None = None
) -> Selection:
    """The role of each of the `n` kept training pairs; `hashes` (their sources') is needed for `hold_out`."""
    notes = []
    rng = random.Random(seed)
    roles = np.full(n, TRAIN, dtype=np.int8)
    kept = np.arange(n)
    if cfg.max_pairs and cfg.max_pairs < n:
        kept = np.array(sorted(rng.sample(range(n), cfg.max_pairs)), dtype=np.int64)
        roles[:] = UNUSED
        roles[kept] = TRAIN
        notes.append(
            f"data: a seeded sample of {cfg.max_pairs:,} of the {n:,} training pairs "
            f"(data.max_pairs = {cfg.max_pairs})"
        )
    if cfg.valid_fraction:
        m = len(kept)
        n_valid = round(cfg.valid_fraction * m)
        if not 0 < n_valid < m:
            raise CorpusError(
                f"{name}: data.valid_fraction = {cfg.valid_fraction:g} of {m} pair(s) leaves "
                f"{n_valid} for valid and {m - n_valid} for training; both need at least one"
            )
        roles[kept[sorted(rng.sample(range(m), n_valid))]] = VALID
        notes.append(
            f"data: valid is a seeded {cfg.valid_fraction:.0%} of the training pairs (data.valid_fraction = "
            f"{cfg.valid_fraction:g}): {m - n_valid:,} train, {n_valid:,} valid pairs; no valid file read"
        )
    elif hold_out:
        if len(kept) < 2:
            raise CorpusError(f"{name}: {len(kept)} usable pair(s) cannot be split into train and valid")
        assert hashes is not None
        _hold_out(roles, kept, hashes[kept], seed)
    if not np.any(roles == TRAIN):
        raise CorpusError(f"{name}: no usable pairs left for train after dropping empty and over-long ones")
    return Selection(roles, notes)


def _hold_out(roles: np.ndarray, kept: np.ndarray, hashes: np.ndarray, seed: int) -> None:
    """Mark a seeded min(1000, 5%) of the kept pairs VALID, whole sources at a time (Tatoeba repeats a
    source with several translations; splitting by source keeps valid unseen)."""
    wanted = max(1, min(HOLD_OUT_MAX, round(HOLD_OUT_SHARE * len(kept))))
    sources, which, per_source = np.unique(hashes, return_inverse=True, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(sources))
    enough = int(np.searchsorted(np.cumsum(per_source[order]), wanted)) + 1
    chosen = np.zeros(len(sources), dtype=bool)
    chosen[order[:enough]] = True
    roles[kept[chosen[which]]] = VALID
