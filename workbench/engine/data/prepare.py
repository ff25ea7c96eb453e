"""Preparing a corpus: read it as a stream, filter it, train the tokenizers on a seeded sample, encode it
over every usable core and write the token store, once, into the corpus cache (`cache.py`).

Phases, each reported with counts, rate and time left: reading (every pair, filtered and counted), the
tokenizer (a bounded sample: memory does not grow with the corpus), encoding (a stream again). A run
brings its own tokenizer when it has one (a resume, a copied run folder): the ids are then its tokenizer's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import random
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workbench.engine.data import CorpusError, CorpusSources, Pair, PairFilter, corpus_sources
from workbench.engine.data.cache import CorpusCache, entry_key
from workbench.engine.data.encoding import Encoded, Encoder, id_dtype
from workbench.engine.data.progress import Report
from workbench.engine.data.selection import TRAIN, VALID, select, source_hash
from workbench.engine.data.sources import PairSource
from workbench.engine.data.store import SIDES, StoreWriter, TokenSplit
from workbench.engine.recipe import Recipe, TokenizerConfig
from workbench.engine.special_tokens import UNK
from workbench.engine.tokenizers import (
    TokenizerPair,
    load_tokenizers,
    train_tokenizers,
    vocabulary_summary,
)

BLOCK_PAIRS = 20_000  # pairs encoded together: one task for a worker process
POOL_FROM_PAIRS = 200_000  # fewer pairs encode faster in this process than worker processes start
VALID_TEXT = "valid.jsonl"


@dataclass
class PreparedCorpus:
    """A whole cache entry, opened: the token store's splits, its tokenizers and what was done, in words."""

    folder: Path
    manifest: dict[str, Any]
    train: TokenSplit
    valid: TokenSplit
    built: bool = False  # prepared by this call, not found in the cache

    @property
    def key(self) -> str:
        return self.manifest["key"]

    @property
    def tokenizer_dir(self) -> Path:
        return self.folder / "tokenizer"

    @property
    def notes(self) -> list[str]:
        """train.log's lines on the data: drops, draws, the tokenizer's sample and coverage, the counts."""
        return self.manifest["notes"]

    @property
    def filtered(self) -> dict[str, dict[str, int]]:
        return self.manifest["filtered"]

    def valid_pairs(self, n: int = 0) -> list[Pair]:
        """The first n valid pairs as text (all with n = 0), for scoring decoded sentences."""
        pairs = []
        with open(self.folder / VALID_TEXT, encoding="utf-8") as file:
            for line in itertools.islice(file, n or None):
                src, tgt = json.loads(line)
                pairs.append((src, tgt))
        return pairs


def prepare(
    recipe: Recipe,
    cache: CorpusCache,
    tokenizer_dir: Path | None = None,
    report: Report = lambda phase, done, total, fraction: None,
    workers: int = 1,
) -> PreparedCorpus:
    """The recipe's corpus, prepared: from the cache, or built into it now.

    `tokenizer_dir`: a run's own tokenizer, if it has one; the entry's ids are then that tokenizer's.
    `workers`: processes that encode (the usable cores).
    """
    sources = corpus_sources(recipe.data, recipe.seed)
    fields = {
        "data": asdict(recipe.data),
        "seed": recipe.seed,
        "sources": [s.identity() if s else None for s in (sources.train, sources.valid)],
    }
    given = tokenizer_hash(tokenizer_dir) if tokenizer_dir is not None else None
    key = entry_key({**fields, "tokenizer": asdict(recipe.tokenizer)})
    if given is not None:
        manifest = cache.check(key)
        if manifest is None or manifest["tokenizer_hash"] != given:
            key = entry_key({**fields, "tokenizer_files": given})

    built = []

    def build(folder: Path) -> dict[str, Any]:
        built.append(folder)
        return Preparation(recipe, sources, folder, report, workers).run(tokenizer_dir)

    def waiting(message: str) -> None:
        report(f"waiting: {message}", 0, None, None)

    manifest = cache.build(key, build, on_wait=waiting)
    return dataclasses.replace(open_entry(cache.path(key), manifest), built=bool(built))


