"""The corpus cache: a corpus is prepared once (read, tokenizer, encoding) into a memory-mapped token store
that every run, resume and process of the same corpus and tokenizer reuses; a changed corpus or recipe key
gets an entry of its own; a resume keeps its own tokenizer. Batches drawn from the store are the batches
of the same ids padded in memory. Faults: test_corpus_cache_faults.py."""

from __future__ import annotations

import dataclasses
import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.cli.main import main
from workbench.engine.data.batching import collate
from workbench.engine.data.cache import CorpusCache, cache_folder
from workbench.engine.data.prepare import Reservoir, prepare
from workbench.engine.data.store import TokenSplit
from workbench.engine.recipe import recipe_from_dict
from workbench.engine.run_folder import RunFolder
from workbench.engine.session import TrainingSession
from workbench.engine.tokenizers import load_tokenizers

WORDS = "the cat sat on a mat and dog ran to big red house".split()


def corpus(folder: Path, n: int, seed: int = 0) -> Path:
    """A folder corpus of n distinct word pairs, with a small valid set."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    src = [" ".join(rng.choices(WORDS, k=rng.randint(2, 9))) + f" n{i}" for i in range(n)]
    for split, lines in (("train", src), ("valid", src[:20])):
        (folder / f"{split}.en").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (folder / f"{split}.fr").write_text("\n".join(s.upper() for s in lines) + "\n", encoding="utf-8")
    return folder


def tiny(folder: Path, **tokenizer):
    return recipe_from_dict(
        {
            "data": {"kind": "folder", "dir": str(folder)},
            "tokenizer": {"kind": "word", "vocab_size": 40, **tokenizer},
            "model": {"hidden_size": 16, "embedding_size": 8},
            "training": {"batch_size": 8, "valid_every": 4, "log_every": 2, "threads": 1},
            "decoding": {"valid_sentences": 4, "probes": []},
        }
    )


class Phases:
    """The phases a preparation reported."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, phase: str, done: int, total, fraction) -> None:
        if not self.seen or self.seen[-1] != phase:
            self.seen.append(phase)


def test_a_second_preparation_is_read_from_the_cache_without_reading_the_corpus(tmp_path):
    recipe, cache = tiny(corpus(tmp_path / "c", 300)), CorpusCache(tmp_path / "cache")
    first, phases = prepare(recipe, cache, report=(built := Phases())), Phases()
    again = prepare(recipe, cache, report=phases)
    assert built.seen[0] == "reading" and "encoding" in built.seen
    assert phases.seen == []  # nothing read, trained or encoded
    assert again.key == first.key and len(again.train) == 300 and len(again.valid) == 20
    assert again.train.sentence("src", 0) == first.train.sentence("src", 0)
    assert isinstance(again.train.ids["src"], np.memmap) and again.train.ids["src"].dtype == np.uint16
    (entry,) = cache.entries()
    assert entry.manifest is not None and entry.manifest["pairs"]["train"] == 300


def test_a_changed_corpus_file_or_recipe_key_gets_an_entry_of_its_own(tmp_path):
    folder = corpus(tmp_path / "c", 100)
    cache = CorpusCache(tmp_path / "cache")
    key = prepare(tiny(folder), cache).key
    assert prepare(tiny(folder, vocab_size=50), cache).key != key  # a tokenizer key
    assert prepare(dataclasses.replace(tiny(folder), seed=2), cache).key != key
    with open(folder / "train.en", "a", encoding="utf-8") as file:
        file.write("one more\n")
    with open(folder / "train.fr", "a", encoding="utf-8") as file:
        file.write("ONE MORE\n")
    changed = prepare(tiny(folder), cache)
    assert changed.key != key and len(changed.train) == 101


