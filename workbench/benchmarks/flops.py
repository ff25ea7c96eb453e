"""Model FLOPs of the attention seq2seq model, counted from its architecture (ModelConfig + vocab sizes).

Only matrix products count: a (m, k) x (k, n) product is 2*m*n*k FLOPs; embedding lookups,
element-wise gates, tanh, softmax and the loss are free (they are memory-bound and small beside the
matmuls). Training is 3x the forward pass (the backward pass needs two products per forward one: the
gradient of the input and of the weight). Per sentence of source length S and target length T
(T counts EOS: the decoder runs T steps), with G gates (GRU 3, LSTM 4, RNN 1), embedding E, hidden H,
D encoder directions, encoder output size K = D*H and attention size A, the forward pass costs

    encoder:   S * sum_layers D * (2*I_l*G*H + 2*H*G*H)   I_1 = E, I_l = K above
               + S * 2*K*A                                attention keys, projected once per source
    decoder:   T * sum_layers (2*J_l*G*H + 2*H*G*H)       J_1 = E (+ H with input feeding), J_l = H
               + T * (2*H*A + S*(score + 2*K))            query projection, scores, weighted sum
               + T * 2*(H + K)*H                          attentional layer tanh(W [h; c])
               + T * 2*H*V  (tied: 2*H*E + 2*E*V)         output projection
    once:      2*K*H                                      bridge to the decoder's first state

where score is 2*A per source position for additive attention (v . tanh(...)) and 2*H for dot and
general. Padding is not counted: it is compute the model wastes, which MFU then shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from workbench.engine.recipe import ModelConfig

GATES = {"gru": 3, "lstm": 4, "rnn": 1}
TRAINING_MULTIPLIER = 3  # forward + backward (two products per forward product)


@dataclass(frozen=True)
class ModelFlops:
    """Forward-pass FLOPs split by what they scale with; `training_*` give forward + backward."""

    per_src_token: int  # encoder RNN + attention key projection
    per_tgt_token: int  # decoder RNN, query projection, attentional layer, output projection
    per_src_tgt_pair: int  # attention scores and weighted sum: one target step against one source token
    per_sentence: int  # bridge
    parts: dict[str, int]  # the same, named finer (per the unit each part scales with)

    def forward(self, src_lengths: Sequence[int], tgt_lengths: Sequence[int]) -> int:
        """Forward FLOPs of a batch of sentences with these real lengths (target lengths count EOS)."""
        n_src, n_tgt = sum(src_lengths), sum(tgt_lengths)
        pairs = sum(s * t for s, t in zip(src_lengths, tgt_lengths, strict=True))
        return (
            n_src * self.per_src_token
            + n_tgt * self.per_tgt_token
            + pairs * self.per_src_tgt_pair
            + len(src_lengths) * self.per_sentence
        )

    def training(self, src_lengths: Sequence[int], tgt_lengths: Sequence[int]) -> int:
        """Forward + backward FLOPs of one training step on a batch of these real lengths."""
        return TRAINING_MULTIPLIER * self.forward(src_lengths, tgt_lengths)

    def training_per_tgt_token(self, mean_src_len: float, mean_tgt_len: float) -> float:
        """Training FLOPs per target token for sentences of these average lengths."""
        per_sentence = (
            mean_src_len * self.per_src_token
            + mean_tgt_len * self.per_tgt_token
            + mean_src_len * mean_tgt_len * self.per_src_tgt_pair
            + self.per_sentence
        )
        return TRAINING_MULTIPLIER * per_sentence / mean_tgt_len


def _rnn_layer(input_size: int, hidden: int, gates: int) -> int:
    """One RNN layer, one direction, one time step: input and recurrent products."""
    return 2 * input_size * gates * hidden + 2 * hidden * gates * hidden


def count_flops(cfg: ModelConfig, src_vocab: int, tgt_vocab: int) -> ModelFlops:
    """Forward FLOPs of the model a recipe's `[model]` section builds (see the module docstring)."""
    del src_vocab  # embeddings are lookups: the source vocabulary costs nothing
    g, e, h = GATES[cfg.cell], cfg.embedding_size, cfg.hidden_size
    dirs = 2 if cfg.bidirectional else 1
    k = dirs * h
    parts: dict[str, int] = {}

    parts["encoder_rnn"] = sum(
        dirs * _rnn_layer(e if layer == 0 else k, h, g) for layer in range(cfg.encoder_layers)
    )
    rnn_in = e + (h if cfg.input_feeding else 0)
    parts["decoder_rnn"] = sum(
        _rnn_layer(rnn_in if layer == 0 else h, h, g) for layer in range(cfg.decoder_layers)
    )

    key_proj = query_proj = score = context = attentional = 0
    if cfg.attention in ("bahdanau", "concat"):
        a = h  # additive attention's size is the decoder's hidden size
        key_proj, query_proj, score = 2 * k * a, 2 * h * a, 2 * a
    elif cfg.attention == "general":
        key_proj, score = 2 * k * h, 2 * h
    elif cfg.attention == "dot":
        score = 2 * h
    if cfg.attention != "none":
        context = 2 * k
        attentional = 2 * (h + k) * h
    parts["attention_keys"] = key_proj
    parts["attention_query"] = query_proj
    parts["attention_scores"] = score
    parts["attention_context"] = context
    parts["attentional_layer"] = attentional

    if cfg.tie_embeddings:
        tie = 2 * h * e if h != e else 0
        parts["output_projection"] = tie + 2 * e * tgt_vocab
    else:
        parts["output_projection"] = 2 * h * tgt_vocab
    parts["bridge"] = 2 * k * h if cfg.decoder_init == "bridge" else 0

    return ModelFlops(
        per_src_token=parts["encoder_rnn"] + key_proj,
        per_tgt_token=parts["decoder_rnn"] + query_proj + attentional + parts["output_projection"],
        per_src_tgt_pair=score + context,
        per_sentence=parts["bridge"],
        parts=parts,
    )
