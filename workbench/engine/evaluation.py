"""Corpus scores with sacreBLEU: BLEU, chrF and exact match, with their signatures; and the
teacher-forced scores of a model on token ids: loss per target token and token accuracy."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from sacrebleu.metrics import BLEU, CHRF

from workbench.engine.data.batching import batch_indices
from workbench.engine.data.store import TokenSplit
from workbench.engine.devices import autocast
from workbench.engine.model import Seq2Seq

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


@torch.inference_mode()
def teacher_forced(
    model: Seq2Seq,
    pairs: TokenSplit,
    batch_size: int = 64,
    batch_unit: str = "sentences",
    precision: str = "fp32",
) -> tuple[float, float]:
    """The loss per target token and the token accuracy of `model` on encoded pairs, each target fed its
    gold prefix: the share of target tokens, EOS included, whose highest-scoring piece is the gold one
    (Keras's `metrics=['accuracy']` on a seq2seq model). `precision`: a training precision (autocast)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, tokens, correct = 0.0, 0, 0
    lengths = (pairs.lengths["src"], pairs.lengths["tgt"] + 1)
    for idx in batch_indices(*lengths, batch_size, batch_unit, seed=0, shuffle=False):
        batch = pairs.batch(idx).to(device)
        with autocast(device, precision):
            loss_sum, right = model.loss_and_correct(
                batch.src, batch.src_lengths, batch.tgt_in, batch.tgt_out
            )
        total += loss_sum.item()
        correct += int(right.item())
        tokens += batch.n_tgt_tokens
    model.train(was_training)
    return total / max(tokens, 1), correct / max(tokens, 1)
