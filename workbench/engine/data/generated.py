"""Built-in generated corpora: date and number translation, and the toy tasks reverse, copy and sort.

Every task draws pairs from `random.Random(seed)` and keeps the first target drawn for each source,
so the train, valid and test splits never share a source string and the same seed gives the same corpus.
"""

from __future__ import annotations

import datetime
import functools
import random
import string
from collections.abc import Callable

from babel import Locale
from babel.core import UnknownLocaleError
from babel.dates import format_date
from num2words import CONVERTER_CLASSES, num2words

from workbench.engine.data import Corpus, CorpusError, Pair
from workbench.engine.data.sources import PairList
from workbench.engine.recipe import DataConfig

DATE_FORMATS = ("full", "long", "medium")
FIRST_DATE = datetime.date(1900, 1, 1)
N_DAYS = (datetime.date(2099, 12, 31) - FIRST_DATE).days + 1
MAX_NUMBER = 999_999
TOY_TOKENS = string.ascii_lowercase
TOY_LENGTHS = (3, 15)
ENGLISH = Locale.parse("en")

PairMaker = Callable[[random.Random], Pair]


class GeneratedTask:
    """A generated corpus as sources: drawn once, when a split is first read (a prepared one never is)."""

    def __init__(self, cfg: DataConfig, seed: int) -> None:
        self.cfg, self.seed = cfg, seed
        self.corpus: Corpus | None = None

    def split(self, name: str) -> PairList:
        cfg = self.cfg
        identity = [
            cfg.kind,
            cfg.src,
            cfg.tgt,
            cfg.train_size,
            cfg.valid_size,
            cfg.test_size,
            self.seed,
            name,
        ]
        return PairList(lambda: getattr(self._corpus(), name), f"data.kind = {cfg.kind!r}", identity)

    def _corpus(self) -> Corpus:
        if self.corpus is None:
            self.corpus = generate_corpus(self.cfg, self.seed)
        return self.corpus


def generate_corpus(cfg: DataConfig, seed: int) -> Corpus:
    """Draw `train_size + valid_size + test_size` pairs with distinct sources and split them in order."""
    make_pair = pair_maker(cfg)
    rng = random.Random(seed)
    needed = cfg.train_size + cfg.valid_size + cfg.test_size
    # Small tasks run out of distinct sources; give up instead of looping forever.
    max_draws = 20 * needed + 1000
    drawn: dict[str, str] = {}
    draws = 0
    while len(drawn) < needed:
        if draws == max_draws:
            raise CorpusError(
                f"data.kind = {cfg.kind!r}: found only {len(drawn)} distinct examples in {max_draws} draws, "
                f"fewer than the {needed} asked for; lower data.train_size"
            )
        src, tgt = make_pair(rng)
        drawn.setdefault(src, tgt)
        draws += 1
    pairs = list(drawn.items())
    n_train, n_valid = cfg.train_size, cfg.valid_size
    return Corpus(
        train=pairs[:n_train],
        valid=pairs[n_train : n_train + n_valid],
        test=pairs[n_train + n_valid :],
        filtered={"train": {}, "valid": {}, "test": {}},
    )


def pair_maker(cfg: DataConfig) -> PairMaker:
    """The function that draws one (source, target) pair for `cfg.kind`; checks the languages first."""
    if cfg.kind not in PAIR_MAKERS:
        raise CorpusError(f"data.kind = {cfg.kind!r} is not a generated corpus")
    return PAIR_MAKERS[cfg.kind](cfg)


def _dates(src: str, tgt: str) -> PairMaker:
    if src != "en":
        raise CorpusError(f"data.kind = 'dates' writes English sources: set data.src = 'en', not {src!r}")
    target = babel_locale(tgt)

    def make(rng: random.Random) -> Pair:
        day = FIRST_DATE + datetime.timedelta(days=rng.randrange(N_DAYS))
        return date_pair(day, rng.choice(DATE_FORMATS), target)

    return make


def date_pair(day: datetime.date, fmt: str, target: Locale) -> Pair:
    """`day` written by CLDR in English and in `target`, both in the format `fmt` (full, long, medium)."""
    return format_date(day, format=fmt, locale=ENGLISH), format_date(day, format=fmt, locale=target)


def babel_locale(code: str) -> Locale:
    """The Babel locale for a language code such as fr, de, zh, ja or pt-BR."""
    try:
        return Locale.parse(code.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        raise CorpusError(
            f"data.tgt = {code!r} is not a locale Babel knows (try a code such as fr, de, es, zh, ja, pt_BR)"
        ) from None


def num2words_lang(code: str, key: str) -> str:
    """The num2words language for a code, or a CorpusError listing the supported ones."""
    code = code.replace("-", "_")
    for candidate in (code, code[:2]):
        if candidate in CONVERTER_CLASSES:
            return candidate
    raise CorpusError(
        f"{key} = {code!r}: num2words cannot write numbers in this language; "
        f"supported: {', '.join(sorted(CONVERTER_CLASSES))}"
    )


def _numbers(src: str, tgt: str) -> PairMaker:
    src_lang = num2words_lang(src, "data.src")
    tgt_lang = num2words_lang(tgt, "data.tgt")

    def make(rng: random.Random) -> Pair:
        # Uniform over the number of digits first, so small numbers are not vanishingly rare.
        digits = rng.randint(1, len(str(MAX_NUMBER)))
        number = rng.randrange(0 if digits == 1 else 10 ** (digits - 1), 10**digits)
        source = str(number) if rng.random() < 0.5 else _words(number, src_lang)
        return source, _words(number, tgt_lang)

    return make


@functools.lru_cache(maxsize=4096)
def _words(number: int, lang: str) -> str:
    # Small numbers are drawn again and again (there are only ten one-digit ones); num2words is slow.
    return num2words(number, lang=lang)


def _toy(transform: Callable[[list[str]], list[str]]) -> PairMaker:
    def make(rng: random.Random) -> Pair:
        tokens = [rng.choice(TOY_TOKENS) for _ in range(rng.randint(*TOY_LENGTHS))]
        return " ".join(tokens), " ".join(transform(tokens))

    return make


# Each generated data.kind (data.GENERATED_KINDS): name -> the maker of its pairs, given the recipe's data.
PAIR_MAKERS: dict[str, Callable[[DataConfig], PairMaker]] = {
    "dates": lambda cfg: _dates(cfg.src, cfg.tgt),
    "numbers": lambda cfg: _numbers(cfg.src, cfg.tgt),
    "reverse": lambda cfg: _toy(lambda tokens: tokens[::-1]),
    "copy": lambda cfg: _toy(lambda tokens: tokens),
    "sort": lambda cfg: _toy(sorted),
}
