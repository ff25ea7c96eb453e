"""Hugging Face datasets as a corpus (data.kind = "hf"): a dataset written by `save_to_disk`, or a folder
of parquet files named by split; pairs from a `translation` column or from two text columns. Each dataset
here is written by the test itself; nothing goes to the network."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import Dataset, DatasetDict, Features, Translation, Value
from test_compressed_corpora import refusal

from workbench.cli.main import main
from workbench.engine.data import CorpusError, load_corpus
from workbench.engine.recipe import DataConfig

TRAIN = [("one two", "un deux"), ("three four", "trois quatre"), ("five six", "cinq six"), ("seven", "sept")]
VALID = [("one four", "un quatre")]


def translations(pairs, languages=("en", "fr")) -> Dataset:
    """A dataset of `pairs` in a `translation` column, typed as the hub's translation datasets are."""
    rows = [dict(zip(languages, pair)) for pair in pairs]
    features = Features({"id": Value("string"), "translation": Translation(languages=list(languages))})
    ids = [str(i) for i in range(len(rows))]
    return Dataset.from_dict({"id": ids, "translation": rows}, features=features)


def saved(folder: Path, **splits: Dataset) -> Path:
    """A DatasetDict of `splits` written with save_to_disk into `folder`."""
    DatasetDict(splits).save_to_disk(str(folder))
    return folder


def parquet(folder: Path, shards: dict[str, list[list[tuple[str, str]]]]) -> Path:
    """A folder of parquet files with the text columns `source` and `target`, named as the hub names
    them: split-00000-of-00002.parquet..."""
    folder.mkdir(parents=True)
    for split, parts in shards.items():
        for i, pairs in enumerate(parts):
            columns = {
                "source": [s for s, _ in pairs],
                "target": [t for _, t in pairs],
                "n": range(len(pairs)),
            }
            pq.write_table(pa.table(columns), folder / f"{split}-{i:05d}-of-{len(parts):05d}.parquet")
    return folder


def hf(dataset: Path | str, **keys) -> DataConfig:
    return DataConfig(kind="hf", dataset=str(dataset), src="en", tgt="fr", **keys)


def test_a_saved_dataset_dict_with_a_translation_column_gives_its_pairs(tmp_path):
    folder = saved(tmp_path / "ds", train=translations(TRAIN), validation=translations(VALID))
    corpus = load_corpus(hf(folder), seed=1)
    assert corpus.train == TRAIN and corpus.valid == VALID and corpus.test == []
    assert corpus.n_filtered() == 0


def test_the_translation_column_is_read_in_the_direction_the_recipe_names(tmp_path):
    folder = saved(tmp_path / "ds", train=translations(TRAIN), validation=translations(VALID))
    corpus = load_corpus(DataConfig(kind="hf", dataset=str(folder), src="fr", tgt="en"), seed=1)
    assert corpus.train == [(t, s) for s, t in TRAIN]


def test_a_folder_of_parquet_shards_gives_its_text_columns_in_shard_order(tmp_path):
    folder = parquet(tmp_path / "pq", {"train": [TRAIN[:3], TRAIN[3:]], "validation": [VALID]})
    corpus = load_corpus(hf(folder, src_column="source", tgt_column="target"), seed=1)
    assert corpus.train == TRAIN and corpus.valid == VALID


def test_parquet_files_named_by_split_alone_and_other_split_names(tmp_path):
    folder = tmp_path / "pq"
    folder.mkdir()
    pq.write_table(pa.table({"de": ["eins"], "en": ["one"]}), folder / "train.parquet")
    pq.write_table(pa.table({"de": ["zwei"], "en": ["two"]}), folder / "dev.parquet")
    corpus = load_corpus(hf(folder, src_column="de", tgt_column="en", valid_split="dev"), seed=1)
    assert (corpus.train, corpus.valid) == ([("eins", "one")], [("zwei", "two")])


def test_parquet_files_named_by_number_take_their_split_from_their_folder(tmp_path):
    folder = tmp_path / "converted" / "default"  # the hub's refs/convert/parquet layout
    for split, parts in {"train": [TRAIN[:2], TRAIN[2:]], "validation": [VALID]}.items():
        (folder / split).mkdir(parents=True)
        for i, pairs in enumerate(parts):
            columns = {"en": [s for s, _ in pairs], "fr": [t for _, t in pairs]}
            pq.write_table(pa.table(columns), folder / split / f"{i:04d}.parquet")
    corpus = load_corpus(hf(tmp_path / "converted", src_column="en", tgt_column="fr"), seed=1)
    assert (corpus.train, corpus.valid) == (TRAIN, VALID)


