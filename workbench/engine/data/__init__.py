"""Parallel corpora: built-in generated tasks, text files (plain or compressed) and Hugging Face datasets.

`corpus_sources` says where a recipe's `[data]` pairs come from, as streams (`sources.py`); `prepare.py`
turns them once into a memory-mapped token store in the corpus cache, which training reads. `load_corpus`
reads the same pairs into lists, for small corpora and tests. Pairs dropped on the way (empty side, too
long) are counted, never silently.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.engine.errors import UserError

if TYPE_CHECKING:  # the recipe reads this package's registry for its checks
    from workbench.engine.data.sources import PairSource
    from workbench.engine.recipe import DataConfig

Pair = tuple[str, str]

GENERATED_KINDS = ("dates", "numbers", "reverse", "copy", "sort")  # generated.PAIR_MAKERS


class CorpusError(UserError):
    """A corpus that cannot be used; the message names the file (and line) where relevant."""


@dataclass
class Corpus:
    train: list[Pair]
    valid: list[Pair]
    test: list[Pair]
    # split -> reason ("empty", "too_long") -> number of pairs dropped
    filtered: dict[str, dict[str, int]] = field(default_factory=dict)
    # How the splits were drawn (data.max_pairs, data.valid_fraction), one line each, for train.log.
    notes: list[str] = field(default_factory=list)

    def n_filtered(self) -> int:
        """Total number of pairs dropped over all splits."""
        return sum(sum(reasons.values()) for reasons in self.filtered.values())


class PairFilter:
    """Keeps pairs with two non-empty sides of at most `max_chars` characters and counts the others."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.dropped: dict[str, int] = {}

    def keep(self, pair: Pair) -> bool:
        """Whether to keep the pair; a dropped pair is counted under its reason."""
        src, tgt = pair
        if not src or not tgt:
            reason = "empty"
        elif len(src) > self.max_chars or len(tgt) > self.max_chars:
            reason = "too_long"
        else:
            return True
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        return False


@dataclass
class CorpusSources:
    """A recipe's splits as sources; `valid` is None when it is drawn from the training pairs."""

    train: PairSource
    valid: PairSource | None
    test: PairSource | None
    hold_out: bool  # valid is a seeded hold-out of the training pairs (a TSV corpus without a valid file)


def corpus_sources(cfg: DataConfig, seed: int) -> CorpusSources:
    """Where the recipe's pairs come from; a missing folder or file is a CorpusError before any is read."""
    build = DATA_SOURCES.get(cfg.kind)
    if build is None:
        raise CorpusError(f"unknown data.kind {cfg.kind!r}; expected one of {', '.join(DATA_SOURCES)}")
    return build(cfg, seed)


# The builders below import the modules that read pairs when called: those import Pair, Corpus and
# CorpusError from this package.


def _generated_sources(cfg: DataConfig, seed: int) -> CorpusSources:
    from workbench.engine.data import generated

    generated.pair_maker(cfg)  # an unknown language is refused now, before anything is prepared
    task = generated.GeneratedTask(cfg, seed)
    return CorpusSources(task.split("train"), task.split("valid"), task.split("test"), hold_out=False)


def _folder_sources(cfg: DataConfig, seed: int) -> CorpusSources:
    """dir/train.SRC and dir/train.TGT, dir/valid.* unless drawn from train, dir/test.* where present."""
    from workbench.engine.data.sources import ParallelText, find_file

    folder = Path(cfg.dir).expanduser()
    if not folder.is_dir():
        where = "" if folder.is_absolute() else f", under {Path.cwd()}"
        hint = (
            "" if "S2S_DATA" in os.environ else "; the built-in recipes find their corpora through $S2S_DATA"
        )
        raise CorpusError(f"{folder}: no such folder (data.dir{where}){hint}")

    def split(name: str) -> tuple[Path, Path]:
        return find_file(folder / f"{name}.{cfg.src}"), find_file(folder / f"{name}.{cfg.tgt}")

    test_files = split("test")
    present = [path.is_file() for path in test_files]
    if any(present) and not all(present):
        missing = test_files[present.index(False)]
        raise CorpusError(f"{missing}: no such file (the other side of the test set is present)")
    return CorpusSources(
        ParallelText(*split("train")),
        None if cfg.valid_fraction else ParallelText(*split("valid")),
        ParallelText(*test_files) if all(present) else None,
        hold_out=False,
    )


def _file_sources(cfg: DataConfig, seed: int) -> CorpusSources:
    from workbench.engine.data.sources import ParallelText, find_file

    def pair(src: str, tgt: str) -> ParallelText:
        return ParallelText(find_file(Path(src)), find_file(Path(tgt)))

    train = pair(cfg.train_src, cfg.train_tgt)
    valid = None if cfg.valid_fraction else pair(cfg.valid_src, cfg.valid_tgt)
    return CorpusSources(train, valid, None, hold_out=False)


def _tsv_sources(cfg: DataConfig, seed: int) -> CorpusSources:
    """A TSV file of pairs; without a valid file (and valid_fraction), a seeded hold-out of its pairs."""
    from workbench.engine.data.sources import TsvText, find_file

    own_valid = not cfg.valid_fraction
    valid = TsvText(find_file(Path(cfg.valid_tsv))) if own_valid and cfg.valid_tsv else None
    return CorpusSources(
        TsvText(find_file(Path(cfg.train_tsv))), valid, None, hold_out=own_valid and not cfg.valid_tsv
    )


def _hf_sources(cfg: DataConfig, seed: int) -> CorpusSources:
    from workbench.engine.data import hf

    return hf.dataset_sources(cfg)


# data.kind: name -> where its pairs come from. The recipe's checks read the names (recipe._CHOICES).
DATA_SOURCES: dict[str, Callable[[DataConfig, int], CorpusSources]] = {
    **dict.fromkeys(GENERATED_KINDS, _generated_sources),
    "folder": _folder_sources,
    "files": _file_sources,
    "tsv": _tsv_sources,
    "hf": _hf_sources,
}
FILE_KINDS = tuple(kind for kind in DATA_SOURCES if kind not in GENERATED_KINDS)  # corpora read from files


def load_corpus(cfg: DataConfig, seed: int) -> Corpus:
    """The recipe's pairs, read into lists (train as `data.max_pairs` and `data.valid_fraction` draw it)."""
    from workbench.engine.data.selection import TRAIN, VALID, select, source_hash

    sources = corpus_sources(cfg, seed)
    filters = {split: PairFilter(cfg.max_chars) for split in ("train", "valid", "test")}
    kept = [pair for block in sources.train.blocks() for pair in block if filters["train"].keep(pair)]
    hashes = None
    if sources.hold_out:
        import numpy as np

        hashes = np.array([source_hash(src) for src, _ in kept], dtype=np.uint64)
    selection = select(cfg, seed, len(kept), sources.train.name, sources.hold_out, hashes)
    train = [pair for pair, role in zip(kept, selection.roles) if role == TRAIN]
    valid = [pair for pair, role in zip(kept, selection.roles) if role == VALID]
    test: list[Pair] = []
    for split, source in (("valid", sources.valid), ("test", sources.test)):
        if source is not None:
            pairs = [pair for block in source.blocks() for pair in block if filters[split].keep(pair)]
            if not pairs:
                raise CorpusError(
                    f"{source.name}: no usable pairs left after dropping empty and over-long pairs"
                )
            valid, test = (pairs, test) if split == "valid" else (valid, pairs)
    filtered = {split: f.dropped for split, f in filters.items()}
    return Corpus(train, valid, test, filtered, selection.notes)
