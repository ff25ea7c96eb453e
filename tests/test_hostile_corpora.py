"""Corpus files as hostile input, through `s2s-bench train`: each bad file is refused before a run folder
is made, with one line naming the file (and the line where there is one) and exit code 2; Windows line
ends, a byte-order mark and an over-long line are handled (the last dropped by data.max_chars and said)."""

from __future__ import annotations

import gzip
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.cli.main import main
from workbench.engine.tokenizers import load_tokenizers

GOOD = {
    "train.en": "one two\nthree four\nfive six\nseven eight\n",
    "train.fr": "un deux\ntrois quatre\ncinq six\nsept huit\n",
    "valid.en": "one four\n",
    "valid.fr": "un quatre\n",
}


def recipe(folder: Path, **files: str | bytes) -> Path:
    """A folder corpus of GOOD with `files` (name -> content) replacing or adding to it, and a recipe
    training a tiny model on it; returns the recipe's path."""
    corpus = folder / "corpus"
    corpus.mkdir()
    for name, content in {**GOOD, **files}.items():
        path = corpus / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    toml = folder / "hostile.toml"
    toml.write_text(
        f'description = "hostile corpus"\n[data]\nkind = "folder"\ndir = "{corpus}"\nsrc = "en"\ntgt = "fr"\n'
        '[tokenizer]\nkind = "char"\n[model]\nhidden_size = 16\nembedding_size = 8\n'
        "[training]\nbatch_size = 2\nvalid_every = 2\nlog_every = 1\nthreads = 1\n"
    )
    return toml


def train(monkeypatch, capsys, toml: Path, runs: Path) -> tuple[int, str]:
    """`s2s-bench train` in this process (the real entry point, with its error handling): exit code and
    standard error."""
    monkeypatch.setattr(sys, "argv", ["s2s-bench", "train", str(toml), "--headless", "--runs-dir", str(runs)])
    with pytest.raises(SystemExit) as exited:
        main()
    return exited.value.code, " ".join(capsys.readouterr().err.split())


def fifo(path: Path) -> None:
    os.mkfifo(path)


RANDOM = random.Random(3).randbytes(4096)
CASES = {
    "an empty file": ({"valid.en": b""}, r"valid.en: the file is empty"),
    "a file of blank lines": ({"valid.en": "\n \n\t\n"}, r"valid.en: the file is empty"),
    "unequal line counts": (
        {"train.fr": "un deux\ntrois quatre\n"},
        r"train.en has 4 lines but \S+/train.fr has 2; the two sides of a parallel corpus",
    ),
    "invalid UTF-8 (Latin-1)": (
        {"train.fr": "un deux\ntrois quatre\nfran\xe7ais\nsept huit\n".encode("latin-1")},
        r"train.fr:3: not valid UTF-8 \(byte 0xe7 at byte 5 of the line\)",
    ),
    "UTF-16 text": ({"train.en": GOOD["train.en"].encode("utf-16")}, r"train.en:1: not valid UTF-8"),
    "NUL bytes": (
        {"train.en": b"one two\nthree\0four\nfive six\nseven eight\n"},
        r"train.en:2: a NUL character",
    ),
    "random bytes": ({"train.en": RANDOM}, r"train.en:\d+: not valid UTF-8"),
    "a truncated gzip file": (
        {"train.en": gzip.compress(GOOD["train.en"].encode())[:20]},
        r"train.en: a corrupt or truncated gzip file \(Compressed file ended before the end-of-stream "
        r"marker was reached\); the corpus cannot be read",
    ),
    "a folder in place of a file": ({"valid.fr": None}, r"valid.fr: cannot read it \(Is a directory\)"),
    "a named pipe": ({"valid.fr": fifo}, r"valid.fr: not a regular file \(a pipe or a device\)"),
    "a missing file": ({"valid.fr": False}, r"valid.fr: no such file"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_hostile_corpus_file_is_refused_in_one_line_naming_it_exit_2(
    case, tmp_path, monkeypatch, capsys, record_property
):
    files, message = CASES[case]
    name, content = next(iter(files.items()))
    toml = recipe(tmp_path, **({} if not isinstance(content, (str, bytes)) else files))
    path = tmp_path / "corpus" / name
    if content is None:
        path.unlink()
        path.mkdir()
    elif content is False:
        path.unlink()
    elif callable(content):
        path.unlink()
        content(path)
    code, err = train(monkeypatch, capsys, toml, tmp_path / "runs")
    assert code == 2, err
    assert err.startswith("error: ") and err.count("error:") == 1, err
    assert re.search(message, err), err
    assert str(tmp_path / "corpus") in err  # the file is named by its full path
    assert not (tmp_path / "runs").exists()  # refused before a run folder (or anything) is made
    record_property("inputs", 1)
    record_property("shows", err.removeprefix("error: ").replace(str(tmp_path / "corpus") + "/", ""))


@pytest.mark.slow
def test_windows_line_ends_a_byte_order_mark_and_a_1_mb_line_train_and_the_drop_is_said(
    tmp_path, record_property
):
    long_line = "z" * 1_000_000
    crlf = {
        name: (("\ufeff" if name.startswith("train") else "") + text.replace("\n", "\r\n")).encode()
        for name, text in GOOD.items()
    }
    crlf["train.en"] += f"{long_line}\r\n".encode()
    crlf["train.fr"] += b"long\r\n"
    toml = recipe(tmp_path, **crlf)
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    args = [sys.executable, "-m", "workbench", "train", str(toml), "--headless", "--max-steps", "2"]
    out = subprocess.run(
        [*args, "--runs-dir", str(tmp_path / "runs"), "--name", "r"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "note: 1 train pair(s) longer than data.max_chars = 400 characters dropped" in out.stderr
    run = tmp_path / "runs" / "r"
    assert "data: dropped 1 train pairs (too_long)" in (run / "train.log").read_text()
    tokenizers = load_tokenizers(run / "tokenizer")
    for side in (tokenizers.src, tokenizers.tgt):  # neither "\r" nor the mark became a piece of text
        assert not {"\r", "\ufeff", "z"} & set(side.vocab), side.vocab
    assert "o" in tokenizers.src.vocab and "u" in tokenizers.tgt.vocab
    record_property("inputs", 3)
    note = next(line for line in out.stderr.splitlines() if line.startswith("note: "))
    record_property("shows", f"trains; {note}")
