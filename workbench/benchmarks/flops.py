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
               + T * (2*H*A + S*(score + 2*C))            query projection, scores, weighted sum
               + T * 2*(H + C)*H                          attentional layer tanh(W [h; c])
               + T * 2*H*V  (tied: 2*H*E + 2*E*V)         output projection
    once:      2*K*H                                      bridge to the decoder's first state

where score is 2*A per source position for additive attention (v . tanh(...)) and 2*H for dot, general
and cosine, and C is the context's size: K, or H for cosine (its context sums the projected keys, and
its keys are projected to H: 2*K*H a source token). The other layouts:
    one_hot:                 E is each side's vocabulary size (a dense one-hot input, multiplied in full)
    attention_combine="add": no attentional layer; 2*C*H a target token projects c to H where C != H
    decoder_order="bahdanau", context_every_step: J_1 = E + C, and the deep-output layer
                             tanh(W [s; c; E y]) costs 2*(H + C + E)*H a target token in place of the
                             attentional layer (context_every_step: C = K, and no attention at all)

Normalising cosine's vectors, like the other element-wise work, is not counted. Padding is not counted
either: it is compute the model wastes, which MFU then shows.
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
    g, h = GATES[cfg.cell], cfg.hidden_size
    src_e, tgt_e = (src_vocab, tgt_vocab) if cfg.one_hot else (cfg.embedding_size,) * 2
    dirs = 2 if cfg.bidirectional else 1
    k = dirs * h
    attends = cfg.attention != "none"
    deep = cfg.decoder_order == "bahdanau" or cfg.context_every_step
    c = h if cfg.attention == "cosine" else k  # the context's size
    parts: dict[str, int] = {}

    parts["encoder_rnn"] = sum(
        dirs * _rnn_layer(src_e if layer == 0 else k, h, g) for layer in range(cfg.encoder_layers)
    )
    rnn_in = tgt_e + (h if cfg.input_feeding else 0) + (c if deep else 0)
    parts["decoder_rnn"] = sum(
        _rnn_layer(rnn_in if layer == 0 else h, h, g) for layer in range(cfg.decoder_layers)
    )

    key_proj = query_proj = score = 0
    if cfg.attention in ("bahdanau", "concat"):
        a = h  # additive attention's size is the decoder's hidden size
        key_proj, query_proj, score = 2 * k * a, 2 * h * a, 2 * a
    elif cfg.attention in ("general", "cosine"):
        key_proj, score = 2 * k * h, 2 * h
    elif cfg.attention == "dot":
        score = 2 * h
    parts["attention_keys"] = key_proj
    parts["attention_query"] = query_proj
    parts["attention_scores"] = score
    parts["attention_context"] = 2 * c if attends else 0
    combine = 0
    if deep:
        # the deep-output layer tanh(W [s; c; E y]), or its maxout: W of 2h rows
        combine = 2 * (h + c + tgt_e) * h * (2 if cfg.deep_output == "maxout" else 1)
    elif attends and cfg.attention_combine == "concat":
        combine = 2 * (h + c) * h  # the attentional layer tanh(W [h; c])
    elif attends and c != h:
        combine = 2 * c * h  # a_t = h_t + W c_t
    parts["attentional_layer"] = combine

    if cfg.tie_embeddings:
        e = cfg.embedding_size
        tie = 2 * h * e if h != e else 0
        parts["output_projection"] = tie + 2 * e * tgt_vocab
    else:
        parts["output_projection"] = 2 * h * tgt_vocab
    parts["bridge"] = 2 * k * h if cfg.decoder_init == "bridge" else 0

    return ModelFlops(
        per_src_token=parts["encoder_rnn"] + key_proj,
        per_tgt_token=parts["decoder_rnn"] + query_proj + combine + parts["output_projection"],
        per_src_tgt_pair=score + parts["attention_context"],
        per_sentence=parts["bridge"],
        parts=parts,
    )
