"""Scoring a model on pairs, as validation during training and `s2s-bench eval` both do, and the sample
translations (with their attention) that validation writes beside its scores."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from workbench.engine.data.store import TokenSplit
from workbench.engine.evaluation import Scores, score
from workbench.engine.tokenizers import TokenizerPair
from workbench.engine.translator import Translation, Translator

SAMPLES_PER_VALIDATION = 3


@dataclass(frozen=True)
class Evaluation:
    """A model's scores on pairs: its translations' BLEU, chrF and exact match, and the teacher-forced loss
    per target token and token accuracy (None where no pair could be fed)."""

    scores: Scores
    loss: float | None
    accuracy: float | None
    translations: list[Translation]  # the best of each source
    seconds: float  # translating

    def metrics(self) -> dict[str, Any]:
        """The scores as validation records them."""
        loss, accuracy = self.loss, self.accuracy
        return {
            "loss": None if loss is None else round(loss, 5),
            "ppl": None if loss is None else round(math.exp(min(loss, 50.0)), 3),
            "accuracy": None if accuracy is None else round(accuracy, 4),
            **self.scores.as_dict(),
        }


def evaluate(
    translator: Translator,
    sources: list[str],
    references: list[str],
    beam_size: int,
    language: str,
    teacher_forced: tuple[float, float] | None,
) -> Evaluation:
    """Translate `sources` and score them against `references` in the target `language`, together with
    the loss and token accuracy of the same model fed the references (`evaluation.teacher_forced`)."""
    start = time.perf_counter()
    translations = [best for best, *_ in translator.translate(sources, beam_size)]
    seconds = time.perf_counter() - start
    scores = score([t.text for t in translations], references, language=language)
    loss, accuracy = teacher_forced if teacher_forced is not None else (None, None)
    return Evaluation(scores, loss, accuracy, translations, seconds)


def encode_pairs(
    tokenizers: TokenizerPair, sources: list[str], references: list[str], cap: int
) -> TokenSplit:
    """Pairs of text as token ids, sources cut at `cap` pieces as decoding cuts them; a pair with a side
    that tokenizes to nothing is left out (it has no token to score)."""
    ids = [
        (src[:cap], tgt)
        for src, tgt in zip(tokenizers.src.encode_many(sources), tokenizers.tgt.encode_many(references))
        if src and tgt
    ]
    return TokenSplit.from_ids([src for src, _ in ids], [tgt for _, tgt in ids])


def samples(
    translator: Translator, pairs: list[tuple[str, str]], probes: list[str], beam_size: int
) -> list[dict[str, Any]]:
    """The first SAMPLES_PER_VALIDATION pairs and the recipe's probe sentences, translated with their
    pieces and attention, as `samples.jsonl` holds them."""
    chosen = [(src, ref) for src, ref in pairs[:SAMPLES_PER_VALIDATION]] + [(src, None) for src in probes]
    translations = translator.translate([src for src, _ in chosen], beam_size, attention=True)
    return [
        {
            "src": src,
            "ref": ref,
            "hyp": best.text,
            "src_pieces": best.src_pieces,
            "hyp_pieces": best.tgt_pieces,
            "attention": [[round(w, 4) for w in row] for row in best.attention or []],
        }
        for (src, ref), (best, *_) in zip(chosen, translations)
    ]
