"""Keras-style data options: a word vocabulary of the N most frequent words, validation split off the
training pairs, a sample of the training pairs, training by epochs, token accuracy as a metric."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from workbench.cli.main import app
from workbench.engine.checkpoint import read_state
from workbench.engine.data import CorpusError, load_corpus
from workbench.engine.data.cache import CorpusCache
from workbench.engine.data.prepare import prepare
from workbench.engine.data.store import TokenSplit
from workbench.engine.evaluation import teacher_forced
from workbench.engine.model import build_model
from workbench.engine.recipe import (
    DataConfig,
    ModelConfig,
    RecipeError,
    TokenizerConfig,
    load_recipe,
    recipe_from_dict,
    recipe_groups,
)
from workbench.engine.run_folder import RunFolder
from workbench.engine.session import TrainingSession
from workbench.engine.special_tokens import PAD
from workbench.engine.tokenizers import train_tokenizers

WORDS = "the cat sat on a mat and dog ran to big red house".split()


def write_folder(folder: Path, n: int, valid: bool = False) -> Path:
    """train.en/train.fr of n pairs (pair i numbered, so every pair is distinct), valid files if asked."""
    folder.mkdir(parents=True, exist_ok=True)
    src = [f"{WORDS[i % 13]} {WORDS[i * 7 % 13]} n{i}" for i in range(n)]
    tgt = [f"{WORDS[i * 3 % 13]} {WORDS[i % 13]} m{i}" for i in range(n)]
    (folder / "train.en").write_text("\n".join(src) + "\n", encoding="utf-8")
    (folder / "train.fr").write_text("\n".join(tgt) + "\n", encoding="utf-8")
    if valid:
        (folder / "valid.en").write_text("the cat\n", encoding="utf-8")
        (folder / "valid.fr").write_text("le chat\n", encoding="utf-8")
    return folder


def folder_data(folder: Path, **keys) -> DataConfig:
    return DataConfig(kind="folder", dir=str(folder), src="en", tgt="fr", **keys)


# data.valid_fraction and data.max_pairs --------------------------------------------------------------


def test_valid_fraction_splits_the_training_pairs_with_the_seed_and_reads_no_valid_file(tmp_path):
    folder = write_folder(tmp_path / "c", 50)  # no valid files: they are not read
    corpus = load_corpus(folder_data(folder, valid_fraction=0.2), seed=1)
    assert (len(corpus.train), len(corpus.valid)) == (40, 10)
    everything = load_corpus(folder_data(write_folder(tmp_path / "d", 50, valid=True)), seed=1).train
    assert sorted(corpus.train + corpus.valid) == sorted(everything)
    assert not set(corpus.train) & set(corpus.valid)
    again = load_corpus(folder_data(folder, valid_fraction=0.2), seed=1)
    assert (again.train, again.valid) == (corpus.train, corpus.valid)  # every run and resume alike
    other = load_corpus(folder_data(folder, valid_fraction=0.2), seed=2)
    assert other.valid != corpus.valid
    assert "40 train, 10 valid pairs; no valid file read" in corpus.notes[-1]


def test_without_valid_fraction_the_valid_files_are_read_as_before(tmp_path):
    corpus = load_corpus(folder_data(write_folder(tmp_path, 50, valid=True)), seed=1)
    assert (len(corpus.train), corpus.valid, corpus.notes) == (50, [("the cat", "le chat")], [])


def test_valid_fraction_on_files_and_tsv_corpora(tmp_path):
    folder = write_folder(tmp_path, 20)
    paths = {"train_src": str(folder / "train.en"), "train_tgt": str(folder / "train.fr")}
    raw = {"data": {"kind": "files", **paths}}
    with pytest.raises(RecipeError, match="data.valid_src"):
        recipe_from_dict(raw)
    raw["data"]["valid_fraction"] = 0.25
    corpus = load_corpus(recipe_from_dict(raw).data, seed=3)
    assert (len(corpus.train), len(corpus.valid)) == (15, 5)
    lines = [f"s{i}\tt{i}" for i in range(20)]
    (tmp_path / "p.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    tsv = DataConfig(kind="tsv", train_tsv=str(tmp_path / "p.tsv"), valid_fraction=0.5)
    corpus = load_corpus(tsv, seed=3)
    assert (len(corpus.train), len(corpus.valid)) == (10, 10)


def test_max_pairs_samples_the_training_pairs_before_the_valid_split(tmp_path):
    folder = write_folder(tmp_path, 100, valid=True)
    sample = load_corpus(folder_data(folder, max_pairs=30), seed=1)
    assert len(sample.train) == 30 and sample.valid == [("the cat", "le chat")]
    everything = load_corpus(folder_data(folder), seed=1).train
    assert sample.train == [pair for pair in everything if pair in set(sample.train)]  # in file order
    assert sample.train != everything[:30]  # a random sample, not the first lines
    assert load_corpus(folder_data(folder, max_pairs=30), seed=1).train == sample.train
    split = load_corpus(folder_data(folder, max_pairs=30, valid_fraction=0.2), seed=1)
    assert (len(split.train), len(split.valid)) == (24, 6)
    assert set(split.train + split.valid) == set(sample.train)
    assert "30 of the 100 training pairs" in split.notes[0]
    assert load_corpus(folder_data(folder, max_pairs=500), seed=1).train == everything


@pytest.mark.parametrize("key", ["max_pairs=10", "valid_fraction=0.2"])
def test_generated_corpora_refuse_the_file_corpus_options(key):
    with pytest.raises(RecipeError, match=f"data.{key.split('=')[0]}' applies to corpora read from files"):
        load_recipe("reverse", [f"data.{key}"])


@pytest.mark.parametrize("key", ["valid_fraction=1.0", "valid_fraction=-0.1", "max_pairs=-1"])
def test_out_of_range_values_are_refused(tmp_path, key):
    with pytest.raises(RecipeError, match=f"data.{key.split('=')[0]}"):
        recipe_from_dict({"data": {"dir": str(tmp_path), key.split("=")[0]: float(key.split("=")[1])}})


def test_a_fraction_that_leaves_a_side_empty_is_a_corpus_error(tmp_path):
    with pytest.raises(CorpusError, match="both need at least one"):
        load_corpus(folder_data(write_folder(tmp_path, 3), valid_fraction=0.1), seed=1)


# tokenizer.vocab_size for words and the <unk> report ---------------------------------------------------


def test_word_vocab_size_keeps_the_most_frequent_words_and_reports_unk(tmp_path):
    pairs = [("a a a b b c", "x x y"), ("a b d", "x z")]
    cfg = TokenizerConfig(kind="word", vocab_size=6, joint=False)  # 4 specials + the 2 most frequent
    tokenizers = train_tokenizers(cfg, pairs, tmp_path, seed=1)
    assert tokenizers.src.vocab[4:] == ["a", "b"] and tokenizers.tgt.vocab[4:] == ["x", "y"]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for split in ("train", "valid"):
        (corpus / f"{split}.en").write_text("a a a b b c\na b d\n", encoding="utf-8")
        (corpus / f"{split}.fr").write_text("x x y\nx z\n", encoding="utf-8")
    recipe = recipe_from_dict({"data": {"kind": "folder", "dir": str(corpus)}})
    recipe = dataclasses.replace(recipe, tokenizer=cfg)  # below the smallest size a recipe may ask for
    notes = prepare(recipe, CorpusCache(tmp_path / "cache")).notes
    assert (
        "word vocabulary: 2 of 4 source words and 2 of 3 target words kept; <unk> is 22.2% of source "
        "tokens and 20.0% of target tokens in the training data"
    ) in notes
    recipe = dataclasses.replace(recipe, tokenizer=TokenizerConfig(kind="word", vocab_size=7))
    joint = prepare(recipe, CorpusCache(tmp_path / "cache")).notes
    assert any(note.startswith("word vocabulary: 3 of 7 words (source") for note in joint)


def test_word_detokenization_is_the_text_with_single_spaces(tmp_path):
    tokenizers = train_tokenizers(TokenizerConfig(kind="word"), [("Hello, world!", "Bonjour !")], tmp_path, 1)
    ids = tokenizers.src.encode("Hello,  world!")
    assert tokenizers.src.decode(ids) == "Hello, world!"  # punctuation stays on its word
    assert tokenizers.src.decode(tokenizers.src.encode("Hello, moon!")) == "Hello, ⁇"


# teacher-forced token accuracy -------------------------------------------------------------------------


def test_token_accuracy_is_the_share_of_targets_that_are_the_argmax_under_teacher_forcing():
    torch.manual_seed(0)
    model = build_model(ModelConfig(embedding_size=8, hidden_size=8), 12, 5).eval()
    src = [[4, 5, 6], [7, 8], [9, 10, 11, 4]]
    tgt = [[4], [4, 4, 4], [4, 4]]
    loss, accuracy = teacher_forced(model, TokenSplit.from_ids(src, tgt), batch_size=2)
    right = tokens = 0
    total = 0.0
    for s, t in zip(src, tgt):
        tgt_in = torch.tensor([[2, *t]])
        tgt_out = torch.tensor([[*t, 3]])
        with torch.no_grad():
            logits, _ = model(torch.tensor([s]), torch.tensor([len(s)]), tgt_in)
        right += int((logits.argmax(-1) == tgt_out).sum())
        tokens += tgt_out.numel()
        total += float(torch.nn.functional.cross_entropy(logits[0], tgt_out[0], reduction="sum"))
    assert tokens == 9 and PAD not in tgt_out
    assert accuracy == pytest.approx(right / tokens) and loss == pytest.approx(total / tokens, rel=1e-5)


# training by epochs, validating at every epoch's end, accuracy in the records ------------------------

EPOCHS = [
    "data.train_size=64",
    "data.valid_size=16",
    "data.test_size=0",
    "model.embedding_size=16",
    "model.hidden_size=16",
    "training.batch_size=16",
    "training.log_every=2",
    "training.max_steps=0",
    "training.max_minutes=0",
    "training.max_epochs=3",
    "training.valid_every=0",
    "training.early_stopping_metric=accuracy",
    "training.threads=1",
    "decoding.beam_size=1",
    "decoding.probes=[]",
]


def valid_records(run: RunFolder) -> list[dict]:
    return [r for r in run.read_metrics()[0] if r["kind"] == "valid"]


def test_max_epochs_trains_that_many_epochs_validating_at_the_end_of_each(tmp_path, one_thread):
    run = RunFolder.create(tmp_path, load_recipe("reverse", EPOCHS), name="epochs")
    assert TrainingSession(run, "cpu").train() == "finished"
    status = run.status()
    steps_per_epoch = status["step"] // 3
    assert status["epoch"] == 3 and status["reason"] == "reached 3 epochs" and 4 <= steps_per_epoch <= 5
    valid = valid_records(run)
    assert [r["step"] for r in valid] == [steps_per_epoch * k for k in (1, 2, 3)]
    assert [r["epoch"] for r in valid] == [0, 1, 2]  # counted before the epoch closes
    assert all(0 <= r["accuracy"] <= 1 for r in valid)
    best = max(valid, key=lambda r: r["accuracy"])
    assert read_state(run.checkpoints_dir, "best")["step"] == best["step"]  # picked by accuracy
    log = (run.path / "train.log").read_text()
    assert "<unk> is 0.0% of source tokens" in log and "data: 64 train, 16 valid pairs" in log


def test_a_run_stopped_mid_epoch_resumes_and_still_trains_max_epochs(tmp_path, one_thread):
    run = RunFolder.create(tmp_path, load_recipe("reverse", EPOCHS), name="resumed")
    assert TrainingSession(run, "cpu").train(max_steps=6) == "finished"  # mid-way through the second epoch
    assert TrainingSession(run, "cpu").train(max_steps=0) == "finished"
    whole = RunFolder.create(tmp_path, load_recipe("reverse", EPOCHS), name="whole")
    TrainingSession(whole, "cpu").train()
    assert (run.status()["step"], run.status()["epoch"]) == (whole.status()["step"], 3)
    steps = [r["step"] for r in valid_records(whole)]
    assert [r["step"] for r in valid_records(run)] == sorted({6, *steps})


def test_valid_every_zero_is_accepted_and_negative_refused():
    assert load_recipe("reverse", ["training.valid_every=0"]).training.valid_every == 0
    with pytest.raises(RecipeError, match="training.valid_every"):
        load_recipe("reverse", ["training.valid_every=-1"])


def test_a_word_level_run_logs_its_vocabulary_and_split(tmp_path, one_thread):
    folder = write_folder(tmp_path / "corpus", 40)
    sets = [
        f"data.dir={folder}",
        "data.kind=folder",
        "data.valid_fraction=0.25",
        "data.max_pairs=32",
        "tokenizer.kind=word",
        "tokenizer.vocab_size=14",
        *EPOCHS[3:],
        "training.max_epochs=1",
    ]
    run = RunFolder.create(tmp_path, load_recipe("reverse", sets), name="words")
    assert TrainingSession(run, "cpu").train() == "finished"
    log = (run.path / "train.log").read_text()
    assert "data: a seeded sample of 32 of the 40 training pairs" in log
    assert "24 train, 8 valid pairs; no valid file read" in log
    assert "word vocabulary: 10 of " in log and "words (source and target) kept; <unk> is " in log


def test_eval_json_reports_token_accuracy(tmp_path, one_thread):
    run = RunFolder.create(tmp_path, load_recipe("reverse", [*EPOCHS, "training.max_epochs=1"]), name="e")
    TrainingSession(run, "cpu").train()
    (tmp_path / "src.txt").write_text("a b c\nd e\n", encoding="utf-8")
    (tmp_path / "ref.txt").write_text("c b a\ne d\n", encoding="utf-8")
    args = ["eval", str(run.path), "--src", str(tmp_path / "src.txt"), "--ref", str(tmp_path / "ref.txt")]
    result = CliRunner().invoke(app, [*args, "--json", "--beam", "1"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output.strip().splitlines()[-1])
    assert 0 <= scores["accuracy"] <= 1
    int8 = CliRunner().invoke(app, [*args, "--json", "--beam", "1", "--precision", "int8"])
    assert json.loads(int8.output.strip().splitlines()[-1])["accuracy"] == scores["accuracy"]


# recipe groups ------------------------------------------------------------------------------------------


def test_seed_recipes_are_grouped_first():
    recipes = {name: Path(f"{name}.toml") for name in ("alpha", "seed-2-b", "seed-1-a", "zeta")}
    assert [(title, list(group)) for title, group in recipe_groups(recipes)] == [
        ("seed systems", ["seed-1-a", "seed-2-b"]),
        ("", ["alpha", "zeta"]),
    ]
    assert [title for title, _ in recipe_groups({"alpha": Path("a.toml")})] == [""]
