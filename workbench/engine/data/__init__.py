"""Parallel corpora: built-in generated tasks and real text files, split into train/valid/test.

`load_corpus` is the one entry point; it reads `DataConfig.kind` and returns a `Corpus`.
Pairs dropped on the way (empty side, too long) are counted in `Corpus.filtered`, never silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workbench.engine.recipe import DataConfig

from ..errors import UserError

Pair = tuple[str, str]

GENERATED_KINDS = ("dates", "numbers", "reverse", "copy", "sort")
FILE_KINDS = ("folder", "files", "tsv")


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


def load_corpus(cfg: DataConfig, seed: int) -> Corpus:
    """Build or read the corpus a recipe's `[data]` section describes."""
    # Imported here because both modules import Pair, Corpus and CorpusError from this package.
    from workbench.engine.data import files, generated

    if cfg.kind in GENERATED_KINDS:
        return generated.generate_corpus(cfg, seed)
    if cfg.kind == "folder":
        return files.read_folder(cfg, seed)
    if cfg.kind == "files":
        return files.read_files(cfg, seed)
    if cfg.kind == "tsv":
        return files.read_tsv(cfg, seed)
    kinds = ", ".join(GENERATED_KINDS + FILE_KINDS)
    raise CorpusError(f"unknown data.kind {cfg.kind!r}; expected one of {kinds}")
