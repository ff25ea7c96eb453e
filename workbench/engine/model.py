"""The attention sequence-to-sequence model: a recurrent encoder and decoder, built from a ModelConfig."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workbench.engine.decoders import DecoderState, RecurrentDecoder
from workbench.engine.encoders import EncoderOutput, RecurrentEncoder
from workbench.engine.loss import cross_entropy_and_correct, projected_cross_entropy
from workbench.engine.recipe import ModelConfig, RecipeError, model_problem
from workbench.engine.special_tokens import PAD

__all__ = ["DecoderState", "EncoderOutput", "Seq2Seq", "build_model"]

EMBEDDING_STD = 0.1


class Seq2Seq(nn.Module):
    """Encoder-decoder translation model; `forward` for training, `encode`/`start`/`step` for search."""

    def __init__(self, encoder: RecurrentEncoder, decoder: RecurrentDecoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def encode(self, src: Tensor, src_lengths: Tensor) -> EncoderOutput:
        """Encode src (B, S) with real lengths (B,) (CPU); attention keys are projected here, once."""
        enc = self.encoder(src, src_lengths)
        if self.decoder.attention is not None:
            enc = enc.with_keys(self.decoder.attention.precompute(enc.states))
        return enc

    def forward(
        self,
        src: Tensor,
        src_lengths: Tensor,
        tgt_in: Tensor,
        sampling_prob: float = 0.0,
        return_attention: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Logits (B, T, V) for target inputs (B, T) (BOS first), and attention (B, T, S) if asked for.

        sampling_prob is the chance of feeding the model's own previous greedy prediction instead of
        the gold token (1 - teacher forcing ratio, or scheduled sampling); 0 takes the fast path.
        """
        outputs, attention = self._decode(src, src_lengths, tgt_in, sampling_prob)
        return self.decoder.logits(outputs), attention if return_attention else None

    def loss(
        self,
        src: Tensor,
        src_lengths: Tensor,
        tgt_in: Tensor,
        tgt_out: Tensor,
        label_smoothing: float = 0.0,
        sampling_prob: float = 0.0,
    ) -> Tensor:
        """Summed cross-entropy of the targets tgt_out (B, T) (PAD ignored) given the inputs tgt_in.

        The same value as the cross-entropy of `forward`'s logits, without ever holding them whole.
        """
        outputs, _ = self._decode(src, src_lengths, tgt_in, sampling_prob)
        hidden = self.decoder.projection_input(outputs)
        return projected_cross_entropy(hidden, self.decoder.output_layer.weight, tgt_out, label_smoothing)

    def loss_and_correct(
        self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor, tgt_out: Tensor
    ) -> tuple[Tensor, Tensor]:
        """`loss` under teacher forcing, and how many non-PAD targets are the argmax of their logits."""
        outputs, _ = self._decode(src, src_lengths, tgt_in, 0.0)
        hidden = self.decoder.projection_input(outputs)
        return cross_entropy_and_correct(hidden, self.decoder.output_layer.weight, tgt_out)

    def _decode(
        self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor, sampling_prob: float
    ) -> tuple[Tensor, Tensor | None]:
        enc = self.encode(src, src_lengths)
        return self.decoder(tgt_in, self.decoder.init_state(enc), enc, sampling_prob)

    def start(self, enc: EncoderOutput) -> DecoderState:
        """The decoder state before the first (BOS) step."""
        return self.decoder.init_state(enc)

    def step(
        self, prev_tokens: Tensor, state: DecoderState, enc: EncoderOutput
    ) -> tuple[Tensor, DecoderState, Tensor | None]:
        """One decoding step from the previous tokens (N,): log-probs (N, V), new state, attention (N, S).

        The log-probs are at least fp32 (a bf16 model's beam scores sum in fp32). Search runs the same
        maths through fast_paths/search_step.py where it applies; this is its reference.
        """
        out, state, attention = self.decoder.step(self.decoder.embed(prev_tokens), state, enc)
        logits = self.decoder.logits(out)
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        return F.log_softmax(logits, dim=-1), state, attention

    def load_pretrained(
        self, src_matrix: Tensor | None = None, tgt_matrix: Tensor | None = None, freeze: bool = False
    ) -> None:
        """Copy pretrained vectors (vocab, embedding_size) into the embeddings; freeze stops their training.

        With tied embeddings a frozen target matrix freezes the output layer too (it is the same tensor).
        """
        for name, embedding, matrix in (
            ("source", self.encoder.embedding, src_matrix),
            ("target", self.decoder.embedding, tgt_matrix),
        ):
            if matrix is None:
                continue
            if matrix.shape != embedding.weight.shape:
                raise ValueError(
                    f"{name} vectors have shape {tuple(matrix.shape)}; the model's {name} embeddings "
                    f"need {tuple(embedding.weight.shape)}"
                )
            with torch.no_grad():
                embedding.weight.copy_(matrix)
                embedding.weight[PAD].zero_()
            if freeze:
                embedding.weight.requires_grad_(False)


