"""Real corpora read from text files: a folder of `split.lang` files, explicit file paths, or TSV pairs.

Lines are stripped of surrounding whitespace (and a "\\r" from Windows line ends). A pair with an empty
side or a side longer than `max_chars` characters is dropped and counted in `Corpus.filtered`.
"""

from __future__ import annotations

import codecs
import os
import random
from collections import Counter
from pathlib import Path

from workbench.engine.data import Corpus, CorpusError, Pair
from workbench.engine.recipe import DataConfig

# The first bytes of compressed files, which are read as text only once decompressed.
COMPRESSED = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd"}
# When no valid TSV is given, this share of the training pairs (at most HOLD_OUT_MAX) becomes valid.
HOLD_OUT_SHARE = 0.05
HOLD_OUT_MAX = 1000


def read_folder(cfg: DataConfig, seed: int) -> Corpus:
    """`dir/train.SRC`, `train.TGT`, `valid.SRC`, `valid.TGT` (not read with data.valid_fraction), and
    `test.*` when both are present."""
    folder = Path(cfg.dir).expanduser()
    if not folder.is_dir():
        where = "" if folder.is_absolute() else f", under {Path.cwd()}"
        hint = (
            "" if "S2S_DATA" in os.environ else "; the built-in recipes find their corpora through $S2S_DATA"
        )
        raise CorpusError(f"{folder}: no such folder (data.dir{where}){hint}")

    def split(name: str) -> tuple[Path, Path]:
        return folder / f"{name}.{cfg.src}", folder / f"{name}.{cfg.tgt}"

    train, train_drop = read_parallel(*split("train"), cfg.max_chars)
    train, valid, notes = sample_and_split(cfg, seed, train, split("train")[0])
    valid_drop: dict[str, int] = {}
    if valid is None:
        valid, valid_drop = read_parallel(*split("valid"), cfg.max_chars)
    test: list[Pair] = []
    test_drop: dict[str, int] = {}
    test_files = split("test")
    present = [path.is_file() for path in test_files]
    if all(present):
        test, test_drop = read_parallel(*test_files, cfg.max_chars)
    elif any(present):
        missing = test_files[present.index(False)]
        raise CorpusError(f"{missing}: no such file (the other side of the test set is present)")
    filtered = {"train": train_drop, "valid": valid_drop, "test": test_drop}
    return Corpus(train, valid, test, filtered, notes)


def read_files(cfg: DataConfig, seed: int) -> Corpus:
    """Explicit paths `train_src`, `train_tgt`, `valid_src`, `valid_tgt` (not read with
    data.valid_fraction); no test set."""
    train, train_drop = read_parallel(Path(cfg.train_src), Path(cfg.train_tgt), cfg.max_chars)
    train, valid, notes = sample_and_split(cfg, seed, train, Path(cfg.train_src))
    valid_drop: dict[str, int] = {}
    if valid is None:
        valid, valid_drop = read_parallel(Path(cfg.valid_src), Path(cfg.valid_tgt), cfg.max_chars)
    return Corpus(train, valid, [], {"train": train_drop, "valid": valid_drop, "test": {}}, notes)


def read_tsv(cfg: DataConfig, seed: int) -> Corpus:
    """Tab-separated `source<TAB>target[<TAB>...]` lines; without `valid_tsv` (or data.valid_fraction)
    a seeded share is held out."""
    train, train_drop = read_tsv_pairs(Path(cfg.train_tsv), cfg.max_chars)
    train, valid, notes = sample_and_split(cfg, seed, train, Path(cfg.train_tsv))
    valid_drop: dict[str, int] = {}
    if valid is None and cfg.valid_tsv:
        valid, valid_drop = read_tsv_pairs(Path(cfg.valid_tsv), cfg.max_chars)
    elif valid is None:
        train, valid = hold_out(train, seed, Path(cfg.train_tsv))
    _require_pairs(train, Path(cfg.train_tsv), "train")
    _require_pairs(valid, Path(cfg.valid_tsv or cfg.train_tsv), "valid")
    return Corpus(train, valid, [], {"train": train_drop, "valid": valid_drop, "test": {}}, notes)


