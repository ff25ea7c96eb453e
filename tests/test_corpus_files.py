"""Reading real corpora: folder, explicit files and TSV; every bad corpus is a CorpusError naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SHARED_DATA

from workbench.engine.data import Corpus, CorpusError, load_corpus
from workbench.engine.recipe import DataConfig


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def folder_corpus(tmp_path: Path, **files: str | bytes) -> DataConfig:
    """A data.kind = "folder" config over tmp_path holding `files` (name with "_" for "."): en -> fr."""
    for name, text in files.items():
        write(tmp_path / name.replace("_", "."), text)
    return DataConfig(kind="folder", dir=str(tmp_path), src="en", tgt="fr")


GOOD = {
    "train_en": "Hello.\nHow are you?\nThanks.\n",
    "train_fr": "Bonjour.\nComment ça va ?\nMerci.\n",
    "valid_en": "Good night.\n",
    "valid_fr": "Bonne nuit.\n",
}


def test_folder_reads_aligned_lines_as_pairs_without_test_files(tmp_path):
    corpus = load_corpus(folder_corpus(tmp_path, **GOOD), seed=1)
    assert corpus.train == [
        ("Hello.", "Bonjour."),
        ("How are you?", "Comment ça va ?"),
        ("Thanks.", "Merci."),
    ]
    assert corpus.valid == [("Good night.", "Bonne nuit.")]
    assert corpus.test == []
    assert corpus.n_filtered() == 0


def test_folder_reads_test_files_when_present(tmp_path):
    corpus = load_corpus(folder_corpus(tmp_path, **GOOD, test_en="Yes.\n", test_fr="Oui.\n"), seed=1)
    assert corpus.test == [("Yes.", "Oui.")]


def test_one_test_file_without_the_other_is_an_error_naming_the_missing_one(tmp_path):
    with pytest.raises(CorpusError, match=r"test\.fr: no such file"):
        load_corpus(folder_corpus(tmp_path, **GOOD, test_en="Yes.\n"), seed=1)


def test_windows_line_ends_trailing_spaces_and_a_byte_order_mark_are_stripped(tmp_path):
    files = {**GOOD, "train_en": b"\xef\xbb\xbfHello.  \r\nHow are you?\r\nThanks.\t\r\n"}
    corpus = load_corpus(folder_corpus(tmp_path, **files), seed=1)
    assert [src for src, _ in corpus.train] == ["Hello.", "How are you?", "Thanks."]


def test_a_line_separator_inside_a_sentence_does_not_split_it(tmp_path):
    files = {**GOOD, "train_en": "Hello.\nHow\u2028are you?\nThanks.\n"}
    corpus = load_corpus(folder_corpus(tmp_path, **files), seed=1)
    assert corpus.train[1] == ("How\u2028are you?", "Comment ça va ?")


def test_empty_and_overlong_pairs_are_dropped_and_counted_per_split(tmp_path):
    files = {
        "train_en": "ok\n\nfine\n" + "x" * 30 + "\nshort\n",
        "train_fr": "d'accord\nvide\n\ncourt\n" + "y" * 31 + "\n",
        "valid_en": "a\n   \n",
        "valid_fr": "b\nc\n",
    }
    cfg = folder_corpus(tmp_path, **files)
    cfg.max_chars = 30
    corpus = load_corpus(cfg, seed=1)
    assert corpus.train == [("ok", "d'accord"), ("x" * 30, "court")]
    assert corpus.valid == [("a", "b")]
    assert corpus.filtered == {"train": {"empty": 2, "too_long": 1}, "valid": {"empty": 1}, "test": {}}
    assert corpus.n_filtered() == 4


def test_missing_file_is_an_error_naming_it(tmp_path):
    files = {k: v for k, v in GOOD.items() if k != "valid_fr"}
    with pytest.raises(CorpusError, match=r"valid\.fr: no such file"):
        load_corpus(folder_corpus(tmp_path, **files), seed=1)


def test_missing_folder_is_an_error_naming_it(tmp_path):
    with pytest.raises(CorpusError, match="nowhere: no such folder"):
        load_corpus(DataConfig(kind="folder", dir=str(tmp_path / "nowhere")), seed=1)


def test_a_missing_relative_folder_says_where_it_was_looked_for_and_names_s2s_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("S2S_DATA", raising=False)
    with pytest.raises(CorpusError, match=r"data/multi30k: no such folder \(data.dir, under .*\$S2S_DATA"):
        load_corpus(DataConfig(kind="folder", dir="data/multi30k"), seed=1)


def test_different_line_counts_name_both_files_and_both_counts(tmp_path):
    files = {**GOOD, "train_fr": "Bonjour.\nMerci.\n"}
    with pytest.raises(CorpusError, match=r"train\.en has 3 lines but .*train\.fr has 2"):
        load_corpus(folder_corpus(tmp_path, **files), seed=1)


def test_invalid_utf8_names_the_file_and_the_line(tmp_path):
    files = {**GOOD, "train_fr": b"Bonjour.\nComment \xe7a va ?\nMerci.\n"}  # Latin-1 "ç"
    with pytest.raises(CorpusError, match=r"train\.fr:2: not valid UTF-8 \(byte 0xe7"):
        load_corpus(folder_corpus(tmp_path, **files), seed=1)


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_an_empty_file_is_an_error(tmp_path, content):
    files = {**GOOD, "valid_en": content}
    with pytest.raises(CorpusError, match=r"valid\.en: the file is empty"):
        load_corpus(folder_corpus(tmp_path, **files), seed=1)


def test_a_split_with_nothing_left_after_filtering_is_an_error(tmp_path):
    files = {**GOOD, "valid_en": "x" * 50 + "\n"}
    cfg = folder_corpus(tmp_path, **files)
    cfg.max_chars = 20
    with pytest.raises(CorpusError, match=r"valid\.en: no usable pairs"):
        load_corpus(cfg, seed=1)


def test_files_kind_reads_explicit_paths(tmp_path):
    paths = {name: write(tmp_path / f"{name}.txt", text) for name, text in GOOD.items()}
    cfg = DataConfig(
        kind="files",
        train_src=str(paths["train_en"]),
        train_tgt=str(paths["train_fr"]),
        valid_src=str(paths["valid_en"]),
        valid_tgt=str(paths["valid_fr"]),
    )
    corpus = load_corpus(cfg, seed=1)
    assert corpus.train[0] == ("Hello.", "Bonjour.") and corpus.valid == [("Good night.", "Bonne nuit.")]
    assert corpus.test == []


def tsv(tmp_path: Path, train: str, valid: str | None = None, max_chars: int = 400) -> DataConfig:
    cfg = DataConfig(kind="tsv", train_tsv=str(write(tmp_path / "train.tsv", train)), max_chars=max_chars)
    if valid is not None:
        cfg.valid_tsv = str(write(tmp_path / "valid.tsv", valid))
    return cfg


def test_tsv_takes_source_then_target_and_ignores_extra_columns(tmp_path):
    train = "Go.\tVa !\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272\nHi.\tSalut !\n"
    corpus = load_corpus(tsv(tmp_path, train, valid="Run!\tCours !\t#906328\n"), seed=1)
    assert corpus.train == [("Go.", "Va !"), ("Hi.", "Salut !")]
    assert corpus.valid == [("Run!", "Cours !")]
    assert corpus.test == []


def test_tsv_line_without_a_tab_names_file_and_line(tmp_path):
    with pytest.raises(CorpusError, match=r"train\.tsv:2: no tab"):
        load_corpus(tsv(tmp_path, "Go.\tVa !\nHi. Salut !\n", valid="a\tb\n"), seed=1)


def test_tsv_empty_sides_blank_lines_and_long_pairs_are_counted(tmp_path):
    train = "Go.\tVa !\n\t\nHi.\t\n\nRun!\t" + "z" * 11 + "\nOk.\tD'accord.\n"
    corpus = load_corpus(tsv(tmp_path, train, valid="a\tb\n", max_chars=10), seed=1)
    assert corpus.train == [("Go.", "Va !"), ("Ok.", "D'accord.")]
    assert corpus.filtered["train"] == {"empty": 3, "too_long": 1}


def test_tsv_without_valid_holds_out_a_seeded_twentieth_sharing_no_source_with_train(tmp_path):
    lines = [f"sentence {i // 2}\ttranslation {i}" for i in range(400)]  # each source twice
    cfg = tsv(tmp_path, "\n".join(lines) + "\n")
    corpus = load_corpus(cfg, seed=1)
    assert len(corpus.valid) == 20
    assert len(corpus.train) + len(corpus.valid) == 400
    assert not {s for s, _ in corpus.train} & {s for s, _ in corpus.valid}
    assert load_corpus(cfg, seed=1) == corpus
    assert load_corpus(cfg, seed=2).valid != corpus.valid


def test_tsv_hold_out_is_at_most_a_thousand_pairs(tmp_path):
    lines = [f"s{i}\tt{i}" for i in range(30_000)]
    corpus = load_corpus(tsv(tmp_path, "\n".join(lines)), seed=1)
    assert len(corpus.valid) == 1000 and len(corpus.train) == 29_000


@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="shared/data is absent")
def test_reads_the_real_tatoeba_en_fr_folder():
    corpus = load_corpus(DataConfig(kind="folder", dir=str(SHARED_DATA / "tatoeba_en_fr"), tgt="fr"), seed=1)
    assert isinstance(corpus, Corpus)
    assert len(corpus.train) + corpus.n_filtered() == 163_979
    assert len(corpus.valid) == 1000
