"""Batches for training and decoding: length bucketing of sentence indices and padding into tensors.

`batch_indices` groups sentences of similar length so little compute is spent on padding;
`collate` turns token ids into a padded `Batch` with teacher-forcing inputs and outputs.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from workbench.engine.special_tokens import BOS, EOS, PAD

BATCH_UNITS = ("sentences", "tokens")
# Sorting happens within chunks of this many batches: enough to bucket well, few enough to stay random.
BATCHES_PER_CHUNK = 50


@dataclass
class Batch:
    src: Tensor  # (B, S) long, PAD after each sentence
    src_lengths: Tensor  # (B,) long, always on CPU (pack_padded_sequence wants it there)
    tgt_in: Tensor  # (B, T) long: BOS y, the decoder's teacher-forcing input
    tgt_out: Tensor  # (B, T) long: y EOS, what the decoder must predict
    indices: list[int]  # positions of the sentences in the corpus split
    n_src_tokens: int  # non-pad source tokens
    n_tgt_tokens: int  # non-pad target tokens, EOS included

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """The same batch with its token tensors on `device`; pinned first when copying to CUDA."""
        device = torch.device(device)
        if device == self.src.device:
            return self

        def move(tensor: Tensor) -> Tensor:
            if device.type == "cuda" and tensor.device.type == "cpu":
                tensor = tensor.pin_memory()
            return tensor.to(device, non_blocking=non_blocking)

        return Batch(
            src=move(self.src),
            src_lengths=self.src_lengths,
            tgt_in=move(self.tgt_in),
            tgt_out=move(self.tgt_out),
            indices=self.indices,
            n_src_tokens=self.n_src_tokens,
            n_tgt_tokens=self.n_tgt_tokens,
        )

    def __len__(self) -> int:
        return len(self.indices)


def batch_indices(
    src_lengths: Sequence[int] | np.ndarray,
    tgt_lengths: Sequence[int] | np.ndarray,
    batch_size: int,
    unit: str,
    seed: int,
    shuffle: bool = True,
) -> list[np.ndarray]:
    """Sentence indices grouped into batches of similar length; every index appears exactly once.

    unit "sentences": `batch_size` sentences a batch; unit "tokens": at most `batch_size` padded target
    tokens (longest target length x sentences) a batch, one sentence at least. Pass target lengths as
    they will be padded (with EOS). shuffle=True sorts within seeded random chunks of ~50 batches and
    shuffles the batch order; shuffle=False sorts everything, for validation and decoding. Planned from
    the two length arrays alone, with no Python object per sentence: one index array per batch.
    """
    if unit not in BATCH_UNITS:
        raise ValueError(f"batch unit must be one of {', '.join(BATCH_UNITS)}; got {unit!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    src = np.asarray(src_lengths, dtype=np.int64)
    tgt = np.asarray(tgt_lengths, dtype=np.int64)
    n = len(src)
    if len(tgt) != n:
        raise ValueError(f"{n} source lengths but {len(tgt)} target lengths")

    def by_length(idx: np.ndarray) -> np.ndarray:
        return idx[np.lexsort((src[idx], tgt[idx]))]  # by target length, then source length; stable

    if not shuffle:
        return _cut(by_length(np.arange(n)), tgt, batch_size, unit)
    rng = np.random.default_rng(seed)
    order = np.arange(n, dtype=np.int32 if n < 2**31 else np.int64)  # 4 bytes a sentence, not 8
    rng.shuffle(order)  # the draws and swaps of rng.permutation(n)
    if unit == "sentences":
        per_batch = batch_size
    else:
        mean_tgt = max(1.0, float(tgt.sum()) / max(1, n))
        per_batch = max(1, int(batch_size / mean_tgt))
    chunk = per_batch * BATCHES_PER_CHUNK
    batches: list[np.ndarray] = []
    for start in range(0, n, chunk):
        batches += _cut(by_length(order[start : start + chunk]), tgt, batch_size, unit)
    return [batches[i] for i in rng.permutation(len(batches))]


def _cut(order: np.ndarray, tgt_lengths: np.ndarray, batch_size: int, unit: str) -> list[np.ndarray]:
    """Cut indices sorted by target length into consecutive batches."""
    if unit == "sentences":
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    lengths = tgt_lengths[order]
    batches, start = [], 0
    while start < len(order):
        # Lengths only grow along `order`, so a batch of k sentences pads to k x its last one's length;
        # it can hold at most batch_size // (its first length) of them.
        most = max(1, batch_size // max(1, int(lengths[start])))
        candidates = lengths[start : start + most] * np.arange(1, min(most, len(order) - start) + 1)
        k = max(1, int(np.count_nonzero(candidates <= batch_size)))
        batches.append(order[start : start + k])
        start += k
    return batches


def collate(src_ids: list[list[int]], tgt_ids: list[list[int]], indices: Sequence[int]) -> Batch:
    """Pad source and target ids into a Batch: tgt_in = BOS y, tgt_out = y EOS, PAD elsewhere."""
    src, src_lengths = pad(src_ids)
    # One spare column: EOS goes after y in the output.
    tgt, tgt_lengths = pad(tgt_ids, extra=1)
    return framed(src, src_lengths, tgt, tgt_lengths, indices)


def framed(
    src: Tensor, src_lengths: Tensor, tgt: Tensor, tgt_lengths: Tensor, indices: Sequence[int]
) -> Batch:
    """The Batch of padded ids (targets with one spare column): BOS in front of y for the decoder's input,
    EOS after y for its output."""
    rows = torch.arange(len(tgt_lengths))
    tgt_out = tgt
    tgt_in = torch.empty_like(tgt)
    tgt_in[:, 0] = BOS
    tgt_in[:, 1:] = tgt[:, :-1]
    tgt_out[rows, tgt_lengths] = EOS
    return Batch(
        src=src,
        src_lengths=src_lengths,
        tgt_in=tgt_in,
        tgt_out=tgt_out,
        indices=[int(i) for i in indices],
        n_src_tokens=int(src_lengths.sum()),
        n_tgt_tokens=int(tgt_lengths.sum()) + len(tgt_lengths),
    )


def pad(sequences: list[list[int]], extra: int = 0) -> tuple[Tensor, Tensor]:
    """A (B, longest + extra) PAD-filled tensor holding the sequences left-aligned, and their lengths."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    width = (int(lengths.max()) if len(sequences) else 0) + extra
    padded = torch.full((len(sequences), width), PAD, dtype=torch.long)
    # One tensor from the flattened ids and one masked write, instead of a Python loop over rows.
    flat = torch.tensor(list(itertools.chain.from_iterable(sequences)), dtype=torch.long)
    padded[torch.arange(width) < lengths[:, None]] = flat
    return padded, lengths
