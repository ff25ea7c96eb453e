"""Hugging Face datasets as a corpus (data.kind = "hf"): a dataset written by `save_to_disk`, a folder of
parquet files named by split, or a hub name. Rows are read in Arrow batches; nothing is held whole."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from workbench.engine.data import CorpusError, CorpusSources, Pair
from workbench.engine.data.sources import PairSource, file_identity
from workbench.engine.recipe import DataConfig

ROWS_PER_BATCH = 10_000


class ArrowSplit(PairSource):
    """One split of a dataset: its Arrow record batches, and the two columns that make a pair."""

    def __init__(self, cfg: DataConfig, name: str, files: list[Path], batches, rows: int, columns) -> None:
        self.cfg, self.name, self.files, self.rows = cfg, name, files, rows
        self._batches, self.columns, self.done = batches, columns, 0

    def identity(self) -> list[Any]:
        return [file_identity(path) for path in self.files]

    def fraction(self) -> float:
        return min(1.0, self.done / self.rows) if self.rows else 0.0

    def blocks(self) -> Iterator[list[Pair]]:
        cfg = self.cfg
        self.done = 0
        for batch in self._batches():
            if self.columns == ("translation",):
                # A null row is an empty pair: dropped and counted, as a blank line of a text file is.
                rows = (row or {} for row in batch.column("translation").to_pylist())
                pairs = [(row.get(cfg.src), row.get(cfg.tgt)) for row in rows]
            else:
                src, tgt = (batch.column(c).to_pylist() for c in self.columns)
                pairs = list(zip(src, tgt))
            self.done += len(pairs)
            yield [(_text(s).strip(), _text(t).strip()) for s, t in pairs]


def dataset_sources(cfg: DataConfig) -> CorpusSources:
    """The train and valid splits of the dataset `data.dataset` names."""
    path = Path(cfg.dataset).expanduser()
    splits = _parquet_splits(cfg, path) if path.is_dir() and not _saved(path) else _dataset_splits(cfg, path)
    for wanted in (cfg.train_split, *(() if cfg.valid_fraction else (cfg.valid_split,))):
        if wanted not in splits:
            raise CorpusError(
                f"{cfg.dataset}: no split {wanted!r} (it has {', '.join(sorted(splits)) or 'none'}); set "
                "data.train_split and data.valid_split, or data.valid_fraction"
            )
    train = _split(cfg, splits, cfg.train_split)
    valid = None if cfg.valid_fraction else _split(cfg, splits, cfg.valid_split)
    return CorpusSources(train, valid, None, hold_out=False)


def _split(cfg: DataConfig, splits: dict, name: str) -> ArrowSplit:
    files, batches, rows, schema = splits[name]
    label = f"{cfg.dataset} [{name}]"
    if bool(cfg.src_column) != bool(cfg.tgt_column):
        side, other = ("src", "tgt") if cfg.src_column else ("tgt", "src")
        raise CorpusError(
            f"{label}: data.{side}_column = {cfg.src_column or cfg.tgt_column!r} but no "
            f"data.{other}_column; name both text columns"
        )
    columns = (cfg.src_column, cfg.tgt_column) if cfg.src_column else ("translation",)
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise CorpusError(
            f"{label}: no column {missing[0]!r} (it has {', '.join(schema.names)}); a dataset needs a "
            "'translation' column or data.src_column and data.tgt_column naming two text columns"
        )
    if columns == ("translation",):
        _check_languages(cfg, label, schema.field("translation").type)
    return ArrowSplit(cfg, label, files, batches, rows, columns)


def _check_languages(cfg: DataConfig, label: str, kind: Any) -> None:
    """The translation column holds the recipe's two languages: told from the schema, before any row."""
    import pyarrow as pa

    languages = [field.name for field in kind] if pa.types.is_struct(kind) else []
    if cfg.src not in languages or cfg.tgt not in languages:
        has = f"the languages {', '.join(languages)}" if languages else f"{kind} values, not languages"
        raise CorpusError(
            f"{label}: the translation column has {has}, not data.src = {cfg.src!r} and "
            f"data.tgt = {cfg.tgt!r}"
        )


