"""Compressed corpus files (gzip, bzip2, xz, zstd), told by their content and read as exactly the text they
hold; a damaged one is refused through `s2s-bench prepare` in one line naming it, leaving nothing in the
corpus cache."""

from __future__ import annotations

import bz2
import codecs
import gzip
import lzma
import re
import sys
from pathlib import Path

import pytest
import zstandard

from workbench.cli.main import main
from workbench.engine.data import CorpusError, load_corpus, sources
from workbench.engine.data.sources import LineReader
from workbench.engine.recipe import DataConfig


def zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(write_checksum=True).compress(data)  # as the zstd tool writes them


COMPRESS = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress, ".zst": zstd}
KINDS = {".gz": "gzip", ".bz2": "bzip2", ".xz": "xz", ".zst": "zstd"}
TEXT = {
    "train.en": "Hello.\nHow are you?\n\nA café, naïve.\r\nThanks.  \n",
    "train.fr": "Bonjour.\nComment ça va ?\nvide\nUn café, naïf.\r\nMerci.\n",
    "valid.en": "\ufeffGood night.\n",
    "valid.fr": "Bonne nuit.",  # no final newline
}


def corpus_folder(folder: Path, texts: dict[str, str | bytes], suffixes: dict[str, str]) -> DataConfig:
    """A folder corpus of `texts`, each file compressed as `suffixes` says (name -> suffix, "" for none)."""
    folder.mkdir(exist_ok=True)
    for name, text in texts.items():
        data = text.encode() if isinstance(text, str) else text
        suffix = suffixes.get(name, "")
        (folder / (name + suffix)).write_bytes(COMPRESS[suffix](data) if suffix else data)
    return DataConfig(kind="folder", dir=str(folder), src="en", tgt="fr")


def test_a_folder_of_mixed_compressed_files_reads_the_same_pairs_as_the_plain_files(tmp_path):
    suffixes = {"train.en": ".gz", "train.fr": ".xz", "valid.en": ".bz2", "valid.fr": ".zst"}
    plain = load_corpus(corpus_folder(tmp_path / "plain", TEXT, {}), seed=1)
    compressed = load_corpus(corpus_folder(tmp_path / "compressed", TEXT, suffixes), seed=1)
    assert sorted(p.name for p in (tmp_path / "compressed").iterdir()) == [
        "train.en.gz", "train.fr.xz", "valid.en.bz2", "valid.fr.zst",
    ]  # fmt: skip
    assert compressed == plain
    assert plain.train[2] == ("A café, naïve.", "Un café, naïf.")
    assert plain.valid == [("Good night.", "Bonne nuit.")]
    assert plain.filtered["train"] == {"empty": 1}


@pytest.mark.parametrize("suffix", COMPRESS)
def test_a_compressed_file_is_told_by_its_content_not_its_name(tmp_path, suffix):
    data = TEXT["train.en"].encode()
    cfg = corpus_folder(tmp_path, {**TEXT, "train.en": COMPRESS[suffix](data)}, {})
    assert not (tmp_path / f"train.en{suffix}").exists()
    assert load_corpus(cfg, seed=1) == load_corpus(corpus_folder(tmp_path / "plain", TEXT, {}), seed=1)


@pytest.mark.parametrize("suffix", COMPRESS)
def test_compressed_files_joined_end_to_end_read_as_one(tmp_path, suffix):
    # `cat a.gz b.gz > c.gz`, pigz, pbzip2 and zstd's multi-frame output all write several streams
    first, second = TEXT["train.en"].encode()[:20], TEXT["train.en"].encode()[20:]
    texts = {**TEXT, "train.en": COMPRESS[suffix](first) + COMPRESS[suffix](second)}
    corpus = load_corpus(corpus_folder(tmp_path, texts, {}), seed=1)
    assert corpus == load_corpus(corpus_folder(tmp_path / "plain", TEXT, {}), seed=1)