def cli(monkeypatch, capsys, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """`s2s-bench ARGS` in this process (its error handling included): exit code, stdout, stderr."""
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "argv", ["s2s-bench", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    out = capsys.readouterr()
    return exited.value.code or 0, out.out, " ".join(out.err.split())


def test_prepare_then_train_reuses_the_entry_and_cache_lists_and_removes_it(tmp_path, monkeypatch, capsys):
    folder = corpus(tmp_path / "c", 120)
    toml = tmp_path / "r.toml"
    toml.write_text(tiny(folder).to_toml())
    runs = str(tmp_path / "runs")
    code, out, _ = cli(monkeypatch, capsys, "prepare", str(toml), "--runs-dir", runs)
    assert code == 0 and "120 train, 20 valid pairs" in out
    key = out.split()[0]
    args = ("train", str(toml), "--headless", "--max-steps", "2", "--name", "a", "--runs-dir", runs)
    code, _, err = cli(monkeypatch, capsys, *args)
    assert code == 0 and "prepared" not in err  # found in the cache, not prepared again
    run = RunFolder(tmp_path / "runs" / "a")
    assert json.loads((run.path / "corpus.json").read_text())["key"] == key
    assert (
        load_tokenizers(run.tokenizer_dir).src.vocab
        == load_tokenizers(tmp_path / "runs" / ".corpora" / key / "tokenizer").src.vocab
    )  # the run keeps its own copy
    code, out, _ = cli(monkeypatch, capsys, "cache", "--runs-dir", runs)
    assert code == 0 and key in out and "c en-fr, word 40 joint" in out and "1 entry," in out
    code, out, _ = cli(monkeypatch, capsys, "cache", "--runs-dir", runs, "--remove", key[:6])
    assert code == 0 and out.startswith("removed 1 entry")
    assert CorpusCache(tmp_path / "runs" / ".corpora").entries() == []
    code, _, err = cli(monkeypatch, capsys, "cache", "--runs-dir", runs, "--remove", "ffff")
    assert code == 2 and "--remove ffff: no entry" in err


def test_the_tokenizer_is_trained_on_a_seeded_sample_and_the_log_says_how_many(tmp_path):
    folder = corpus(tmp_path / "c", 400)
    recipe = tiny(folder, sample_sentences=100)  # joint: 50 pairs, both sides
    first = prepare(recipe, CorpusCache(tmp_path / "one"))
    again = prepare(recipe, CorpusCache(tmp_path / "two"))
    assert (
        "tokenizer: trained on 50 of the 400 training pairs (tokenizer.sample_sentences = 100)"
        in " ".join(first.notes)
    )
    assert first.manifest["tokenizer_hash"] == again.manifest["tokenizer_hash"]  # the same sample
    everything = prepare(tiny(folder, sample_sentences=0), CorpusCache(tmp_path / "three"))
    assert "trained on 400 of the 400" in " ".join(everything.notes)
    assert len(first.train) == len(everything.train) == 400  # the sample trains the tokenizer only


def test_a_resume_whose_entry_is_gone_rebuilds_it_with_the_runs_own_tokenizer(
    tmp_path, one_thread, trainers_built
):
    folder = corpus(tmp_path / "c", 150)
    run = RunFolder.create(tmp_path / "runs", tiny(folder), name="r")
    assert TrainingSession(run, "cpu").train(max_steps=4) == "finished"
    vocab = (run.tokenizer_dir / "src.vocab.json").read_bytes()
    for entry in CorpusCache(cache_folder(tmp_path / "runs")).entries():  # as on another machine
        CorpusCache(cache_folder(tmp_path / "runs")).remove(entry.key)
    (run.tokenizer_dir / "src.vocab.json").write_bytes(
        vocab.replace(b'"a"', b'"A"')
    )  # not what training gives
    built = trainers_built()
    assert TrainingSession(run, "cpu").train(max_steps=6) == "finished"
    (trainer,) = built
    assert trainer.setup.tokenizers.src.vocab == load_tokenizers(run.tokenizer_dir).src.vocab
    (entry,) = CorpusCache(cache_folder(tmp_path / "runs")).entries()
    assert (entry.path / "tokenizer" / "src.vocab.json").read_bytes() == (
        run.tokenizer_dir / "src.vocab.json"
    ).read_bytes()


def test_a_checkpoint_saved_before_the_token_store_resumes_and_says_the_data_order_changed(
    tmp_path, one_thread, trainers_built
):
    import json

    run = RunFolder.create(tmp_path / "runs", tiny(corpus(tmp_path / "c", 150)), name="r")
    assert TrainingSession(run, "cpu").train(max_steps=4) == "finished"
    meta_path = run.checkpoints_dir / "last.json"
    meta = json.loads(meta_path.read_text())
    del meta["state"]["progress"]["batcher"]  # as written before batches came from the store
    meta_path.write_text(json.dumps(meta))
    built = trainers_built()
    assert TrainingSession(run, "cpu").train(max_steps=6) == "finished"
    (trainer,) = built
    log = (run.path / "train.log").read_text()
    assert "resumed with batches planned from the token store: the data order from step 4 on differs" in log
    assert trainer.progress.step == 6 and trainer.progress.batcher == 2


def test_while_the_corpus_is_prepared_the_status_carries_the_phase_and_how_far(tmp_path, monkeypatch):
    run = RunFolder.create(tmp_path / "runs", tiny(corpus(tmp_path / "c", 300)), name="r")
    written = []
    original = RunFolder.write_status

    def record(self, state, **fields):
        written.append(fields)
        original(self, state, **fields)

    monkeypatch.setattr(RunFolder, "write_status", record)
    TrainingSession(run, "cpu").prepare()
    phases = [f["preparing"] for f in written if f.get("preparing")]
    assert [p["phase"] for p in phases][:1] == ["reading"]
    encoding = [p for p in phases if p["phase"] == "encoding"]
    assert encoding and encoding[-1]["fraction"] == 1.0 and encoding[-1]["total"] == 300
    reasons = [
        f["reason"] for f in written if str(f.get("reason", "")).startswith("preparing data: encoding")
    ]
    assert reasons and "300 of 300 pairs" in reasons[-1]
    assert written[-1].get("preparing", "cleared") is None  # gone once the model is prepared


def test_batches_from_the_store_are_the_same_ids_padded_in_memory():
    rng = random.Random(4)
    src = [[rng.randrange(4, 300) for _ in range(rng.randint(1, 30))] for _ in range(200)]
    tgt = [[rng.randrange(4, 300) for _ in range(rng.randint(1, 30))] for _ in range(200)]
    store = TokenSplit.from_ids(src, tgt)
    for _ in range(20):
        idx = rng.sample(range(200), rng.randint(1, 32))
        got, want = store.batch(idx), collate([src[i] for i in idx], [tgt[i] for i in idx], idx)
        for name in ("src", "src_lengths", "tgt_in", "tgt_out"):
            assert torch.equal(getattr(got, name), getattr(want, name)), name
        assert (got.n_src_tokens, got.n_tgt_tokens, got.indices) == (
            want.n_src_tokens,
            want.n_tgt_tokens,
            idx,
        )


def test_the_reservoir_holds_a_short_stream_whole_and_a_seeded_uniform_sample_of_a_long_one():
    pairs = [(f"s{i}", f"t{i}") for i in range(10_000)]
    short = Reservoir(100, seed=1)
    short.add(pairs[:60])
    short.add(pairs[60:90])
    assert short.complete and [pair for pair, _ in short.sample()] == pairs[:90]

    def draw(seed: int) -> list[tuple[tuple[str, str], int]]:
        reservoir = Reservoir(100, seed)
        for start in range(0, 10_000, 700):
            reservoir.add(pairs[start : start + 700])
        assert not reservoir.complete
        return reservoir.sample()

    first = draw(1)
    assert len(first) == 100 and all(pairs[i] == pair for pair, i in first)
    assert [i for _, i in first] == sorted(i for _, i in first)  # in stream order
    assert draw(1) == first and draw(2) != first
    positions = [i for seed in range(40) for _, i in draw(seed)]
    assert abs(np.mean(positions) - 4999.5) < 250  # uniform: no bias to the first or the last pairs
    assert 0.45 < np.mean(np.array(positions) < 5000) < 0.55