def _saved(path: Path) -> bool:
    """Whether a folder holds a dataset written by `save_to_disk`."""
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def _parquet_splits(cfg: DataConfig, folder: Path) -> dict:
    """The splits of a folder of parquet files, or of its subfolder that data.dataset_config names."""
    pq = _module("pyarrow.parquet", "pyarrow")
    if cfg.dataset_config and (folder / cfg.dataset_config).is_dir():
        folder = folder / cfg.dataset_config
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.rglob("*.parquet")):
        found.setdefault(_split_name(path), []).append(path)
    if not found:
        raise CorpusError(
            f"{folder}: neither a dataset written by save_to_disk nor a folder of parquet files"
        )
    splits = {}
    for split, paths in found.items():
        places = sorted({str(path.parent.relative_to(folder)) for path in paths})
        if len(places) > 1:  # the hub's layout for a dataset of several configs: one folder each
            raise CorpusError(
                f"{folder}: {split} files in {len(places)} folders ({', '.join(places)}); set "
                "data.dataset_config to the one to read"
            )
        files = [_parquet_file(pq, path) for path in paths]

        def batches(files=files, paths=paths):
            for file, path in zip(files, paths):
                try:
                    yield from file.iter_batches(batch_size=ROWS_PER_BATCH)
                except Exception as exc:  # a damaged page behind a whole footer: OSError, ArrowInvalid...
                    raise CorpusError(f"{path}: not a readable parquet file ({_one_line(exc)})") from None

        rows = sum(file.metadata.num_rows for file in files)
        splits[split] = (paths, batches, rows, files[0].schema_arrow)
    return splits


def _split_name(path: Path) -> str:
    """The split a parquet file holds: its name says (`train-00000-of-00002.parquet`, `validation.parquet`),
    or its folder does, as in the hub's converted datasets (`train/0000.parquet`)."""
    name = path.stem.split("-")[0]
    return path.parent.name if name.isdigit() else name


def _parquet_file(pq: Any, path: Path) -> Any:
    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # pyarrow.lib.ArrowInvalid and friends: a damaged or foreign file
        raise CorpusError(f"{path}: not a readable parquet file ({_one_line(exc)})") from None


def _dataset_splits(cfg: DataConfig, path: Path) -> dict:
    """The splits of a dataset written by `save_to_disk`, or of one the hub names."""
    if not path.exists() and not _hub_name(cfg.dataset):
        raise CorpusError(f"{path}: no such folder (data.dataset)")
    datasets = _module("datasets", "datasets")
    datasets.disable_progress_bars()
    try:
        if path.exists():
            loaded = datasets.load_from_disk(str(path))
        else:
            loaded = datasets.load_dataset(cfg.dataset, cfg.dataset_config or None)
    except FileNotFoundError as exc:
        raise CorpusError(f"{cfg.dataset}: no such dataset ({_one_line(exc)})") from None
    except Exception as exc:  # the hub unreachable, a damaged folder...: datasets raises many kinds
        raise CorpusError(
            f"{cfg.dataset}: cannot load the dataset ({type(exc).__name__}: {_one_line(exc)})"
        ) from None
    if isinstance(loaded, datasets.Dataset):
        loaded = {cfg.train_split: loaded}
    splits = {}
    for split, ds in loaded.items():
        arrow = ds.with_format("arrow")

        def batches(arrow=arrow):
            yield from arrow.iter(batch_size=ROWS_PER_BATCH)

        files = [Path(f["filename"]) for f in ds.cache_files]
        splits[split] = (files, batches, ds.num_rows, ds.data.schema)
    return splits


def _hub_name(name: str) -> bool:
    """Whether `data.dataset` can name a hub dataset ("wmt14", "owner/name") rather than only a folder."""
    return not name.startswith(("/", ".", "~")) and name.count("/") <= 1


def _module(name: str, package: str) -> Any:
    """An optional package's module, or a CorpusError saying what to install."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise CorpusError(
            f"data.kind = 'hf' reads datasets with the `{package}` package: pip install 's2s-bench[hf]'"
        ) from None


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line: an error is one line on the terminal, whatever a library says."""
    return " ".join(str(exc).split()).rstrip(".")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)
