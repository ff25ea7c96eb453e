"""Tokenizers: exact round trips (Chinese and Japanese included), special ids, save/load, determinism."""

from __future__ import annotations

import json

import pytest
from conftest import SHARED_DATA

from workbench.engine.data import load_corpus
from workbench.engine.recipe import DataConfig, TokenizerConfig
from workbench.engine.special_tokens import BOS, EOS, PAD, SPECIAL_PIECES, UNK
from workbench.engine.tokenizers import (
    CharTokenizer,
    SentencePieceTokenizer,
    TokenizerError,
    WordTokenizer,
    load_tokenizers,
    train_tokenizers,
)

PAIRS = [
    ("A dog runs in the park.", "Un chien court dans le parc."),
    ("Two children play football together.", "Deux enfants jouent au football ensemble."),
    ("The weather is nice today.", "今天天气很好。"),
    ("I like sushi, a lot!", "私は寿司が大好きです！"),
    ("Where is the station?", "駅はどこですか？"),
    ("She reads a book.", "她在看书，很安静。"),
    ("Full-width ＡＢＣ and ①.", "Ｆｕｌｌ　ｗｉｄｔｈ ｔｅｘｔ。"),
] * 20

SPM_CONFIGS = [
    TokenizerConfig(kind="sentencepiece", model_type=model_type, joint=joint, vocab_size=120)
    for model_type in ("unigram", "bpe")
    for joint in (True, False)
]
ALL_CONFIGS = SPM_CONFIGS + [
    TokenizerConfig(kind=kind, joint=joint) for kind in ("char", "word") for joint in (True, False)
]


def config_id(cfg: TokenizerConfig) -> str:
    model = f"-{cfg.model_type}" if cfg.kind == "sentencepiece" else ""
    return f"{cfg.kind}{model}-{'joint' if cfg.joint else 'separate'}"


@pytest.mark.parametrize("cfg", ALL_CONFIGS, ids=config_id)
def test_decode_of_encode_restores_every_training_text_exactly(cfg, tmp_path):
    tokenizers = train_tokenizers(cfg, PAIRS, tmp_path, seed=1)
    for src, tgt in PAIRS[:7]:
        src_ids, tgt_ids = tokenizers.src.encode(src), tokenizers.tgt.encode(tgt)
        assert UNK not in src_ids + tgt_ids
        assert min(src_ids + tgt_ids) >= 4, "ordinary text never encodes to a special id"
        if cfg.kind == "word":  # words are whitespace-split: any run of spaces decodes as one space
            src, tgt = " ".join(src.split()), " ".join(tgt.split())
        assert tokenizers.src.decode(src_ids) == src
        assert tokenizers.tgt.decode(tgt_ids) == tgt
    assert tokenizers.joint == cfg.joint
    assert (tokenizers.src is tokenizers.tgt) == cfg.joint


@pytest.mark.parametrize("cfg", ALL_CONFIGS, ids=config_id)
def test_saved_tokenizers_load_back_with_identical_ids(cfg, tmp_path):
    trained = train_tokenizers(cfg, PAIRS, tmp_path, seed=1)
    loaded = load_tokenizers(tmp_path)
    assert type(loaded.src) is type(trained.src) and loaded.joint == cfg.joint
    for src, tgt in PAIRS[:7]:
        assert loaded.src.encode(src) == trained.src.encode(src)
        assert loaded.tgt.encode(tgt) == trained.tgt.encode(tgt)
    assert (loaded.src.vocab_size, loaded.tgt.vocab_size) == (trained.src.vocab_size, trained.tgt.vocab_size)


def test_the_folder_holds_plain_files_and_a_description(tmp_path):
    train_tokenizers(
        TokenizerConfig(kind="sentencepiece", joint=True, vocab_size=100), PAIRS, tmp_path / "a", 1
    )
    train_tokenizers(TokenizerConfig(kind="word", joint=False), PAIRS, tmp_path / "b", 1)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["src.model", "tgt.model", "tokenizer.json"]
    assert (tmp_path / "a" / "src.model").read_bytes() == (tmp_path / "a" / "tgt.model").read_bytes()
    meta = json.loads((tmp_path / "a" / "tokenizer.json").read_text())
    assert meta["kind"] == "sentencepiece" and meta["joint"] is True
    assert meta["special_ids"] == {"pad": PAD, "unk": UNK, "bos": BOS, "eos": EOS}
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        "src.vocab.json",
        "tgt.vocab.json",
        "tokenizer.json",
    ]
    vocab = json.loads((tmp_path / "b" / "tgt.vocab.json").read_text(encoding="utf-8"))
    assert vocab[:4] == list(SPECIAL_PIECES) and "chien" in vocab and "dog" not in vocab


@pytest.mark.parametrize("cfg", SPM_CONFIGS[:2] + ALL_CONFIGS[-2:], ids=config_id)
def test_special_ids_are_the_same_for_every_tokenizer_and_decode_skips_them(cfg, tmp_path):
    tokenizer = train_tokenizers(cfg, PAIRS, tmp_path, seed=1).tgt
    assert tokenizer.pieces([PAD, UNK, BOS, EOS]) == list(SPECIAL_PIECES)
    ids = tokenizer.encode("Un chien court dans le parc.")
    assert tokenizer.decode([BOS] + ids + [EOS, PAD, PAD]) == "Un chien court dans le parc."
    assert "⁇" in tokenizer.decode(ids + [UNK])


