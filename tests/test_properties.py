"""Properties over generated text (hypothesis): tokenizers give back the text they encode, as their
normalisation documents, and a translator answers any Unicode text with one translation per sentence."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.engine.recipe import TokenizerConfig, load_recipe
from workbench.engine.run_folder import RunFolder
from workbench.engine.session import TrainingSession
from workbench.engine.tokenizers import UNK_SURFACE, load_tokenizers, train_tokenizers
from workbench.engine.translator import Translator
from workbench.tui.display_format import printable

FIXTURES = [HealthCheck.function_scoped_fixture]
EXAMPLES = settings(max_examples=80, deadline=None, suppress_health_check=FIXTURES)
CORPUS = [
    ("le chat mange. l'œuf est là !", "the cat eats, the egg is there?"),
    ("zéro un deux trois 0123456789", "zero one two three - quick fox jumps"),
    ("voilà ce que je vois", "by the way, vex wizards jump"),
]
ALPHABET = sorted({c for pair in CORPUS for side in pair for c in side})  # the tokenizers' alphabet
WORDS = sorted({w for pair in CORPUS for side in pair for w in side.split()})
# Any Unicode text but surrogates (which no UTF-8 input can hold): controls, RTL, emoji, zero-width...
ANY_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=60)
TRICKY = st.sampled_from(["", " ", "\t\n", "\u200b\u200d\ufeff", "\u202eabc", "\x1b[31m", "👨\u200d👩",
                          "مرحبا", "\x00", "\u2028", "e\u0301\u0301"])  # fmt: skip


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    made = {}
    for kind in ("char", "word", "sentencepiece"):
        cfg = TokenizerConfig(kind=kind, vocab_size=60 if kind == "sentencepiece" else 8000)
        folder = tmp_path_factory.mktemp(kind)
        train_tokenizers(cfg, CORPUS, folder, seed=1)
        made[kind] = load_tokenizers(folder).src  # as a run reads them
    return made


@EXAMPLES
@given(st.text(st.sampled_from(ALPHABET), max_size=80))
def test_char_and_sentencepiece_decode_what_they_encode_stripped(tokenizers, record_property, text):
    assert tokenizers["char"].decode(tokenizers["char"].encode(text)) == text
    sentencepiece = tokenizers["sentencepiece"]
    assert sentencepiece.decode(sentencepiece.encode(text)) == text.strip()
    record_property("inputs", 1)
    record_property("shows", "decode(encode(text)) == text (sentencepiece: stripped)")


@EXAMPLES
@given(st.lists(st.sampled_from(WORDS), max_size=12), st.lists(st.sampled_from([" ", "  ", "\t", "\u3000"])))
def test_word_decodes_known_words_joined_by_single_spaces(tokenizers, record_property, words, gaps):
    text = "".join(w + (gaps[i % len(gaps)] if gaps else " ") for i, w in enumerate(words))
    assert tokenizers["word"].decode(tokenizers["word"].encode(text)) == " ".join(words)
    record_property("inputs", 1)
    record_property("shows", "the words, joined by single spaces")


@EXAMPLES
@given(ANY_TEXT)
def test_unknown_characters_decode_as_one_unknown_mark_each_and_never_raise(
    tokenizers, record_property, text
):
    char = tokenizers["char"]
    known = set(char.vocab)
    expected = "".join(c if c in known else UNK_SURFACE for c in text)
    assert char.decode(char.encode(text)) == expected
    for tokenizer in tokenizers.values():
        assert isinstance(tokenizer.decode(tokenizer.encode(text)), str)
    assert not any(unicodedata.category(c) == "Cc" for c in printable(text))  # nothing a terminal acts on
    record_property("inputs", 1)
    record_property(
        "shows", f"one {UNK_SURFACE} per unknown character; the workbench draws controls as U+FFFD"
    )


@pytest.fixture(scope="module")
def translator(tmp_path_factory):
    sets = ["data.train_size=200", "data.valid_size=20", "model.hidden_size=16", "model.embedding_size=8",
            "tokenizer.vocab_size=60", "training.threads=1", "decoding.max_input_pieces=40"]  # fmt: skip
    run = RunFolder.create(tmp_path_factory.mktemp("runs"), load_recipe("dates-en-fr", sets), "tiny")
    TrainingSession(run, "cpu").train(max_steps=1)
    return Translator.from_run(run, "last")


@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURES)
@given(st.lists(ANY_TEXT | TRICKY, min_size=1, max_size=6), st.sampled_from([1, 3]), st.booleans())
def test_a_translator_answers_any_unicode_text_with_one_translation_each(
    translator, one_thread, record_property, sentences, beam, attention
):
    results = translator.translate(sentences, beam, n_best=min(2, beam), attention=attention)
    assert len(results) == len(sentences)
    for sentence, nbest in zip(sentences, results, strict=True):
        assert 1 <= len(nbest) <= min(2, beam) and all(isinstance(t.text, str) for t in nbest)
        assert "\n" not in nbest[0].text and "\x1b" not in nbest[0].text
        if not sentence.strip():
            assert nbest[0].text == "" and nbest[0].src_pieces == []
        if attention:
            assert len(nbest[0].attention) == len(nbest[0].tgt_pieces) + 1
    record_property("inputs", len(sentences))
    record_property("shows", "one translation per sentence; empty for an empty or blank one")