def test_a_parquet_folder_of_several_configs_reads_the_one_data_dataset_config_names(tmp_path):
    folder = tmp_path / "wmt"
    parquet(folder / "de-en", {"train": [TRAIN], "validation": [VALID]})
    parquet(folder / "fr-en", {"train": [[("un", "one")]], "validation": [[("deux", "two")]]})
    columns = {"src_column": "source", "tgt_column": "target"}
    corpus = load_corpus(hf(folder, dataset_config="de-en", **columns), seed=1)
    assert (corpus.train, corpus.valid) == (TRAIN, VALID)
    with pytest.raises(
        CorpusError, match=r"wmt: train files in 2 folders \(de-en, fr-en\); set data\.dataset_config"
    ):
        load_corpus(hf(folder, **columns), seed=1)


def test_empty_missing_and_over_long_pairs_are_dropped_and_counted_as_for_files(tmp_path):
    rows = [*TRAIN, ("", "vide"), ("  ", "blanc"), ("x" * 31, "long"), (" padded ", "\tentouré ")]
    valid = [*VALID, ("court", "y" * 31)]
    folder = saved(tmp_path / "ds", train=translations(rows), validation=translations(valid))
    corpus = load_corpus(hf(folder, max_chars=30), seed=1)
    assert corpus.train == [*TRAIN, ("padded", "entouré")]
    assert corpus.filtered == {"train": {"empty": 2, "too_long": 1}, "valid": {"too_long": 1}, "test": {}}


def test_null_rows_and_null_text_are_empty_pairs_dropped_and_counted(tmp_path):
    train = Dataset.from_dict({"translation": [{"en": "one", "fr": "un"}, None, {"en": None, "fr": "deux"}]})
    folder = saved(tmp_path / "ds", train=train, validation=translations(VALID))
    corpus = load_corpus(hf(folder), seed=1)
    assert corpus.train == [("one", "un")]
    assert corpus.filtered["train"] == {"empty": 2}


def test_valid_fraction_draws_validation_from_a_dataset_without_a_validation_split(tmp_path):
    pairs = [(f"sentence {i}", f"phrase {i}") for i in range(200)]
    folder = saved(tmp_path / "ds", train=translations(pairs))
    corpus = load_corpus(hf(folder, valid_fraction=0.1), seed=1)
    assert len(corpus.valid) == 20 and len(corpus.train) == 180
    assert sorted(corpus.train + corpus.valid) == sorted(pairs)


def test_a_single_saved_dataset_is_the_train_split(tmp_path):
    translations(TRAIN).save_to_disk(str(tmp_path / "one"))
    corpus = load_corpus(hf(tmp_path / "one", valid_fraction=0.25), seed=1)
    assert sorted(corpus.train + corpus.valid) == sorted(TRAIN) and len(corpus.valid) == 1


# Through the command line -----------------------------------------------------------------------------


def recipe(folder: Path, dataset: Path | str, **keys: str) -> Path:
    """A recipe training a tiny model on `dataset` (data.kind = "hf"), with more [data] `keys`."""
    extra = "".join(f'{key} = "{value}"\n' for key, value in keys.items())
    toml = folder / "hf.toml"
    toml.write_text(
        f'description = "hf"\n[data]\nkind = "hf"\ndataset = "{dataset}"\nsrc = "en"\ntgt = "fr"\n{extra}'
        '[tokenizer]\nkind = "char"\n[model]\nhidden_size = 16\nembedding_size = 8\n'
        "[training]\nbatch_size = 2\nvalid_every = 2\nthreads = 1\n"
    )
    return toml


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`s2s-bench ARGS` in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "workbench", *args], capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})},
    )  # fmt: skip


def prepare(monkeypatch, capsys, toml: Path, runs: Path) -> tuple[int, str]:
    """`s2s-bench prepare` in this process, through its real entry point: exit code, and what it wrote
    (standard output, then standard error)."""
    monkeypatch.setattr(sys, "argv", ["s2s-bench", "prepare", str(toml), "--runs-dir", str(runs)])
    with pytest.raises(SystemExit) as exited:
        main()
    out = capsys.readouterr()
    return exited.value.code, out.out + out.err



@pytest.mark.slow
def test_a_saved_dataset_prepares_and_trains_through_the_command_line(tmp_path):
    pairs = [(f"sentence {i}", f"phrase {i}") for i in range(40)]
    folder = saved(tmp_path / "ds", train=translations(pairs), validation=translations(VALID))
    toml, runs = recipe(tmp_path, folder), tmp_path / "runs"
    prepared = cli("prepare", str(toml), "--runs-dir", str(runs))
    assert prepared.returncode == 0, prepared.stderr
    assert "40 train, 1 valid pairs" in prepared.stdout
    trained = cli(
        "train", str(toml), "--headless", "--max-steps", "2", "--runs-dir", str(runs), "--name", "r"
    )
    assert trained.returncode == 0, trained.stderr
    entries = [p for p in (runs / ".corpora").iterdir() if p.is_dir()]
    assert len(entries) == 1  # training used the entry `prepare` built
    assert (runs / "r" / "train.log").is_file()
    assert "data: 40 train, 1 valid pairs" in (runs / "r" / "train.log").read_text()


