"""Encoding pairs into token ids, in worker processes when there are cores to spare. Kept apart from the
store and the trainer so that a worker imports only the tokenizers (not torch): it starts in a second."""

from __future__ import annotations

import concurrent.futures
import itertools
import multiprocessing
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from workbench.engine.data import Pair
from workbench.engine.tokenizers import TokenizerPair, load_tokenizers

Encoded = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]  # (lengths, ids) a side


def id_dtype(vocab_size: int) -> np.dtype:
    """The narrowest id type that holds a vocabulary: 2 bytes a token up to 65,536 pieces."""
    return np.dtype("<u2") if vocab_size <= 2**16 else np.dtype("<i4")


class Encoder:
    """Encodes blocks of pairs, in worker processes when there are several cores to use, in order."""

    def __init__(self, tokenizer_dir: Path, workers: int) -> None:
        self.tokenizer_dir, self.workers = tokenizer_dir, workers
        self.pool: concurrent.futures.ProcessPoolExecutor | None = None
        self.local = load_tokenizers(tokenizer_dir)

    def __enter__(self) -> Encoder:
        if self.workers > 1:
            # spawn, not fork: the trainer's process has torch's thread pools, which a fork would break.
            self.pool = concurrent.futures.ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(str(self.tokenizer_dir),),
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)

    def encode(self, pairs: list[Pair]) -> Encoded:
        return _encode_pairs(self.local, pairs)

    def map(self, blocks: Iterator[tuple[list[Pair], list[Pair], Any]]) -> Iterator[tuple]:
        """(train pairs, valid pairs, tag, their ids, their ids) for each block (a tag is passed through),
        in order; at most two blocks a worker in flight, so memory stays bounded."""
        if self.pool is None:
            for train, valid, tag in blocks:
                yield train, valid, tag, self.encode(train), self.encode(valid)
            return
        pending: deque = deque()
        for train, valid, tag in blocks:
            pending.append((train, valid, tag, self.pool.submit(_encode_in_worker, train, valid)))
            if len(pending) >= 2 * self.workers:
                train, valid, tag, future = pending.popleft()
                yield train, valid, tag, *future.result()
        while pending:
            train, valid, tag, future = pending.popleft()
            yield train, valid, tag, *future.result()


_WORKER_TOKENIZERS: TokenizerPair | None = None


def _start_worker(tokenizer_dir: str) -> None:
    global _WORKER_TOKENIZERS
    _WORKER_TOKENIZERS = load_tokenizers(Path(tokenizer_dir))


def _encode_in_worker(train: list[Pair], valid: list[Pair]):
    assert _WORKER_TOKENIZERS is not None
    return _encode_pairs(_WORKER_TOKENIZERS, train), _encode_pairs(_WORKER_TOKENIZERS, valid)


def _encode_pairs(tokenizers: TokenizerPair, pairs: list[Pair]) -> Encoded:
    """Each side's sentence lengths and flat ids (arrays: cheap to send back from a worker)."""
    encoded = []
    for side, texts in (("src", [s for s, _ in pairs]), ("tgt", [t for _, t in pairs])):
        tokenizer = getattr(tokenizers, side)
        rows = tokenizer.encode_many(texts) if texts else []
        lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        flat = np.fromiter(
            itertools.chain.from_iterable(rows),
            dtype=id_dtype(tokenizer.vocab_size),
            count=int(lengths.sum()),
        )
        encoded.append((lengths, flat))
    return encoded[0], encoded[1]