def open_entry(folder: Path, manifest: dict[str, Any]) -> PreparedCorpus:
    dtypes = {side: np.dtype(manifest["dtypes"][side]) for side in SIDES}
    return PreparedCorpus(
        folder,
        manifest,
        TokenSplit.open(folder, "train", dtypes),
        TokenSplit.open(folder, "valid", dtypes),
    )


def tokenizer_hash(folder: Path) -> str:
    """A digest of a tokenizer folder's files: two runs with equal digests encode alike."""
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


class Reservoir:
    """A seeded uniform sample of at most `size` pairs of a stream (0: all), kept with their positions:
    every pair, in order, while the stream is no longer (Vitter's algorithm R, drawn a block at a time)."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size or None
        self.pairs: list[Pair] = []
        self.positions: list[int] = []
        self.seen = 0
        self.rng = np.random.default_rng(seed)

    @property
    def complete(self) -> bool:
        """Whether every pair of the stream is held."""
        return len(self.positions) == self.seen

    def add(self, block: list[Pair]) -> None:
        room = len(block) if self.size is None else max(0, self.size - len(self.pairs))
        self.pairs += block[:room]
        self.positions += range(self.seen, self.seen + min(room, len(block)))
        start = self.seen + min(room, len(block))
        rest = block[room:]
        if rest:  # pair i replaces a uniformly drawn slot of 0..i, if that slot is in the sample
            slots = (self.rng.random(len(rest)) * np.arange(start + 1, start + len(rest) + 1)).astype(
                np.int64
            )
            for k in np.flatnonzero(slots < self.size):
                self.pairs[slots[k]], self.positions[slots[k]] = rest[k], start + int(k)
        self.seen += len(block)

    def sample(self) -> list[tuple[Pair, int]]:
        """The sample in stream order, each pair with its position."""
        return sorted(zip(self.pairs, self.positions), key=lambda item: item[1])


def sample_pairs(cfg: TokenizerConfig) -> int:
    """How many training pairs the tokenizers are trained on at most (0: all): each tokenizer sees at most
    `sample_sentences` sentences, so a joint one takes half as many pairs."""
    return cfg.sample_sentences // 2 if cfg.joint else cfg.sample_sentences


class Preparation:
    """One build of a cache entry, phase by phase."""

    def __init__(
        self, recipe: Recipe, sources: CorpusSources, folder: Path, report: Report, workers: int
    ) -> None:
        self.recipe, self.sources, self.folder = recipe, sources, folder
        self.report, self.workers = report, workers
        self.cfg = recipe.data
        self.filtered: dict[str, dict[str, int]] = {"train": {}, "valid": {}}
        self.notes: list[str] = []
        # The tokenizer's sample, drawn while the corpus is read: all of a corpus that fits (which is then
        # read once), else a seeded sample, usable as it is where every kept pair trains.
        self.sample_limit = sample_pairs(recipe.tokenizer)
        self.reservoir = Reservoir(self.sample_limit, recipe.seed)
        cfg = self.cfg
        self.all_train = not (cfg.max_pairs or cfg.valid_fraction or sources.hold_out)

    def run(self, tokenizer_dir: Path | None) -> dict[str, Any]:
        n, hashes = self.read()
        selection = select(
            self.cfg, self.recipe.seed, n, self.sources.train.name, self.sources.hold_out, hashes
        )
        self.notes += selection.notes
        roles = selection.roles
        tokenizers, sample = self.tokenizers(roles, tokenizer_dir)
        counts, unk = self.encode(tokenizers, roles)
        for split in ("train", "valid"):
            for reason, count in self.filtered[split].items():
                if count:
                    self.notes.insert(0, f"data: dropped {count} {split} pairs ({reason})")
            if counts[f"{split}_empty_ids"]:
                self.notes.append(
                    f"data: dropped {counts[f'{split}_empty_ids']} {split} pairs that tokenize to nothing"
                )
        if sample is not None:
            self.notes.append(vocabulary_summary(tokenizers, sample, unk))
        self.notes.append(f"data: {counts['train']:,} train, {counts['valid']:,} valid pairs")
        return {
            "label": self.label(),
            "recipe_data": asdict(self.cfg),
            "tokenizer": asdict(self.recipe.tokenizer),
            "tokenizer_hash": tokenizer_hash(self.folder / "tokenizer"),
            "dtypes": {
                "src": id_dtype(tokenizers.src.vocab_size).str,
                "tgt": id_dtype(tokenizers.tgt.vocab_size).str,
            },
            "pairs": {"train": counts["train"], "valid": counts["valid"], "read": n},
            "tokens": counts["tokens"],
            "filtered": self.filtered,
            "notes": self.notes,
        }

    def label(self) -> str:
        """What the entry holds, in a few words: the corpus's place and the tokenizer."""
        cfg, tok = self.cfg, self.recipe.tokenizer
        where = Path(self.sources.train.name).parent.name if self.cfg.kind in ("folder", "files") else ""
        corpus = where or cfg.dataset or cfg.train_tsv or cfg.kind
        vocab = f"{tok.kind} {tok.vocab_size}" + (" joint" if tok.joint else "")
        return f"{corpus} {cfg.src}-{cfg.tgt}, {vocab}"

    # Phases -------------------------------------------------------------------------------------------
    def read(self) -> tuple[int, np.ndarray | None]:
        """Pass one: count the kept training pairs (and hash their sources for a hold-out)."""
        source = self.sources.train
        keep = PairFilter(self.cfg.max_chars)
        hashes: list[np.ndarray] = []
        n = 0
        for kept in self._kept(source, keep):
            n += len(kept)
            self.reservoir.add(kept)
            if self.sources.hold_out:
                hashes.append(np.fromiter((source_hash(s) for s, _ in kept), np.uint64, len(kept)))
            self.report("reading", n, None, source.fraction())
        self.filtered["train"] = keep.dropped
        if not self.sources.hold_out:
            return n, None
        return n, np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)

    def tokenizers(self, roles: np.ndarray, given: Path | None) -> tuple[TokenizerPair, list[Pair] | None]:
        """The run's own tokenizer, or one trained on a seeded sample of the training pairs."""
        target = self.folder / "tokenizer"
        if given is not None:
            shutil.copytree(given, target)
            return load_tokenizers(target), None
        n_train = int(np.count_nonzero(roles == TRAIN))
        limit = self.sample_limit
        if self.reservoir.complete or self.all_train:  # drawn while reading
            sample = [pair for pair, i in self.reservoir.sample() if roles[i] == TRAIN]
        else:  # which pairs train was known only once they were counted: draw them now
            positions = np.flatnonzero(roles == TRAIN)
            if limit and n_train > limit:
                chosen = sorted(random.Random(self.recipe.seed).sample(range(n_train), limit))
                positions = positions[chosen]
            wanted = np.zeros(len(roles), dtype=bool)
            wanted[positions] = True
            sample = [pair for pair, want in zip(self._pairs("sampling for the tokenizer"), wanted) if want]
        if not self.reservoir.complete:
            self.reservoir.pairs = []  # a sample: not needed once the tokenizer has its own list
        self.report(f"tokenizer: training on {len(sample):,} pairs", 0, None, None)
        start = time.monotonic()
        tokenizers = train_tokenizers(self.recipe.tokenizer, sample, target, self.recipe.seed)
        self.notes.append(
            f"tokenizer: trained on {len(sample):,} of the {n_train:,} training pairs "
            f"(tokenizer.sample_sentences = {self.recipe.tokenizer.sample_sentences}) in "
            f"{time.monotonic() - start:.0f} s"
        )
        return tokenizers, sample

    def encode(
        self, tokenizers: TokenizerPair, roles: np.ndarray
    ) -> tuple[dict[str, Any], tuple[float, float]]:
        """Pass three: encode the kept pairs into the store's train and valid splits."""
        dtypes = {side: id_dtype(getattr(tokenizers, side).vocab_size) for side in SIDES}
        writers = {split: StoreWriter(self.folder, split, dtypes) for split in ("train", "valid")}
        counts: dict[str, Any] = {"train_empty_ids": 0, "valid_empty_ids": 0}
        unk = {side: [0, 0] for side in SIDES}
        total = len(roles)
        with (
            open(self.folder / VALID_TEXT, "w", encoding="utf-8") as valid_text,
            Encoder(self.folder / "tokenizer", self.workers if total >= POOL_FROM_PAIRS else 1) as encoder,
        ):

            def write(split: str, pairs: list[Pair], encoded: Encoded) -> None:
                (src_lengths, src), (tgt_lengths, tgt) = encoded
                kept = (src_lengths > 0) & (tgt_lengths > 0)
                counts[f"{split}_empty_ids"] += len(pairs) - int(kept.sum())
                if not kept.all():
                    src, tgt = src[np.repeat(kept, src_lengths)], tgt[np.repeat(kept, tgt_lengths)]
                    src_lengths, tgt_lengths = src_lengths[kept], tgt_lengths[kept]
                writers[split].add((src_lengths, src), (tgt_lengths, tgt))
                if split == "train":
                    for side, flat in (("src", src), ("tgt", tgt)):
                        unk[side][0] += int(np.count_nonzero(flat == UNK))
                        unk[side][1] += len(flat)
                else:
                    for pair in pairs:
                        valid_text.write(json.dumps(pair, ensure_ascii=False) + "\n")

            for train, valid, done, train_ids, valid_ids in encoder.map(self._by_role(roles)):
                for split, pairs, ids in (("train", train, train_ids), ("valid", valid, valid_ids)):
                    if pairs:
                        write(split, pairs, ids)
                self.report("encoding", done, total, done / max(total, 1))
            if self.sources.valid is not None:
                keep = PairFilter(self.cfg.max_chars)
                for kept in self._kept(self.sources.valid, keep):
                    write("valid", kept, encoder.encode(kept))
                self.filtered["valid"] = keep.dropped
        for writer in writers.values():
            writer.close()
        for split, writer in writers.items():
            counts[split] = writer.sentences
            if not writer.sentences:
                name = (
                    self.sources.valid.name
                    if split == "valid" and self.sources.valid
                    else self.sources.train.name
                )
                raise CorpusError(
                    f"{name}: no usable pairs left for {split} after dropping empty and over-long ones"
                )
        counts["tokens"] = {side: writers["train"].tokens[side] for side in SIDES}
        share = tuple(100 * unk[side][0] / max(1, unk[side][1]) for side in SIDES)
        return counts, share  # type: ignore[return-value]

    # Streams ------------------------------------------------------------------------------------------
    def _by_role(self, roles: np.ndarray) -> Iterator[tuple[list[Pair], list[Pair], int]]:
        """The kept training pairs in blocks, each split into those that train and those that validate
        (pairs that do neither, left out by data.max_pairs, are skipped), with the pairs passed so far."""
        pairs, start = self._pairs(), 0
        while block := list(itertools.islice(pairs, BLOCK_PAIRS)):
            block_roles = roles[start : start + len(block)]
            start += len(block)
            yield (
                [pair for pair, role in zip(block, block_roles) if role == TRAIN],
                [pair for pair, role in zip(block, block_roles) if role == VALID],
                start,
            )

    def _kept(self, source: PairSource, keep: PairFilter) -> Iterator[list[Pair]]:
        for block in source.blocks():
            yield [pair for pair in block if keep.keep(pair)]

    def _pairs(self, phase: str = "") -> Iterator[Pair]:
        """The kept training pairs in order: from memory when they all fit, else read again (reported as
        `phase`, if given)."""
        if self.reservoir.complete:
            yield from (pair for pair, _ in self.reservoir.sample())
            return
        source = self.sources.train
        done = 0
        for kept in self._kept(source, PairFilter(self.cfg.max_chars)):
            yield from kept
            done += len(kept)
            if phase:
                self.report(phase, done, None, source.fraction())