def test_parquet_shards_prepare_through_the_command_line(tmp_path, monkeypatch, capsys):
    folder = parquet(tmp_path / "pq", {"train": [TRAIN[:3], TRAIN[3:]], "validation": [VALID]})
    toml = recipe(tmp_path, folder, src_column="source", tgt_column="target")
    code, out = prepare(monkeypatch, capsys, toml, tmp_path / "runs")
    assert code == 0, out
    assert "4 train, 1 valid pairs" in out


def write_foreign_folder(folder: Path) -> Path:
    folder.mkdir()
    (folder / "train.csv").write_text("en,fr\none,un\n")
    return folder


ERRORS = {
    "a missing split": (
        lambda tmp: (saved(tmp / "ds", train=translations(TRAIN), test=translations(VALID)), {}),
        r"^{dataset}: no split 'validation' \(it has test, train\); set data\.train_split",
    ),
    "a missing parquet split": (
        lambda tmp: (
            parquet(tmp / "pq", {"train": [TRAIN]}),
            {"src_column": "source", "tgt_column": "target"},
        ),
        r"^{dataset}: no split 'validation' \(it has train\)",
    ),
    "a missing column": (
        lambda tmp: (
            parquet(tmp / "pq", {"train": [TRAIN], "validation": [VALID]}),
            {"src_column": "en", "tgt_column": "target"},
        ),
        r"^{dataset} \[train\]: no column 'en' \(it has source, target, n\)",
    ),
    "one text column named without the other": (
        lambda tmp: (
            parquet(tmp / "pq", {"train": [TRAIN], "validation": [VALID]}),
            {"src_column": "source"},
        ),
        r"^{dataset} \[train\]: data\.src_column = 'source' but no data\.tgt_column; name both text columns",
    ),
    "no translation column and no columns named": (
        lambda tmp: (parquet(tmp / "pq", {"train": [TRAIN], "validation": [VALID]}), {}),
        r"^{dataset} \[train\]: no column 'translation' \(it has source, target, n\); a dataset needs",
    ),
    "a translation column without the recipe's languages": (
        lambda tmp: (
            saved(
                tmp / "ds", **{split: translations(TRAIN, ("de", "en")) for split in ("train", "validation")}
            ),
            {},
        ),
        r"^{dataset} \[train\]: the translation column has the languages de, en, not data\.src = 'en' and "
        r"data\.tgt = 'fr'",
    ),
    "a folder that is neither": (
        lambda tmp: (write_foreign_folder(tmp / "csv"), {}),
        r"^{dataset}: neither a dataset written by save_to_disk nor a folder of parquet files",
    ),
    "a path that is not there": (
        lambda tmp: (tmp / "nowhere" / "ds", {}),
        r"^{dataset}: no such folder \(data\.dataset\)",
    ),
}


@pytest.mark.parametrize("case", ERRORS)
def test_a_bad_dataset_is_refused_in_one_line_naming_it_exit_2(tmp_path, monkeypatch, capsys, case):
    make, message = ERRORS[case]
    dataset, keys = make(tmp_path)
    code, err = prepare(monkeypatch, capsys, recipe(tmp_path, dataset, **keys), tmp_path / "runs")
    line = refusal(code, err, tmp_path / "runs")
    assert re.search(message.format(dataset=re.escape(str(dataset))), line), line


@pytest.mark.parametrize("damage", ["cut short", "a damaged page"])
def test_a_damaged_parquet_shard_is_refused_naming_that_shard(tmp_path, monkeypatch, capsys, damage):
    pairs = [(f"sentence number {i} " * 3, f"phrase {i}") for i in range(2000)]
    folder = parquet(tmp_path / "pq", {"train": [pairs, pairs], "validation": [VALID]})
    shard = folder / "train-00001-of-00002.parquet"
    data = shard.read_bytes()
    # cut short: the footer is lost and the file cannot be opened; a damaged page is met while reading
    shard.write_bytes(data[:-100] if damage == "cut short" else data[:2000] + bytes(16) + data[2016:])
    toml = recipe(tmp_path, folder, src_column="source", tgt_column="target")
    line = refusal(*prepare(monkeypatch, capsys, toml, tmp_path / "runs"), tmp_path / "runs")
    assert line.startswith(f"{shard}: not a readable parquet file ("), line


def test_a_hub_name_that_cannot_be_reached_is_one_line_starting_with_the_name(tmp_path):
    toml = recipe(tmp_path, "s2s-bench-tests/no-such-dataset")
    offline = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    out = cli("prepare", str(toml), "--runs-dir", str(tmp_path / "runs"), env=offline)
    line = refusal(out.returncode, out.stderr, tmp_path / "runs")
    assert line.startswith("s2s-bench-tests/no-such-dataset: "), line