@pytest.mark.parametrize("start", ["BZh", "BZh9 is how a bzip2 file starts"])
def test_a_text_file_that_starts_like_a_compressed_one_is_still_text(tmp_path, start):
    texts = {**TEXT, "train.en": TEXT["train.en"].replace("Hello.", start)}
    corpus = load_corpus(corpus_folder(tmp_path, texts, {}), seed=1)
    assert corpus.train[0] == (start, "Bonjour.")


def test_files_and_tsv_kinds_read_compressed_paths(tmp_path):
    corpus_folder(
        tmp_path, TEXT, {"train.en": ".gz", "train.fr": ".bz2", "valid.en": ".xz", "valid.fr": ".zst"}
    )
    expected = load_corpus(corpus_folder(tmp_path / "plain", TEXT, {}), seed=1)
    files = DataConfig(
        kind="files",
        train_src=str(tmp_path / "train.en.gz"),
        train_tgt=str(tmp_path / "train.fr"),  # only train.fr.bz2 is there: found beside it
        valid_src=str(tmp_path / "valid.en.xz"),
        valid_tgt=str(tmp_path / "valid.fr.zst"),
    )
    assert load_corpus(files, seed=1) == expected
    tsv_text = "".join(f"{s}\t{t}\n" for s, t in expected.train)
    (tmp_path / "train.tsv.zst").write_bytes(zstd(tsv_text.encode()))
    (tmp_path / "valid.tsv.gz").write_bytes(gzip.compress(b"Good night.\tBonne nuit.\n"))
    tsv = DataConfig(
        kind="tsv", train_tsv=str(tmp_path / "train.tsv.zst"), valid_tsv=str(tmp_path / "valid.tsv")
    )
    corpus = load_corpus(tsv, seed=1)
    assert corpus.train == expected.train and corpus.valid == expected.valid


def test_a_plain_file_beside_its_compressed_copy_is_an_error_naming_both(tmp_path):
    cfg = corpus_folder(tmp_path, TEXT, {})
    (tmp_path / "train.en.gz").write_bytes(gzip.compress(TEXT["train.en"].encode()))
    with pytest.raises(CorpusError) as error:
        load_corpus(cfg, seed=1)
    assert f"{tmp_path / 'train.en'} and {tmp_path / 'train.en.gz'} both exist" in str(error.value)


def test_two_compressed_copies_of_one_file_are_an_error_naming_both(tmp_path):
    cfg = corpus_folder(tmp_path, TEXT, {"valid.fr": ".gz"})
    (tmp_path / "valid.fr.xz").write_bytes(lzma.compress(TEXT["valid.fr"].encode()))
    with pytest.raises(CorpusError, match=r"valid\.fr\.gz and \S+/valid\.fr\.xz both exist"):
        load_corpus(cfg, seed=1)


BAD_CONTENT = {
    "invalid UTF-8 (Latin-1)": (
        "un deux\ntrois quatre\nfran\xe7ais\nsept huit\n".encode("latin-1"),
        r"train\.fr{suffix}:3: not valid UTF-8 \(byte 0xe7 at byte 5 of the line\)",
    ),
    "a NUL": (b"un deux\ntrois\0quatre\ncinq\nsix\n", r"train\.fr{suffix}:2: a NUL character"),
}


@pytest.mark.parametrize("suffix", COMPRESS)
@pytest.mark.parametrize("case", BAD_CONTENT)
def test_bad_text_inside_a_compressed_file_names_the_file_and_the_line(tmp_path, case, suffix):
    content, message = BAD_CONTENT[case]
    texts = {**TEXT, "train.en": "a\nb\nc\nd\n", "train.fr": content}
    with pytest.raises(CorpusError, match=message.format(suffix=re.escape(suffix))):
        load_corpus(corpus_folder(tmp_path, texts, {"train.fr": suffix}), seed=1)