def build_model(cfg: ModelConfig, src_vocab: int, tgt_vocab: int) -> Seq2Seq:
    """A freshly initialised model for the recipe's model section and the two vocabulary sizes."""
    if problem := model_problem(cfg):
        raise RecipeError(f"model: {problem}")
    encoder = RecurrentEncoder(
        cell=cfg.cell,
        vocab_size=src_vocab,
        embedding_size=cfg.embedding_size,
        hidden_size=cfg.hidden_size,
        encoder_layers=cfg.encoder_layers,
        bidirectional=cfg.bidirectional,
        dropout=cfg.dropout,
        embedding_dropout=cfg.embedding_dropout,
        one_hot=cfg.one_hot,
        reverse_source=cfg.reverse_source,
    )
    decoder = RecurrentDecoder(
        cell=cfg.cell,
        vocab_size=tgt_vocab,
        embedding_size=cfg.embedding_size,
        hidden_size=cfg.hidden_size,
        encoder=encoder,
        decoder_layers=cfg.decoder_layers,
        attention=cfg.attention,
        input_feeding=cfg.input_feeding,
        decoder_init=cfg.decoder_init,
        dropout=cfg.dropout,
        embedding_dropout=cfg.embedding_dropout,
        tie_embeddings=cfg.tie_embeddings,
        one_hot=cfg.one_hot,
        attention_combine=cfg.attention_combine,
        context_every_step=cfg.context_every_step,
        decoder_order=cfg.decoder_order,
        deep_output=cfg.deep_output,
    )
    model = Seq2Seq(encoder, decoder)
    initialise(model)
    return model


def initialise(model: nn.Module) -> None:
    """Joey NMT's defaults: Xavier-uniform weights (per gate for RNNs), zero biases, N(0, 0.1) embeddings.

    LSTM forget-gate biases start at 1 (Jozefowicz et al. 2015).
    """
    embeddings = [m for m in model.modules() if isinstance(m, nn.Embedding)]
    tied = {id(m.weight) for m in embeddings}
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear) and id(module.weight) not in tied:
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.RNNBase, nn.RNNCellBase)):
                gates = {"LSTM": 4, "GRU": 3}.get(type(module).__name__.replace("Cell", ""), 1)
                for name, param in module.named_parameters():
                    if name.startswith("weight"):
                        _xavier_uniform_gates(param, gates)
                    else:
                        nn.init.zeros_(param)
                        if gates == 4 and name.startswith("bias_ih"):
                            size = param.size(0) // 4
                            param[size : 2 * size].fill_(1.0)
        # Embeddings last: a tied output layer shares their weight.
        for embedding in embeddings:
            nn.init.normal_(embedding.weight, mean=0.0, std=EMBEDDING_STD)
            if embedding.padding_idx is not None:
                embedding.weight[embedding.padding_idx].zero_()


def _xavier_uniform_gates(weight: Tensor, gates: int) -> None:
    # RNN weights stack one matrix per gate; Xavier's fan-out is that of one gate's matrix.
    fan_out, fan_in = weight.size(0) // gates, weight.size(1)
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    nn.init.uniform_(weight, -bound, bound)
