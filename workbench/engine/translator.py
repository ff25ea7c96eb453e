"""The one decode path: validation, `s2s-bench decode`, evaluation and the TUI all translate here."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from workbench.engine.checkpoint import load_weights
from workbench.engine.data.batching import pad
from workbench.engine.devices import resolve_device
from workbench.engine.model import Seq2Seq, build_model
from workbench.engine.quantization import quantize_int8
from workbench.engine.recipe import DecodingConfig, RecipeError, check_precision
from workbench.engine.run_folder import RunFolder, RunFolderError
from workbench.engine.search import beam_search, greedy_search, max_lengths
from workbench.engine.tokenizers import TokenizerPair, load_tokenizers


@dataclass
class Translation:
    text: str
    score: float
    src_pieces: list[str]
    tgt_pieces: list[str]
    # attention[i][j]: weight of source piece j when emitting target piece i; last row: end of sentence.
    attention: list[list[float]] | None = None
    dropped_pieces: int = 0  # source pieces past decoding.max_input_pieces, not translated


def decoding_model(model: Seq2Seq, precision: str, device: torch.device) -> Seq2Seq:
    """The model as the decode paths run it: on `device`, in eval mode, in a `decoding.precision`.

    fp32 and bf16 convert the weights and keep the output projection's transposed copy (see
    RecurrentDecoder.keep_output_transposed); int8 quantizes them (quantization.py, CPU only).
    """
    if precision == "int8":
        if device.type != "cpu":  # before any copy: a model's weights on a GPU, for nothing
            raise RecipeError(
                "decoding precision int8 runs on the CPU only; use --device cpu, or fp32 or bf16"
            )
        return quantize_int8(model)
    model = model.to(device, torch.bfloat16 if precision == "bf16" else torch.float32).eval()
    model.decoder.keep_output_transposed()  # after the move: the copy lives where it is used
    return model


class Translator:
    """A model, its tokenizers and decoding settings, translating lists of sentences in batches."""

    def __init__(
        self, model: Seq2Seq, tokenizers: TokenizerPair, decoding: DecodingConfig, device: torch.device
    ):
        self.model = model
        self.tokenizers = tokenizers
        self.decoding = decoding
        self.device = device
        self.checkpoint_stamp: float | None = None

    @classmethod
    def from_run(
        cls,
        run: RunFolder | Path | str,
        checkpoint: str = "best",
        device: str = "cpu",
        precision: str | None = None,
    ) -> Translator:
        """Load a run's tokenizers and a checkpoint (`best` is `last` until the first validation).

        precision (fp32 | bf16 | int8) overrides the recipe's `decoding.precision`.
        """
        run = run if isinstance(run, RunFolder) else RunFolder.open(run)
        recipe = run.recipe()
        if precision is not None:
            recipe.decoding = dataclasses.replace(recipe.decoding, precision=check_precision(precision))
        if checkpoint == "best" and not run.has_checkpoint("best"):
            checkpoint = "last"
        if not run.has_checkpoint(checkpoint):
            raise RunFolderError(f"{run.path}: no '{checkpoint}' checkpoint yet (has the run saved one?)")
        tokenizers = load_tokenizers(run.tokenizer_dir)
        model = build_model(recipe.model, tokenizers.src.vocab_size, tokenizers.tgt.vocab_size)
        weights = run.checkpoints_dir / f"{checkpoint}.safetensors"
        stamp = weights.stat().st_mtime
        load_weights(run.checkpoints_dir, checkpoint, model)
        # int8's kernels are the CPU's: `auto` picks the CPU for it, as it picks a GPU for fp32 and bf16.
        int8 = recipe.decoding.precision == "int8"
        target = resolve_device("cpu" if device == "auto" and int8 else device)
        model = decoding_model(model, recipe.decoding.precision, target)
        translator = cls(model, tokenizers, recipe.decoding, target)
        translator.checkpoint_stamp = stamp
        return translator

    @torch.inference_mode()
    def translate(
        self,
        sentences: list[str],
        beam_size: int | None = None,
        n_best: int = 1,
        attention: bool = False,
        batch_size: int = 64,
    ) -> list[list[Translation]]:
        """The n best translations of each sentence, in input order (beam 1 is greedy search)."""
        beam = beam_size or self.decoding.beam_size
        n_best = min(n_best, beam)
        was_training = self.model.training
        self.model.eval()
        cap = self.decoding.max_input_pieces
        # Stripped as the corpus readers strip training lines: the model never saw surrounding whitespace.
        src_ids = [self.tokenizers.src.encode(s.strip()) for s in sentences]
        dropped = [max(len(ids) - cap, 0) for ids in src_ids]
        src_ids = [ids[:cap] for ids in src_ids]
        results: list[list[Translation]] = [[] for _ in sentences]
        order = sorted((i for i, ids in enumerate(src_ids) if ids), key=lambda i: len(src_ids[i]))
        for i in range(len(sentences)):
            if not src_ids[i]:  # nothing to translate
                results[i] = [Translation("", 0.0, [], [], [[]] if attention else None)]
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            src, lengths = pad([src_ids[i] for i in chunk])
            src = src.to(self.device)
            limits = max_lengths(lengths, self.decoding.max_length_ratio, self.decoding.max_length_offset)
            if beam == 1:
                alpha = self.decoding.length_penalty  # scores on beam search's scale
                hyps = greedy_search(self.model, src, lengths, limits, attention=attention, alpha=alpha)
            else:
                hyps = beam_search(
                    self.model,
                    src,
                    lengths,
                    beam,
                    n_best,
                    self.decoding.length_penalty,
                    limits,
                    attention=attention,
                )
            for i, nbest in zip(chunk, hyps):
                src_pieces = self.tokenizers.src.pieces(src_ids[i])
                results[i] = [self._translation(h, src_pieces, dropped[i]) for h in nbest[:n_best]] or [
                    # no hypothesis at all (non-finite scores: weights that diverged): an empty line
                    Translation("", float("-inf"), src_pieces, [], [[]] if attention else None, dropped[i])
                ]
        self.model.train(was_training)
        return results

    def _translation(self, hyp, src_pieces: list[str], dropped: int) -> Translation:
        tgt = self.tokenizers.tgt
        weights = hyp.attention.float().tolist() if hyp.attention is not None else None
        return Translation(
            tgt.decode(hyp.tokens), float(hyp.score), src_pieces, tgt.pieces(hyp.tokens), weights, dropped
        )
