"""A split's token ids on disk: per side, one flat array of ids (16-bit where the vocabulary fits) and one
of offsets, memory-mapped (fairseq's .bin/.idx layout). Every process of a run maps the same files, so
the corpus is in memory once, in the page cache, and a store opens in milliseconds.

Files of split S: `S.src.ids`, `S.src.offsets`, `S.tgt.ids`, `S.tgt.offsets` (raw little-endian arrays;
offsets are int64, one more than the sentences).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from workbench.engine.data.batching import Batch, framed
from workbench.engine.special_tokens import PAD

SIDES = ("src", "tgt")
OFFSET_DTYPE = np.dtype("<i8")


class StoreWriter:
    """Appends encoded sentences of one split to its files, a block at a time."""

    def __init__(self, folder: Path, split: str, dtypes: dict[str, np.dtype]) -> None:
        self.folder, self.split, self.dtypes = folder, split, dtypes
        self.files = {side: open(folder / f"{split}.{side}.ids", "wb") for side in SIDES}  # noqa: SIM115
        self.lengths: dict[str, list[np.ndarray]] = {side: [] for side in SIDES}
        self.sentences = 0
        self.tokens = {side: 0 for side in SIDES}

    def add(self, src: tuple[np.ndarray, np.ndarray], tgt: tuple[np.ndarray, np.ndarray]) -> None:
        """Append sentences, each side as (lengths, flat ids); the same number on both sides."""
        for side, (lengths, flat) in (("src", src), ("tgt", tgt)):
            flat.astype(self.dtypes[side], copy=False).tofile(self.files[side])
            self.lengths[side].append(lengths)
            self.tokens[side] += len(flat)
        self.sentences += len(src[0])

    def close(self) -> None:
        """Write the offsets and flush everything to the disk (a build is only committed after this)."""
        for side in SIDES:
            ids = self.files[side]
            ids.flush()
            os.fsync(ids.fileno())
            ids.close()
            lengths = np.concatenate(self.lengths[side]) if self.lengths[side] else np.zeros(0, np.int64)
            offsets = np.zeros(len(lengths) + 1, dtype=OFFSET_DTYPE)
            np.cumsum(lengths, out=offsets[1:])
            with open(self.folder / f"{self.split}.{side}.offsets", "wb") as file:
                offsets.tofile(file)
                file.flush()
                os.fsync(file.fileno())

    def abort(self) -> None:
        for file in self.files.values():
            file.close()


class TokenSplit:
    """The token ids of one split, both sides, and their lengths; `batch` pads a Batch from them."""

    def __init__(self, ids: dict[str, np.ndarray], offsets: dict[str, np.ndarray]) -> None:
        self.ids, self.offsets = ids, offsets
        self.lengths = {side: _lengths(offsets[side]) for side in SIDES}
        if len(self.lengths["src"]) != len(self.lengths["tgt"]):
            raise ValueError("the two sides of a token store hold different numbers of sentences")

    @classmethod
    def open(cls, folder: Path, split: str, dtypes: dict[str, np.dtype]) -> TokenSplit:
        """Map a split's files read-only."""
        ids = {side: _map(folder / f"{split}.{side}.ids", dtypes[side]) for side in SIDES}
        offsets = {side: _map(folder / f"{split}.{side}.offsets", OFFSET_DTYPE) for side in SIDES}
        return cls(ids, offsets)

    @classmethod
    def from_ids(cls, src: Sequence[Sequence[int]], tgt: Sequence[Sequence[int]]) -> TokenSplit:
        """A split held in memory (sentences encoded on the fly: evaluation files, tests)."""
        ids, offsets = {}, {}
        for side, rows in (("src", src), ("tgt", tgt)):
            lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
            offsets[side] = np.concatenate([[0], np.cumsum(lengths)]).astype(OFFSET_DTYPE)
            ids[side] = np.fromiter(itertools.chain.from_iterable(rows), np.int64, count=int(lengths.sum()))
        return cls(ids, offsets)

    def __len__(self) -> int:
        return len(self.lengths["src"])

    def sentence(self, side: str, i: int) -> list[int]:
        start, end = self.offsets[side][i], self.offsets[side][i + 1]
        return [int(x) for x in self.ids[side][start:end]]

    def tokens(self, side: str, indices: np.ndarray | Sequence[int]) -> int:
        """Non-pad tokens of these sentences (targets with their EOS)."""
        count = int(self.lengths[side][np.asarray(indices, dtype=np.int64)].sum())
        return count + (len(indices) if side == "tgt" else 0)

    def batch(self, indices: np.ndarray | Sequence[int]) -> Batch:
        """The padded Batch of these sentences, on the CPU."""
        idx = np.asarray(indices, dtype=np.int64)
        src, src_lengths = self._padded("src", idx, extra=0)
        tgt, tgt_lengths = self._padded("tgt", idx, extra=1)  # a spare column for EOS
        return framed(src, src_lengths, tgt, tgt_lengths, idx)

    def _padded(self, side: str, idx: np.ndarray, extra: int) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = self.lengths[side][idx].astype(np.int64)
        width = (int(lengths.max()) if len(idx) else 0) + extra
        columns = np.arange(width)
        inside = columns[None, :] < lengths[:, None]
        positions = self.offsets[side][idx][:, None] + columns[None, :]
        padded = np.full((len(idx), width), PAD, dtype=np.int64)
        padded[inside] = self.ids[side][positions[inside]]
        return torch.from_numpy(padded), torch.from_numpy(lengths)


def _lengths(offsets: np.ndarray) -> np.ndarray:
    """Sentence lengths from offsets, in 2 bytes each where they fit (as they do under data.max_chars),
    else 4: these arrays are the trainer's only memory that grows with the corpus, made without a
    temporary array of 8 bytes a sentence."""
    n = max(0, len(offsets) - 1)
    longest = int(np.max(offsets[1:] - offsets[:-1], initial=0)) if n <= 1 << 16 else _longest(offsets)
    lengths = np.empty(n, dtype=np.uint16 if longest < 2**16 - 1 else np.int32)  # room for EOS's +1
    np.subtract(offsets[1:], offsets[:-1], out=lengths, casting="unsafe")
    return lengths


def _longest(offsets: np.ndarray, block: int = 1 << 20) -> int:
    return max(int(np.max(np.diff(offsets[i : i + block + 1]))) for i in range(0, len(offsets) - 1, block))


def _map(path: Path, dtype: np.dtype) -> np.ndarray:
    if path.stat().st_size == 0:  # mmap cannot map an empty file
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r")