def sample_and_split(
    cfg: DataConfig, seed: int, pairs: list[Pair], path: Path
) -> tuple[list[Pair], list[Pair] | None, list[str]]:
    """The training pairs after data.max_pairs (a seeded sample, in file order), the valid pairs drawn
    from them by data.valid_fraction (None without it: valid comes from its own files), and what was done
    in words. The draws depend only on the seed and the pairs kept, so every run and resume agree."""
    notes = []
    rng = random.Random(seed)
    if cfg.max_pairs and cfg.max_pairs < len(pairs):
        kept = sorted(rng.sample(range(len(pairs)), cfg.max_pairs))
        notes.append(
            f"data: a seeded sample of {cfg.max_pairs:,} of the {len(pairs):,} training pairs "
            f"(data.max_pairs = {cfg.max_pairs})"
        )
        pairs = [pairs[i] for i in kept]
    if not cfg.valid_fraction:
        return pairs, None, notes
    n_valid = round(cfg.valid_fraction * len(pairs))
    if not 0 < n_valid < len(pairs):
        raise CorpusError(
            f"{path}: data.valid_fraction = {cfg.valid_fraction:g} of {len(pairs)} pair(s) leaves "
            f"{n_valid} for valid and {len(pairs) - n_valid} for training; both need at least one"
        )
    held = set(rng.sample(range(len(pairs)), n_valid))
    train = [pair for i, pair in enumerate(pairs) if i not in held]
    valid = [pair for i, pair in enumerate(pairs) if i in held]
    notes.append(
        f"data: valid is a seeded {cfg.valid_fraction:.0%} of the training pairs (data.valid_fraction = "
        f"{cfg.valid_fraction:g}): {len(train):,} train, {len(valid):,} valid pairs; no valid file read"
    )
    return train, valid, notes


def read_parallel(src_path: Path, tgt_path: Path, max_chars: int) -> tuple[list[Pair], dict[str, int]]:
    """Line-aligned source and target files as kept pairs and the count of dropped pairs per reason."""
    sources = read_lines(src_path)
    targets = read_lines(tgt_path)
    if len(sources) != len(targets):
        raise CorpusError(
            f"{src_path} has {len(sources)} lines but {tgt_path} has {len(targets)}; "
            "the two sides of a parallel corpus need one line per sentence"
        )
    filter_ = PairFilter(max_chars)
    stripped = zip(map(str.strip, sources), map(str.strip, targets), strict=True)
    pairs = [pair for pair in stripped if filter_.keep(pair)]
    _require_pairs(pairs, src_path, "")
    return pairs, filter_.dropped


def read_tsv_pairs(path: Path, max_chars: int) -> tuple[list[Pair], dict[str, int]]:
    """The first two columns of a TSV file as kept pairs, and the count of dropped pairs per reason."""
    filter_ = PairFilter(max_chars)
    pairs: list[Pair] = []
    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            filter_.keep(("", ""))  # a blank line is an empty pair: counted, not an error
            continue
        columns = line.split("\t", 2)
        if len(columns) < 2:
            raise CorpusError(f"{path}:{number}: no tab; each line must be 'source<TAB>target'")
        pair = (columns[0].strip(), columns[1].strip())
        if filter_.keep(pair):
            pairs.append(pair)
    return pairs, filter_.dropped


def read_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file, unstripped; CorpusError if it is missing, empty, not UTF-8, holds a
    NUL, is compressed or is not a regular file."""
    path = path.expanduser()
    if path.exists() and not path.is_file() and not path.is_dir():  # reading a pipe would wait for ever
        raise CorpusError(f"{path}: not a regular file (a pipe or a device); write the corpus to a file")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CorpusError(f"{path}: no such file") from None
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read it ({exc.strerror})") from None
    for magic, kind in COMPRESSED.items():
        if data.startswith(magic):
            raise CorpusError(f"{path}: a {kind}-compressed file, not text; decompress it first")
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        # One decode of the whole file is far faster than one per line; lines are only located on error.
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - data.rfind(b"\n", 0, exc.start)
        raise CorpusError(
            f"{path}:{line}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at byte {column} of the line)"
        ) from None
    nul = text.find("\0")
    if nul >= 0:  # valid UTF-8, but no sentence holds one: a binary file, or UTF-16 text
        line = text.count("\n", 0, nul) + 1
        raise CorpusError(
            f"{path}:{line}: a NUL character (a binary file, or text in UTF-16?); corpora are UTF-8 text"
        )
    if not text.strip():
        raise CorpusError(f"{path}: the file is empty")
    # split("\n"), not splitlines(): the latter also breaks on U+2028 and friends and would misalign sides.
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


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


def hold_out(pairs: list[Pair], seed: int, path: Path) -> tuple[list[Pair], list[Pair]]:
    """Split off a seeded min(1000, 5%) of the pairs as valid, keeping all pairs of a source on one side."""
    if len(pairs) < 2:
        raise CorpusError(f"{path}: {len(pairs)} usable pair(s) cannot be split into train and valid")
    wanted = max(1, min(HOLD_OUT_MAX, round(HOLD_OUT_SHARE * len(pairs))))
    # Tatoeba repeats a source with several translations; splitting by source keeps valid unseen.
    per_source = Counter(src for src, _ in pairs)
    sources = sorted(per_source)
    random.Random(seed).shuffle(sources)
    chosen: set[str] = set()
    held = 0
    for src in sources:
        if held >= wanted:
            break
        chosen.add(src)
        held += per_source[src]
    train = [pair for pair in pairs if pair[0] not in chosen]
    valid = [pair for pair in pairs if pair[0] in chosen]
    return train, valid


def _require_pairs(pairs: list[Pair], path: Path, split: str) -> None:
    if not pairs:
        where = f" for {split}" if split else ""
        raise CorpusError(f"{path}: no usable pairs left{where} after dropping empty and over-long ones")
