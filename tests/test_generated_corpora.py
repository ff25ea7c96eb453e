"""The built-in generated corpora: exact date formats, determinism, disjoint splits, language errors."""

from __future__ import annotations

import datetime

import pytest
from num2words import num2words

from workbench.engine.data import CorpusError, generated, load_corpus
from workbench.engine.data.generated import babel_locale, date_pair
from workbench.engine.recipe import DataConfig

ENGLISH_FORMATS = {"full": "%A, %B %d, %Y", "long": "%B %d, %Y", "medium": "%b %d, %Y"}


def small(kind: str, **overrides) -> DataConfig:
    values = {"src": "en", "tgt": "fr", "train_size": 300, "valid_size": 50, "test_size": 50, **overrides}
    return DataConfig(kind=kind, **values)


@pytest.mark.parametrize(
    ("tgt", "fmt", "expected"),
    [
        ("fr", "full", ("Saturday, November 21, 2026", "samedi 21 novembre 2026")),
        ("fr", "long", ("November 21, 2026", "21 novembre 2026")),
        ("fr", "medium", ("Nov 21, 2026", "21 nov. 2026")),
        ("zh", "full", ("Saturday, November 21, 2026", "2026年11月21日星期六")),
        ("ja", "medium", ("Nov 21, 2026", "2026/11/21")),
        ("de", "full", ("Saturday, November 21, 2026", "Samstag, 21. November 2026")),
    ],
)
def test_a_date_is_written_in_english_and_the_target_locale_with_the_same_cldr_format(tgt, fmt, expected):
    assert date_pair(datetime.date(2026, 11, 21), fmt, babel_locale(tgt)) == expected


def test_every_generated_date_pair_is_one_day_in_one_format_between_1900_and_2099():
    corpus = load_corpus(small("dates", tgt="fr"), seed=3)
    french = babel_locale("fr")
    formats_seen = set()
    for src, tgt in corpus.train + corpus.valid + corpus.test:
        readings = []
        for fmt, pattern in ENGLISH_FORMATS.items():
            try:
                readings.append((fmt, datetime.datetime.strptime(src, pattern).date()))
            except ValueError:
                continue
        assert readings, f"{src!r} is in none of the English CLDR formats"
        assert any(date_pair(day, fmt, french) == (src, tgt) for fmt, day in readings)
        assert all(1900 <= day.year <= 2099 for _, day in readings)
        formats_seen.update(fmt for fmt, _ in readings)
    assert formats_seen == {"full", "long", "medium"}


def test_same_seed_gives_the_same_corpus_and_another_seed_does_not():
    for kind in ("dates", "numbers", "reverse"):
        first = load_corpus(small(kind), seed=7)
        assert load_corpus(small(kind), seed=7) == first
        assert load_corpus(small(kind), seed=8).train != first.train


@pytest.mark.parametrize("kind", ["dates", "numbers", "reverse", "copy", "sort"])
def test_splits_have_the_asked_sizes_and_share_no_source(kind):
    corpus = load_corpus(small(kind), seed=1)
    assert (len(corpus.train), len(corpus.valid), len(corpus.test)) == (300, 50, 50)
    train, valid, test = ({src for src, _ in split} for split in (corpus.train, corpus.valid, corpus.test))
    assert (len(train), len(valid), len(test)) == (300, 50, 50)
    assert not train & valid and not train & test and not valid & test
    assert corpus.n_filtered() == 0


def test_toy_tasks_reverse_copy_and_sort_random_letters():
    for kind, transform in (("reverse", lambda t: t[::-1]), ("copy", list), ("sort", sorted)):
        lengths = set()
        for src, tgt in load_corpus(small(kind), seed=2).train:
            tokens = src.split(" ")
            lengths.add(len(tokens))
            assert all(len(token) == 1 and "a" <= token <= "z" for token in tokens)
            assert tgt.split(" ") == transform(tokens)
        assert min(lengths) == 3 and max(lengths) == 15


def test_numbers_are_digits_or_english_words_and_targets_are_words_in_the_target_language():
    corpus = load_corpus(small("numbers", tgt="de", train_size=1000), seed=4)
    english = {num2words(n, lang="en"): n for n in range(1000)}
    as_digits = as_small_words = 0
    for src, tgt in corpus.train:
        if src.isdigit():
            assert 0 <= int(src) <= 999_999
            assert tgt == num2words(int(src), lang="de")
            as_digits += 1
        else:
            assert not any(ch.isdigit() for ch in src)
            if src in english:
                assert tgt == num2words(english[src], lang="de")
                as_small_words += 1
    assert 0.3 < as_digits / len(corpus.train) < 0.7
    assert as_small_words > 10


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"kind": "dates", "tgt": "klingon"}, "'klingon' is not a locale"),
        ({"kind": "dates", "src": "fr", "tgt": "de"}, "data.src = 'en'"),
        ({"kind": "numbers", "tgt": "xx"}, "data.tgt = 'xx': num2words cannot"),
        ({"kind": "numbers", "src": "tlh"}, "data.src = 'tlh'"),
    ],
)
def test_unsupported_languages_are_a_corpus_error(overrides, message):
    with pytest.raises(CorpusError, match=message):
        load_corpus(small(**overrides), seed=1)


def test_asking_for_more_distinct_examples_than_exist_is_an_error_not_a_hang(monkeypatch):
    monkeypatch.setattr(generated, "TOY_LENGTHS", (1, 1))  # only 26 distinct sources
    with pytest.raises(CorpusError, match="only 26 distinct examples"):
        load_corpus(small("copy", train_size=20, valid_size=5, test_size=5), seed=1)
