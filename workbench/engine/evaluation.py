"""Corpus scores with sacreBLEU: BLEU, chrF and exact match, with their signatures."""

from __future__ import annotations

from dataclasses import dataclass

from sacrebleu.metrics import BLEU, CHRF

# sacreBLEU's tokenizer for languages written without spaces between words.
_BLEU_TOKENIZERS = {"zh": "zh", "ja": "char", "ko": "char", "th": "char"}


@dataclass
class Scores:
    bleu: float
    chrf: float
    exact: float  # fraction of hypotheses equal to their reference
    bleu_signature: str
    chrf_signature: str

    def as_dict(self) -> dict[str, float]:
        return {"bleu": round(self.bleu, 2), "chrf": round(self.chrf, 2), "exact": round(self.exact, 4)}


def bleu_tokenizer(language: str) -> str:
    """The sacreBLEU tokenizer for a target language code (13a unless the script needs another)."""
    return _BLEU_TOKENIZERS.get(language.split("_")[0].split("-")[0].lower(), "13a")


def score(hypotheses: list[str], references: list[str], language: str = "en") -> Scores:
    """Cased corpus BLEU and chrF of `hypotheses` against one reference each."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    if not hypotheses:
        raise ValueError("nothing to score")
    bleu = BLEU(tokenize=bleu_tokenizer(language))
    chrf = CHRF()
    b = bleu.corpus_score(hypotheses, [references])
    c = chrf.corpus_score(hypotheses, [references])
    exact = sum(h == r for h, r in zip(hypotheses, references)) / len(hypotheses)
    return Scores(b.score, c.score, exact, str(bleu.get_signature()), str(chrf.get_signature()))
