"""The recurrent decoder: attention in Luong's order (Joey NMT, OpenNMT) or in Bahdanau's.

Luong's order (`decoder_order = "luong"`, the default): at step t the RNN reads [embedding of y_{t-1};
a_{t-1} if input feeding]; attention uses the new top hidden state h_t as the query to get a context c_t;
the attentional vector is a_t = tanh(W [h_t; c_t]) (`attention_combine = "concat"`) or a_t = h_t + c_t
(`"add"`, c_t projected to the hidden size where the sizes differ), and the vocabulary logits come from
dropout(a_t). With attention "none" the output comes from h_t (the fixed-context model of Sutskever et al.).

Bahdanau's order (`decoder_order = "bahdanau"`, Bahdanau et al. 2015): the previous top state s_{i-1} is the
query, the context c_i joins the RNN's input [E y_{i-1}; c_i], and the output is a deep-output layer
tanh(W [s_i; c_i; E y_{i-1}]), or the article's maxout (`deep_output = "maxout"`: W of twice the hidden
size, the larger of each pair of adjacent units). Cho et al. 2014
(`context_every_step`, attention "none") is the same decoder with one fixed context c, the encoder's
summary (the top layer's final state, both directions).

Training speed: all target positions are embedded in one lookup, and `forward` returns the outputs of
all steps so that the vocabulary projection runs once over them (fused with the loss, see loss.py).
In Luong's order without input feeding nothing depends on a_{t-1}, so the RNN runs over the whole
target in one call and attention scores every step at once; with input feeding, and in Bahdanau's
order, the steps are a loop. With input feeding, the concat combination and an additive or
multiplicative score (`fast_path_maths`), CPU training runs that loop as one autograd node for the GRU
and LSTM cells (fast_paths/decoder_loop.py; `step` is the reference), and search runs `step`'s operations
without module calls (fast_paths/search_step.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from workbench.engine.attention import BahdanauAttention, LuongAttention, build_attention
from workbench.engine.encoders import RNN_CLASSES, EncoderOutput, RecurrentEncoder, make_embedding
from workbench.engine.fast_paths import trains_fused
from workbench.engine.fast_paths.decoder_loop import fused_decoder_loop
from workbench.engine.recipe import ATTENTION_COMBINES, DECODER_INITS, DECODER_ORDERS, DEEP_OUTPUTS

CELL_CLASSES: dict[str, type[nn.RNNCellBase]] = {"gru": nn.GRUCell, "lstm": nn.LSTMCell, "rnn": nn.RNNCell}


@dataclass
class DecoderState:
    """The recurrent state carried between decoding steps; N rows (sentences or beams)."""

    hidden: Tensor  # (layers, N, H)
    cell: Tensor | None = None  # LSTM memory (layers, N, H)
    feed: Tensor | None = None  # previous attentional vector (N, H) when input feeding

    def index_select(self, idx: Tensor) -> DecoderState:
        """The rows `idx` (beam reordering)."""
        return DecoderState(
            hidden=self.hidden.index_select(1, idx),
            cell=None if self.cell is None else self.cell.index_select(1, idx),
            feed=None if self.feed is None else self.feed.index_select(0, idx),
        )


class RecurrentDecoder(nn.Module):
    """Conditional GRU/LSTM/RNN decoder with optional attention, input feeding and tied embeddings."""

    def __init__(
        self,
        cell: str,
        vocab_size: int,
        embedding_size: int,
        hidden_size: int,
        encoder: RecurrentEncoder,
        decoder_layers: int = 1,
        attention: str = "bahdanau",
        input_feeding: bool = True,
        decoder_init: str = "bridge",
        dropout: float = 0.0,
        embedding_dropout: float = 0.0,
        tie_embeddings: bool = False,
        one_hot: bool = False,
        attention_combine: str = "concat",
        context_every_step: bool = False,
        decoder_order: str = "luong",
        deep_output: str = "tanh",
    ) -> None:
        super().__init__()
        if cell not in RNN_CLASSES:
            raise ValueError(f"unknown cell {cell!r}; expected one of {', '.join(RNN_CLASSES)}")
        if decoder_init not in DECODER_INITS:
            raise ValueError(
                f"unknown decoder_init {decoder_init!r}; expected one of {', '.join(DECODER_INITS)}"
            )
        if (
            decoder_order not in DECODER_ORDERS
            or attention_combine not in ATTENTION_COMBINES
            or deep_output not in DEEP_OUTPUTS
        ):
            raise ValueError(
                f"unknown decoder_order {decoder_order!r}, attention_combine {attention_combine!r} or "
                f"deep_output {deep_output!r}"
            )
        num_layers = decoder_layers
        self.cell_type = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.input_feeding = input_feeding
        self.decoder_init = decoder_init
        self.decoder_order = decoder_order
        self.context_every_step = context_every_step
        self.embedding = make_embedding(vocab_size, embedding_size, one_hot)
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        embedded_size = self.embedding.embedding_dim

        scorer = None if attention == "none" else build_attention(attention, encoder.output_size, hidden_size)
        # The context's size: the attention's values (the encoder states, or cosine's projected keys), or
        # the encoder's summary with context_every_step.
        context_size = hidden_size if scorer is not None and scorer.values_are_keys else encoder.output_size
        # Bahdanau's and Cho's order: the context joins the RNN's input and feeds a deep-output layer.
        deep = decoder_order == "bahdanau" or context_every_step
        rnn_input = embedded_size + (hidden_size if input_feeding else 0) + (context_size if deep else 0)
        # A cell avoids nn.GRU's per-call overhead in the step loop; stacks and the
        # all-steps-at-once path need the full module (cuDNN on GPU).
        self.use_cell = (input_feeding or decoder_order == "bahdanau") and num_layers == 1
        if self.use_cell:
            self.rnn: nn.Module = CELL_CLASSES[cell](rnn_input, hidden_size)
        else:
            self.rnn = RNN_CLASSES[cell](
                rnn_input,
                hidden_size,
                num_layers,
                batch_first=True,
                dropout=dropout if num_layers > 1 else 0.0,
            )

        self.attention = scorer
        luong = scorer is not None and decoder_order == "luong"
        self.attentional_layer = (
            nn.Linear(hidden_size + context_size, hidden_size)
            if luong and attention_combine == "concat"
            else None
        )
        # Luong's order, the concat combination, an additive or multiplicative score: the maths that
        # fast_paths/decoder_loop.py and search_step.py compute (they also need input feeding and a cell).
        self.fast_path_maths = self.attentional_layer is not None and isinstance(
            scorer, (BahdanauAttention, LuongAttention)
        )
        self.bridge = nn.Linear(encoder.output_size, hidden_size) if decoder_init == "bridge" else None
        self.dropout = nn.Dropout(dropout)
        # Tying needs the output's input size to be the embedding size (Press & Wolf 2017).
        self.tie_projection = (
            nn.Linear(hidden_size, embedding_size, bias=False)
            if tie_embeddings and hidden_size != embedding_size
            else None
        )
        self.output_layer = nn.Linear(
            embedding_size if tie_embeddings else hidden_size, vocab_size, bias=False
        )
        if tie_embeddings:
            self.output_layer.weight = self.embedding.weight
        # Layers of the other combinations and orders, made last: the default model's initialisation
        # draws the same numbers as it did without them.
        # attention_combine = "add": a_t = h_t + c_t, the context projected first where its size differs.
        self.context_layer = (
            nn.Linear(context_size, hidden_size, bias=False)
            if luong and attention_combine == "add" and context_size != hidden_size
            else None
        )
        self.maxout = deep_output == "maxout"
        self.deep_output = (
            nn.Linear(hidden_size + context_size + embedded_size, hidden_size * (2 if self.maxout else 1))
            if deep
            else None
        )
        self._output_t: Tensor | None = None  # see `keep_output_transposed`
        self._output_t_of: tuple[int, int] | None = None  # (storage, version) of the weight it copies

    # -- state ----------------------------------------------------------------------------------------

    def init_state(self, enc: EncoderOutput) -> DecoderState:
        """The decoder state before the first target token."""
        batch = enc.states.size(0)
        cell = None
        if self.decoder_init == "bridge":
            assert self.bridge is not None
            hidden = torch.tanh(self.bridge(summary(enc)))
            hidden = hidden.unsqueeze(0).expand(self.num_layers, -1, -1).contiguous()
            # Joey NMT starts an LSTM's memory cell from the same projection.
            cell = hidden if self.cell_type == "lstm" else None
        elif self.decoder_init == "final":
            hidden = enc.final.sum(dim=1)
            if self.cell_type == "lstm":
                assert enc.final_cell is not None
                cell = enc.final_cell.sum(dim=1)
        else:
            hidden = enc.states.new_zeros(self.num_layers, batch, self.hidden_size)
            cell = hidden if self.cell_type == "lstm" else None
        feed = enc.states.new_zeros(batch, self.hidden_size) if self.input_feeding else None
        return DecoderState(hidden=hidden, cell=cell, feed=feed)

    # -- one step -------------------------------------------------------------------------------------

    def embed(self, tokens: Tensor) -> Tensor:
        """Embeddings of target token ids, any shape."""
        return self.embedding_dropout(self.embedding(tokens))

    def projection_input(self, outputs: Tensor) -> Tensor:
        """What the vocabulary projection multiplies: the outputs, or their tied-embedding projection."""
        return outputs if self.tie_projection is None else self.tie_projection(outputs)

    def logits(self, outputs: Tensor) -> Tensor:
        """Vocabulary logits of decoder outputs (..., H)."""
        hidden = self.projection_input(outputs)
        if self._output_t is not None:
            if self._output_t_of == _identity(self.output_layer.weight):
                return hidden @ self._output_t
            self._output_t = self._output_t_of = None  # the weight changed: the copy is stale
        return self.output_layer(hidden)

    def keep_output_transposed(self) -> None:
        """For a model that only decodes: multiply by a contiguous copy of the output weight's transpose.

        The same products, in a layout the CPU's GEMM reads faster for a few rows: the (V, H) projection
        of five beams took 0.38 against 0.63 ms (512 x 8,000, 2 threads), beam-5 latency fell ~12%, and
        large batches gain a little (docs/benchmarks.md). The copy costs the weight's memory once more.
        It is dropped, never used, once the weight changes (an optimizer step, load_state_dict, a move).
        """
        weight = self.output_layer.weight
        self._output_t = weight.detach().t().contiguous()
        self._output_t_of = _identity(weight)

    def _rnn_step(self, x: Tensor, state: DecoderState) -> tuple[Tensor, Tensor, Tensor | None]:
        """Run the RNN on one input (N, I); returns the top hidden state and the new hidden/cell."""
        if self.use_cell:
            if self.cell_type == "lstm":
                assert state.cell is not None
                h, c = self.rnn(x, (state.hidden[0], state.cell[0]))
                return h, h.unsqueeze(0), c.unsqueeze(0)
            h = self.rnn(x, state.hidden[0])
            return h, h.unsqueeze(0), None
        if self.cell_type == "lstm":
            out, (hidden, cell) = self.rnn(x.unsqueeze(1), (state.hidden, state.cell))
            return out[:, 0], hidden, cell
        out, hidden = self.rnn(x.unsqueeze(1), state.hidden)
        return out[:, 0], hidden, None

    def _attend(self, query: Tensor, enc: EncoderOutput) -> tuple[Tensor, Tensor]:
        """Context and attention weights for queries (N, [T,] H)."""
        assert self.attention is not None and enc.keys is not None
        return self.attention(query, enc.keys, enc.states, enc.mask)

    def _output(self, top: Tensor, enc: EncoderOutput) -> tuple[Tensor, Tensor | None]:
        """Luong's order: outputs (before dropout) and attention weights for top states (N, [T,] H)."""
        if self.attention is None:
            return top, None
        context, weights = self._attend(top, enc)
        if self.attentional_layer is not None:
            return torch.tanh(self.attentional_layer(torch.cat([top, context], dim=-1))), weights
        return top + (context if self.context_layer is None else self.context_layer(context)), weights

    def _deep(self, top: Tensor, context: Tensor, embedded: Tensor) -> Tensor:
        """Bahdanau's and Cho's output (before dropout): tanh(W [s_i; c_i; E y_{i-1}]), or with maxout
        t_j = max(t~_{2j-1}, t~_{2j}) of t~ = W [s_i; c_i; E y_{i-1}]."""
        assert self.deep_output is not None
        pre = self.deep_output(torch.cat([top, context, embedded], dim=-1))
        if self.maxout:
            return pre.unflatten(-1, (self.hidden_size, 2)).amax(-1)
        return torch.tanh(pre)

    def step(
        self, embedded: Tensor, state: DecoderState, enc: EncoderOutput
    ) -> tuple[Tensor, DecoderState, Tensor | None]:
        """One step from embedded inputs (N, E): outputs (N, H) for `logits`, new state, attention (N, S).

        The reference of fast_paths/decoder_loop.py (training) and fast_paths/search_step.py (search)."""
        if self.deep_output is not None:  # Bahdanau's order (query s_{i-1}) or Cho's fixed context
            if self.attention is None:
                context, weights = summary(enc), None
            else:
                context, weights = self._attend(state.hidden[-1], enc)
            top, hidden, cell = self._rnn_step(torch.cat([embedded, context], dim=-1), state)
            out = self._deep(top, context, embedded)
        else:
            x = embedded if state.feed is None else torch.cat([embedded, state.feed], dim=-1)
            top, hidden, cell = self._rnn_step(x, state)
            out, weights = self._output(top, enc)
        out = self.dropout(out)
        # The dropped-out vector is fed back (as OpenNMT does); one dropout mask per step.
        return out, DecoderState(hidden=hidden, cell=cell, feed=out if self.input_feeding else None), weights

    # -- whole targets --------------------------------------------------------------------------------

    def forward(
        self, tgt_in: Tensor, state: DecoderState, enc: EncoderOutput, sampling_prob: float = 0.0
    ) -> tuple[Tensor, Tensor | None]:
        """Outputs (B, T, H) for `logits` and attention (B, T, S) or None for target inputs (B, T), BOS first.

        sampling_prob > 0 replaces each gold input (after the first) by the model's greedy prediction
        of it with that probability, per sentence and step (scheduled sampling, Bengio et al. 2015).
        """
        if sampling_prob > 0.0:
            return self._forward_sampled(tgt_in, state, enc, sampling_prob)
        embedded = self.embed(tgt_in)
        if self._fusable(embedded):
            assert self.attention is not None and self.attentional_layer is not None and enc.keys is not None
            return fused_decoder_loop(
                embedded, state.hidden[0], None if state.cell is None else state.cell[0], enc.keys,
                enc.states, enc.mask, self.rnn, self.attention.additive_layers(),  # type: ignore[arg-type]
                self.attentional_layer, self.dropout.p if self.training else 0.0,
            )  # fmt: skip
        # Without input feeding, in Luong's order, no step reads the previous one's output.
        if not self.input_feeding and self.decoder_order == "luong":
            hx = (state.hidden, state.cell) if self.cell_type == "lstm" else state.hidden
            if self.context_every_step:
                context = summary(enc).unsqueeze(1).expand(-1, embedded.size(1), -1)
                top, _ = self.rnn(torch.cat([embedded, context], dim=-1), hx)
                return self.dropout(self._deep(top, context, embedded)), None
            top, _ = self.rnn(embedded, hx)
            out, weights = self._output(top, enc)
            return self.dropout(out), weights
        outputs, attention = [], []
        # unbind, not embedded[:, t]: each slice's backward would otherwise fill a whole zero tensor.
        for step_input in embedded.unbind(1):
            out, state, weights = self.step(step_input, state, enc)
            outputs.append(out)
            attention.append(weights)
        return torch.stack(outputs, dim=1), None if self.attention is None else torch.stack(attention, dim=1)

    def _fusable(self, embedded: Tensor) -> bool:
        """Whether teacher-forced training can run the loop as one node (fast_paths/decoder_loop.py)."""
        return (
            type(self.rnn) in (nn.GRUCell, nn.LSTMCell)  # not a quantized one, not the plain RNN cell
            and self.fast_path_maths
            and trains_fused(embedded, self.rnn.weight_hh)
        )

    def _forward_sampled(
        self, tgt_in: Tensor, state: DecoderState, enc: EncoderOutput, sampling_prob: float
    ) -> tuple[Tensor, Tensor | None]:
        outputs, attention = [], []
        tokens = tgt_in[:, 0]
        for t in range(tgt_in.size(1)):
            if t > 0:
                use_model = torch.rand(tokens.shape, device=tokens.device) < sampling_prob
                # The choice of input is not differentiated; the loss projects every step again, fused
                # (a second forward projection, cheaper than keeping each step's logits for backward).
                with torch.no_grad():
                    predicted = self.logits(outputs[-1]).argmax(dim=-1)
                tokens = torch.where(use_model, predicted, tgt_in[:, t])
            out, state, weights = self.step(self.embed(tokens), state, enc)
            outputs.append(out)
            attention.append(weights)
        return torch.stack(outputs, dim=1), None if self.attention is None else torch.stack(attention, dim=1)


def summary(enc: EncoderOutput) -> Tensor:
    """The encoder's summary (B, dirs * H): the top layer's final states, directions concatenated."""
    top = enc.final[-1]  # (dirs, B, H)
    return top.permute(1, 0, 2).reshape(top.size(1), -1)


def _identity(weight: Tensor) -> tuple[int, int]:
    """Which storage a tensor has and how often it was changed in place: equal means unchanged."""
    return weight.data_ptr(), weight._version