def test_char_tokenizer_shows_a_space_as_its_own_piece(tmp_path):
    tokenizer = train_tokenizers(TokenizerConfig(kind="char"), PAIRS, tmp_path, seed=1).src
    assert isinstance(tokenizer, CharTokenizer)
    ids = tokenizer.encode("A dog")
    assert tokenizer.pieces(ids) == ["A", "▁", "d", "o", "g"]
    assert tokenizer.decode(ids) == "A dog"


def test_word_tokenizer_splits_on_whitespace_and_joins_with_single_spaces(tmp_path):
    tokenizer = train_tokenizers(TokenizerConfig(kind="word"), PAIRS, tmp_path, seed=1).src
    assert isinstance(tokenizer, WordTokenizer)
    ids = tokenizer.encode("  A   dog\truns  ")
    assert tokenizer.pieces(ids) == ["A", "dog", "runs"]
    assert tokenizer.decode(ids) == "A dog runs"
    assert tokenizer.encode("A cat") == [tokenizer.encode("A")[0], UNK]


def test_min_freq_and_vocab_size_limit_char_and_word_vocabularies(tmp_path):
    pairs = [("a a a b b c", "x")] * 1
    rare = train_tokenizers(TokenizerConfig(kind="word", min_freq=2, joint=False), pairs, tmp_path / "f", 1)
    assert rare.src.pieces(range(4, rare.src.vocab_size)) == ["a", "b"]
    capped = train_tokenizers(
        TokenizerConfig(kind="word", vocab_size=5, joint=False), pairs, tmp_path / "v", 1
    )
    assert capped.src.vocab_size == 5 and capped.src.encode("a b c") == [4, UNK, UNK]


def test_sentencepiece_keeps_vocab_size_when_the_corpus_allows_it_and_shrinks_when_not(tmp_path):
    exact = train_tokenizers(TokenizerConfig(vocab_size=100), PAIRS, tmp_path / "exact", seed=1)
    assert exact.src.vocab_size == 100
    shrunk = train_tokenizers(TokenizerConfig(vocab_size=8000), PAIRS, tmp_path / "shrunk", seed=1)
    assert isinstance(shrunk.src, SentencePieceTokenizer) and 100 < shrunk.src.vocab_size < 8000


def test_a_sentencepiece_vocabulary_smaller_than_the_alphabet_is_a_clear_error(tmp_path):
    with pytest.raises(TokenizerError, match=r"tokenizer\.vocab_size = 40 leaves no room for the 8\d pieces"):
        train_tokenizers(TokenizerConfig(vocab_size=40), PAIRS, tmp_path, seed=1)


def test_training_is_deterministic(tmp_path):
    cfg = TokenizerConfig(kind="sentencepiece", vocab_size=100)
    train_tokenizers(cfg, PAIRS, tmp_path / "one", seed=3)
    train_tokenizers(cfg, PAIRS, tmp_path / "two", seed=3)
    assert (tmp_path / "one" / "src.model").read_bytes() == (tmp_path / "two" / "src.model").read_bytes()


def test_loading_a_folder_without_a_tokenizer_is_a_clear_error(tmp_path):
    with pytest.raises(TokenizerError, match=r"tokenizer\.json: no such file"):
        load_tokenizers(tmp_path)


def test_loading_a_vocabulary_with_the_wrong_special_pieces_is_an_error(tmp_path):
    train_tokenizers(TokenizerConfig(kind="char"), PAIRS, tmp_path, seed=1)
    (tmp_path / "src.vocab.json").write_text(json.dumps(["a", "b", "c", "d"]), encoding="utf-8")
    with pytest.raises(TokenizerError, match=r"src\.vocab\.json: a vocabulary must start with <pad>"):
        load_tokenizers(tmp_path)


@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="shared/data is absent")
@pytest.mark.parametrize(("name", "tgt"), [("multi30k", "de"), ("tatoeba_en_zh", "zh")])
def test_sentencepiece_on_a_slice_of_a_real_corpus_round_trips_the_valid_set(name, tgt, tmp_path):
    corpus = load_corpus(DataConfig(kind="folder", dir=str(SHARED_DATA / name), src="en", tgt=tgt), seed=1)
    cfg = TokenizerConfig(kind="sentencepiece", vocab_size=2000, joint=True)
    tokenizers = train_tokenizers(cfg, corpus.train[:3000], tmp_path, seed=1)
    loaded = load_tokenizers(tmp_path)
    for src, tgt_text in corpus.valid[:200]:
        ids = loaded.tgt.encode(tgt_text)
        assert ids == tokenizers.tgt.encode(tgt_text)
        if UNK not in ids:
            assert loaded.tgt.decode(ids) == tgt_text
        assert loaded.src.decode(loaded.src.encode(src)) == src or UNK in loaded.src.encode(src)
    # Mostly subwords, not characters: a sentence takes far fewer pieces than it has characters.
    pieces = sum(len(tokenizers.tgt.encode(t)) for _, t in corpus.valid[:200])
    chars = sum(len(t) for _, t in corpus.valid[:200])
    assert pieces < chars / (1 if tgt == "zh" else 3)