@pytest.mark.parametrize("block", [1, 2, 7, 8, 9])
@pytest.mark.parametrize("suffix", ["", *COMPRESS])
def test_lines_and_characters_that_straddle_read_blocks_come_out_whole(tmp_path, monkeypatch, suffix, block):
    # a byte-order mark, 2-, 3- and 4-byte characters, "\r\n" and blank lines, at every offset from a
    # block boundary
    lines = [f"{'x' * i}é€𝄞 {i}\r" if i % 5 else "" for i in range(40)]
    data = codecs.BOM_UTF8 + ("\n".join(lines) + "\n").encode()
    euros = [m.start() for m in re.finditer("€".encode(), data)]
    assert any(start // block != (start + 2) // block for start in euros)  # the test does what it says
    path = tmp_path / f"lines{suffix}"
    path.write_bytes(COMPRESS[suffix](data) if suffix else data)
    monkeypatch.setattr(sources, "BLOCK_BYTES", block)
    read = [line for lines_block in LineReader(path).blocks() for line in lines_block]
    assert read == lines


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_a_file_larger_than_a_read_block_keeps_its_two_sides_aligned(tmp_path, suffix):
    n = 320_000  # about 12 MB a side: more than one 8 MB block, ending mid-line
    texts = {
        "train.en": "".join(f"sentence {i} ünïcödé €{i % 97}\n" for i in range(n)),
        "train.fr": "".join(f"phrase {i} {'é' * (i % 7)}\n" for i in range(n)),
        "valid.en": "a\n",
        "valid.fr": "b\n",
    }
    assert len(texts["train.en"].encode()) > sources.BLOCK_BYTES
    fast = {".gz": lambda data: gzip.compress(data, compresslevel=1), ".zst": zstd}[suffix]
    folder = tmp_path / "compressed"
    folder.mkdir()
    for name, text in texts.items():
        (folder / f"{name}{suffix}").write_bytes(fast(text.encode()))
    corpus = load_corpus(DataConfig(kind="folder", dir=str(folder), src="en", tgt="fr"), seed=1)
    assert len(corpus.train) == n
    for i in (0, 1, 123_456, 250_001, n - 1):
        assert corpus.train[i] == (f"sentence {i} ünïcödé €{i % 97}", f"phrase {i} {'é' * (i % 7)}".strip())
    assert corpus == load_corpus(corpus_folder(tmp_path / "plain", texts, {}), seed=1)


def test_a_zstd_file_without_the_zstandard_package_says_what_to_install(tmp_path, monkeypatch):
    cfg = corpus_folder(tmp_path, TEXT, {"train.fr": ".zst"})
    monkeypatch.setitem(sys.modules, "zstandard", None)  # `import zstandard` now fails
    with pytest.raises(
        CorpusError, match=r"train\.fr\.zst: a zstd file; reading it needs .*pip install zstandard"
    ):
        load_corpus(cfg, seed=1)


def test_a_damaged_bzip2_block_is_reported_as_damage_not_as_the_garbage_it_decompresses_to(
    tmp_path, monkeypatch
):
    # bzip2 checks a block's checksum once the block is out: a read can end on garbage before it
    text = "".join(f"sentence number {i}\n" for i in range(15_000)).encode()
    data = bytearray(bz2.compress(text, compresslevel=1))  # 100 kB blocks
    data[1000:1008] = bytes(b ^ 0xFF for b in data[1000:1008])
    path = tmp_path / "train.en.bz2"
    path.write_bytes(bytes(data))
    monkeypatch.setattr(sources, "BLOCK_BYTES", 64_000)
    with pytest.raises(
        CorpusError, match=r"train\.en\.bz2: a corrupt or truncated bzip2 file \(Invalid data stream\)"
    ):
        list(LineReader(path).blocks())


# Through `s2s-bench prepare` --------------------------------------------------------------------------


def recipe(folder: Path, corpus: Path) -> Path:
    toml = folder / "recipe.toml"
    toml.write_text(
        f'description = "compressed"\n[data]\nkind = "folder"\ndir = "{corpus}"\nsrc = "en"\ntgt = "fr"\n'
        '[tokenizer]\nkind = "char"\n[model]\nhidden_size = 16\nembedding_size = 8\n'
        "[training]\nbatch_size = 2\nvalid_every = 2\nthreads = 1\n"
    )
    return toml


def prepare(monkeypatch, capsys, toml: Path, runs: Path) -> tuple[int, str]:
    """`s2s-bench prepare` in this process, through its real entry point: exit code and standard error."""
    monkeypatch.setattr(sys, "argv", ["s2s-bench", "prepare", str(toml), "--runs-dir", str(runs)])
    with pytest.raises(SystemExit) as exited:
        main()
    return exited.value.code, capsys.readouterr().err


def refusal(code: int, err: str, runs: Path) -> str:
    """The one line of a refusal (exit 2, no traceback) that leaves nothing behind: no run folder, no cache
    entry, no half-built folder or lock, not even the runs folder it would have made."""
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert not runs.exists(), sorted(runs.rglob("*"))
    return err.strip().removeprefix("error: ")


def lines(n: int) -> str:
    return "".join(f"sentence number {i}\n" for i in range(n))


def damaged(data: bytes, how: str) -> bytes:
    """`data` cut short, or with a stretch in its middle overwritten."""
    middle = len(data) // 2
    if how == "truncated":
        return data[:middle]
    return data[:middle] + bytes(b ^ 0x5A for b in data[middle : middle + 16]) + data[middle + 16 :]


@pytest.mark.parametrize("how", ["truncated", "corrupt"])
@pytest.mark.parametrize("suffix", COMPRESS)
def test_a_damaged_compressed_file_is_refused_in_one_line_naming_it(
    tmp_path, monkeypatch, capsys, suffix, how
):
    n = 3000
    texts = {"train.en": lines(n), "train.fr": lines(n), "valid.en": "a\n", "valid.fr": "b\n"}
    cfg = corpus_folder(tmp_path / "corpus", texts, {"train.fr": suffix})
    path = tmp_path / "corpus" / f"train.fr{suffix}"
    path.write_bytes(damaged(path.read_bytes(), how))
    code, err = prepare(monkeypatch, capsys, recipe(tmp_path, Path(cfg.dir)), tmp_path / "runs")
    line = refusal(code, err, tmp_path / "runs")
    assert f"{path}: a corrupt or truncated {KINDS[suffix]} file" in line


@pytest.mark.parametrize("suffix", COMPRESS)
def test_a_truncated_file_says_after_which_line_it_breaks_off(tmp_path, monkeypatch, capsys, suffix):
    n = 60_000  # 1.3 MB: more than one bzip2 block (900 kB), which is decompressed whole or not at all
    texts = {"train.en": lines(n), "train.fr": lines(n), "valid.en": "a\n", "valid.fr": "b\n"}
    cfg = corpus_folder(tmp_path / "corpus", texts, {"train.fr": suffix})
    path = tmp_path / "corpus" / f"train.fr{suffix}"
    path.write_bytes(path.read_bytes()[:-40])  # a download cut short near its end
    monkeypatch.setattr(sources, "BLOCK_BYTES", 4096)
    code, err = prepare(monkeypatch, capsys, recipe(tmp_path, Path(cfg.dir)), tmp_path / "runs")
    line = refusal(code, err, tmp_path / "runs")
    found = re.search(
        rf"{re.escape(str(path))}: a corrupt or truncated \w+ file \(.*\) after line ([\d,]+);", line
    )
    assert found, line
    assert 0 < int(found[1].replace(",", "")) < n  # the lines before the damage were read


@pytest.mark.parametrize("suffix", [".gz", ".xz", ".zst"])
def test_a_damaged_valid_file_read_after_the_tokenizer_also_leaves_no_cache_entry(
    tmp_path, monkeypatch, capsys, suffix
):
    texts = {"train.en": lines(50), "train.fr": lines(50), "valid.en": lines(400), "valid.fr": lines(400)}
    cfg = corpus_folder(tmp_path / "corpus", texts, {"valid.en": suffix})
    path = tmp_path / "corpus" / f"valid.en{suffix}"
    path.write_bytes(damaged(path.read_bytes(), "truncated"))
    code, err = prepare(monkeypatch, capsys, recipe(tmp_path, Path(cfg.dir)), tmp_path / "runs")
    line = refusal(code, err, tmp_path / "runs")
    assert f"{path}: a corrupt or truncated {KINDS[suffix]} file" in line
