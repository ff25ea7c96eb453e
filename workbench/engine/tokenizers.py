"""Tokenizers: sentencepiece (unigram or BPE), characters, or whitespace-separated words.

All share the special ids of `special_tokens` (PAD=0, UNK=1, BOS=2, EOS=3). `train_tokenizers` writes
them into a run folder's `tokenizer/` and `load_tokenizers` reads them back: protobuf and JSON only,
so loading never executes code.
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.engine.atomic_files import read_json
from workbench.engine.errors import UserError
from workbench.engine.special_tokens import BOS, EOS, PAD, SPECIAL_PIECES, UNK

if TYPE_CHECKING:  # the recipe reads this module's registry (TOKENIZERS) for its checks
    from workbench.engine.data import Pair
    from workbench.engine.recipe import TokenizerConfig

FORMAT_VERSION = 1
SPACE_PIECE = "▁"
# What an unknown id decodes to: sentencepiece's own surface for it, used by every tokenizer.
UNK_SURFACE = "⁇"
# Fixed, not os.cpu_count(): sentencepiece's result depends on the thread count, runs must reproduce.
SPM_THREADS = 4
SPECIAL_IDS = {"pad": PAD, "unk": UNK, "bos": BOS, "eos": EOS}


class TokenizerError(UserError):
    """A tokenizer that cannot be trained or loaded; the message says which file or setting."""


class Tokenizer:
    """Text <-> ids. `encode` adds no BOS/EOS; `decode` skips PAD, BOS and EOS wherever they are."""

    kind: str = ""

    @classmethod
    def train(cls, cfg: TokenizerConfig, sides: list[list[str]], seed: int) -> Tokenizer:
        """A tokenizer trained on the sentences of `sides` (one side, or both for a joint vocabulary)."""
        raise NotImplementedError

    @classmethod
    def load(cls, folder: Path, side: str) -> Tokenizer:
        """The `side` ("src" or "tgt") tokenizer that `save` wrote into `folder`."""
        raise NotImplementedError

    def save(self, folder: Path, side: str) -> None:
        """Write the model or vocabulary file of `side` into `folder`."""
        raise NotImplementedError

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def encode(self, text: str) -> list[int]:
        """The ids of `text`, without BOS or EOS."""
        raise NotImplementedError

    def encode_many(self, texts: Iterable[str]) -> list[list[int]]:
        """`encode` over many texts."""
        return [self.encode(text) for text in texts]

    def decode(self, ids: Iterable[int]) -> str:
        """The text of `ids`; PAD, BOS and EOS are skipped, UNK shows as ⁇."""
        raise NotImplementedError

    def pieces(self, ids: Iterable[int]) -> list[str]:
        """One display string per id, for attention grids."""
        raise NotImplementedError


class SentencePieceTokenizer(Tokenizer):
    """A sentencepiece model; decode restores the encoded text exactly (no normalization)."""

    kind = "sentencepiece"

    def __init__(self, model_proto: bytes) -> None:
        import sentencepiece as spm  # here: the recipe's checks read TOKENIZERS without loading it

        self.model_proto = model_proto
        self.processor = spm.SentencePieceProcessor(model_proto=model_proto)

    @classmethod
    def train(cls, cfg: TokenizerConfig, sides: list[list[str]], seed: int) -> SentencePieceTokenizer:
        return _train_sentencepiece(cfg, [sentence for texts in sides for sentence in texts], seed)

    @classmethod
    def load(cls, folder: Path, side: str) -> SentencePieceTokenizer:
        path = folder / f"{side}.model"
        try:
            return cls(path.read_bytes())
        except FileNotFoundError:
            raise TokenizerError(f"{path}: no such file") from None
        except RuntimeError as exc:
            raise TokenizerError(f"{path}: not a sentencepiece model ({exc})") from None

    def save(self, folder: Path, side: str) -> None:
        (folder / f"{side}.model").write_bytes(self.model_proto)

    @property
    def vocab_size(self) -> int:
        return self.processor.get_piece_size()

    def encode(self, text: str) -> list[int]:
        return self.processor.encode(text, out_type=int)

    def encode_many(self, texts: Iterable[str]) -> list[list[int]]:
        return self.processor.encode(list(texts), out_type=int)

    def decode(self, ids: Iterable[int]) -> str:
        # sentencepiece already drops control ids; this also drops ids outside the vocabulary.
        size = self.vocab_size
        kept = [int(i) for i in ids if 0 <= i < size and i not in (PAD, BOS, EOS)]
        return self.processor.decode(kept).strip()

    def pieces(self, ids: Iterable[int]) -> list[str]:
        size = self.vocab_size
        return [self.processor.id_to_piece(i) if 0 <= i < size else SPECIAL_PIECES[UNK] for i in ids]


class VocabTokenizer(Tokenizer):
    """A fixed list of pieces (index = id, the four special pieces first); the base of char and word."""

    noun = ""  # what its pieces are, in a summary of the vocabulary

    def __init__(self, vocab: list[str]) -> None:
        if tuple(vocab[: len(SPECIAL_PIECES)]) != SPECIAL_PIECES:
            raise TokenizerError(f"a vocabulary must start with {', '.join(SPECIAL_PIECES)}")
        self.vocab = vocab
        self.ids = {piece: i for i, piece in enumerate(vocab) if i >= len(SPECIAL_PIECES)}

    @classmethod
    def train(cls, cfg: TokenizerConfig, sides: list[list[str]], seed: int) -> VocabTokenizer:
        """The special pieces, then the pieces seen at least min_freq times, most frequent first."""
        counts: Counter[str] = Counter()
        for texts in sides:
            for text in texts:
                counts.update(cls.split(text))
        limit = cfg.vocab_size - len(SPECIAL_PIECES)
        return cls(list(SPECIAL_PIECES) + _most_frequent(counts, cfg.min_freq, limit))

    @classmethod
    def load(cls, folder: Path, side: str) -> VocabTokenizer:
        path = folder / f"{side}.vocab.json"
        vocab = _read_json(path)
        if not isinstance(vocab, list) or not all(isinstance(piece, str) for piece in vocab):
            raise TokenizerError(f"{path}: expected a JSON list of strings")
        try:
            return cls(vocab)
        except TokenizerError as exc:
            raise TokenizerError(f"{path}: {exc}") from None

    def save(self, folder: Path, side: str) -> None:
        text = json.dumps(self.vocab, ensure_ascii=False, indent=0)
        (folder / f"{side}.vocab.json").write_text(text + "\n", encoding="utf-8")

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @staticmethod
    def split(text: str) -> list[str]:
        """The pieces of `text` before lookup."""
        raise NotImplementedError

    def join(self, pieces: list[str]) -> str:
        """The text of decoded pieces."""
        raise NotImplementedError

    def encode(self, text: str) -> list[int]:
        ids = self.ids
        return [ids.get(piece, UNK) for piece in self.split(text)]

    def decode(self, ids: Iterable[int]) -> str:
        return self.join([self._surface(i) for i in ids if i not in (PAD, BOS, EOS)])

    def pieces(self, ids: Iterable[int]) -> list[str]:
        return [SPECIAL_PIECES[i] if 0 <= i < len(SPECIAL_PIECES) else self._surface(i) for i in ids]

    def _surface(self, i: int) -> str:
        return self.vocab[i] if len(SPECIAL_PIECES) <= i < len(self.vocab) else UNK_SURFACE


class CharTokenizer(VocabTokenizer):
    """One piece per character; a space is a piece of its own, displayed as ▁."""

    kind = "char"
    noun = "characters"

    @staticmethod
    def split(text: str) -> list[str]:
        return list(text)

    def join(self, pieces: list[str]) -> str:
        return "".join(pieces)

    def pieces(self, ids: Iterable[int]) -> list[str]:
        return [SPACE_PIECE if piece == " " else piece for piece in super().pieces(ids)]


class WordTokenizer(VocabTokenizer):
    """One piece per whitespace-separated word; decode joins words with single spaces."""

    kind = "word"
    noun = "words"

    @staticmethod
    def split(text: str) -> list[str]:
        return text.split()

    def join(self, pieces: list[str]) -> str:
        return " ".join(pieces)


# tokenizer.kind: name -> its tokenizer class (train, load, save). The recipe's checks read the names.
TOKENIZERS: dict[str, type[Tokenizer]] = {
    cls.kind: cls for cls in (SentencePieceTokenizer, CharTokenizer, WordTokenizer)
}


@dataclass
class TokenizerPair:
    src: Tokenizer
    tgt: Tokenizer
    joint: bool


def train_tokenizers(cfg: TokenizerConfig, pairs: list[Pair], folder: Path, seed: int) -> TokenizerPair:
    """Train source and target tokenizers on `pairs` and write them into `folder`."""
    if cfg.kind not in TOKENIZERS:
        raise TokenizerError(f"tokenizer.kind must be one of {', '.join(TOKENIZERS)}; got {cfg.kind!r}")
    if not pairs:
        raise TokenizerError("cannot train a tokenizer on an empty corpus")
    cls = TOKENIZERS[cfg.kind]
    sources = [src for src, _ in pairs]
    targets = [tgt for _, tgt in pairs]
    if cfg.joint:
        src = tgt = cls.train(cfg, [sources, targets], seed)
    else:
        src, tgt = cls.train(cfg, [sources], seed), cls.train(cfg, [targets], seed)
    tokenizers = TokenizerPair(src, tgt, cfg.joint)
    save_tokenizers(tokenizers, folder)
    return tokenizers


def vocabulary_summary(tokenizers: TokenizerPair, pairs: list[Pair], unk_percent: tuple[float, float]) -> str:
    """One line on what a vocabulary covers: for char and word vocabularies how many of the distinct pieces
    of the pairs it was built from were kept, for every kind the share of source and target tokens in the
    training data (`unk_percent`, as measured when encoding it) that are <unk>."""
    unk = (
        f"<unk> is {unk_percent[0]:.1f}% of source tokens and {unk_percent[1]:.1f}% of "
        "target tokens in the training data"
    )
    src, tgt = tokenizers.src, tokenizers.tgt
    if not isinstance(src, VocabTokenizer) or not isinstance(tgt, VocabTokenizer):
        return f"{src.kind} vocabulary: {unk}"
    noun = src.noun

    def kept(tokenizer: VocabTokenizer, texts: list[str]) -> str:
        distinct = {piece for text in texts for piece in tokenizer.split(text)}
        return f"{tokenizer.vocab_size - len(SPECIAL_PIECES):,} of {len(distinct):,}"

    sources, targets = [s for s, _ in pairs], [t for _, t in pairs]
    if tokenizers.joint:
        sides = f"{kept(src, sources + targets)} {noun} (source and target) kept"
    else:
        sides = f"{kept(src, sources)} source {noun} and {kept(tgt, targets)} target {noun} kept"
    return f"{src.kind} vocabulary: {sides}; {unk}"


def save_tokenizers(tokenizers: TokenizerPair, folder: Path) -> None:
    """Write `tokenizer.json` and the two model or vocabulary files into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    kind = tokenizers.src.kind
    for side, tokenizer in (("src", tokenizers.src), ("tgt", tokenizers.tgt)):
        tokenizer.save(folder, side)
    meta = {
        "format": FORMAT_VERSION,
        "kind": kind,
        "joint": tokenizers.joint,
        "special_ids": SPECIAL_IDS,
        "special_pieces": list(SPECIAL_PIECES),
        "src_vocab_size": tokenizers.src.vocab_size,
        "tgt_vocab_size": tokenizers.tgt.vocab_size,
    }
    (folder / "tokenizer.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def load_tokenizers(folder: Path) -> TokenizerPair:
    """Read the tokenizers `train_tokenizers` wrote into `folder`."""
    meta_path = folder / "tokenizer.json"
    meta = _read_json(meta_path)
    if not isinstance(meta, dict):
        raise TokenizerError(f"{meta_path}: not a JSON object")
    if meta.get("special_ids") != SPECIAL_IDS:
        raise TokenizerError(f"{meta_path}: special ids {meta.get('special_ids')} differ from {SPECIAL_IDS}")
    kind = meta.get("kind")
    if kind not in TOKENIZERS:
        raise TokenizerError(f"{meta_path}: unknown tokenizer kind {kind!r}")
    src, tgt = (TOKENIZERS[kind].load(folder, side) for side in ("src", "tgt"))
    for side, tokenizer in (("src", src), ("tgt", tgt)):
        if meta.get(f"{side}_vocab_size") != tokenizer.vocab_size:
            raise TokenizerError(
                f"{meta_path}: {side}_vocab_size is {meta.get(f'{side}_vocab_size')} "
                f"but the {side} tokenizer has {tokenizer.vocab_size} pieces"
            )
    return TokenizerPair(src, tgt, bool(meta.get("joint")))


def _read_json(path: Path) -> Any:
    """A tokenizer's JSON file; a TokenizerError naming it when it is missing or not JSON."""
    try:
        return read_json(path)
    except FileNotFoundError:
        raise TokenizerError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise TokenizerError(f"{path}: not valid JSON ({exc})") from None


def _train_sentencepiece(cfg: TokenizerConfig, sentences: list[str], seed: int) -> SentencePieceTokenizer:
    import sentencepiece as spm

    spm.set_random_generator_seed(seed)
    model = io.BytesIO()
    longest = max(len(s.encode("utf-8")) for s in sentences)
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=model,
            model_type=cfg.model_type,
            vocab_size=cfg.vocab_size,
            # Small corpora (the generated tasks) have fewer pieces than vocab_size: shrink, don't fail.
            hard_vocab_limit=False,
            character_coverage=cfg.character_coverage,
            pad_id=PAD,
            unk_id=UNK,
            bos_id=BOS,
            eos_id=EOS,
            # Identity normalization and kept whitespace make decode(encode(text)) == text,
            # so outputs are scored against references exactly as written.
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            max_sentence_length=max(4192, longest + 1),
            num_threads=SPM_THREADS,
            minloglevel=2,
        )
    except RuntimeError as exc:
        too_small = re.search(r"smaller than required_chars\. (\d+) vs (\d+)", str(exc))
        if too_small:
            raise TokenizerError(
                f"tokenizer.vocab_size = {cfg.vocab_size} leaves no room for the {too_small[2]} pieces "
                "the corpus needs (its characters and the special tokens): raise tokenizer.vocab_size "
                "or lower tokenizer.character_coverage"
            ) from None
        raise TokenizerError(f"sentencepiece training failed: {exc}") from None
    return SentencePieceTokenizer(model.getvalue())


def _most_frequent(counts: Counter[str], min_freq: int, limit: int) -> list[str]:
    """Pieces seen at least `min_freq` times, most frequent first (ties alphabetical), at most `limit`."""
    kept = (piece for piece, n in counts.items() if n >= min_freq and piece not in SPECIAL_PIECES)
    return sorted(kept, key=lambda piece: (-counts[piece], piece))[:limit]
