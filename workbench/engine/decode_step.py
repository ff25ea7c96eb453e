"""The decoder's step as search runs it: RecurrentDecoder.step's operations on plain tensors.

A search step reads every decoder weight once (28 MB for the reference model, for five beams). Those
weights stream through the CPU's caches and evict the interpreter's own data, so each module call
of the reference step (hook checks, parameter lookups through `Module.__getattr__`) costs several µs
of cache misses: some 65 µs of a ~1 ms beam-5 step, and the attention mask's operators another 15 µs
for a source that has no padding. Here the weights are looked up once per search, the step calls
the same aten operators directly, and the mask is skipped where no position is padding: beam-5
latency fell 8% (docs/benchmarks.md, ninth session).

The same operators on the same operands, so the same numbers: tests compare every output, state and
attention weight with the reference step's bit for bit, for GRU and LSTM cells and every attention.
Used only where nothing is differentiated (search runs under inference mode), in eval mode, for the
input-feeding decoder with a GRU or LSTM cell and attention, in fp32 or bf16 (not int8: its quantized
modules do their own products). Everything else runs the reference step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workbench.engine.attention import BahdanauAttention, LuongAttention
from workbench.engine.decoders import DecoderState
from workbench.engine.encoders import EncoderOutput

if TYPE_CHECKING:
    from workbench.engine.model import Seq2Seq

Step = Callable[[Tensor, DecoderState, EncoderOutput], tuple[Tensor, DecoderState, Tensor | None]]


def search_step(model: Seq2Seq) -> Step:
    """The step function for one search: this module's where it applies, else `model.step`."""
    decoder = model.decoder
    plain = (
        decoder.use_cell
        and type(decoder.rnn) in (nn.GRUCell, nn.LSTMCell)
        and isinstance(decoder.attention, (BahdanauAttention, LuongAttention))
        and type(decoder.attentional_layer) is nn.Linear
        and all(type(layer) is nn.Linear for layer in decoder.attention.additive_layers() or ())
    )
    if model.training or torch.is_grad_enabled() or not plain:
        return model.step
    return _InputFeedingStep(model)


class _InputFeedingStep:
    """One step of the input-feeding decoder in eval mode, weights taken from the modules once."""

    def __init__(self, model: Seq2Seq) -> None:
        decoder = model.decoder
        assert decoder.attention is not None and decoder.attentional_layer is not None
        cell = decoder.rnn
        self.embedding = decoder.embedding.weight
        self.lstm = isinstance(cell, nn.LSTMCell)
        self.cell = (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
        additive = decoder.attention.additive_layers()
        self.query = None if additive is None else (additive[0].weight, additive[0].bias)
        self.energy = None if additive is None else additive[1].weight
        self.attentional = (decoder.attentional_layer.weight, decoder.attentional_layer.bias)
        self.logits = decoder.logits
        self.widen = decoder.output_layer.weight.dtype not in (torch.float32, torch.float64)

    def __call__(
        self, prev_tokens: Tensor, state: DecoderState, enc: EncoderOutput
    ) -> tuple[Tensor, DecoderState, Tensor]:
        assert state.feed is not None and enc.keys is not None
        x = torch.cat([F.embedding(prev_tokens, self.embedding), state.feed], dim=-1)
        cell = None
        if self.lstm:
            assert state.cell is not None
            top, cell = torch.lstm_cell(x, (state.hidden[0], state.cell[0]), *self.cell)
        else:
            top = torch.gru_cell(x, state.hidden[0], *self.cell)
        context, weights = self._attend(top, enc)
        out = F.linear(torch.cat([top, context], dim=-1), *self.attentional).tanh_()
        logits = self.logits(out)
        if self.widen:  # a bf16 model's beam scores sum in fp32, as Seq2Seq.step's do
            logits = logits.float()
        new_state = DecoderState(
            hidden=top.unsqueeze(0), cell=None if cell is None else cell.unsqueeze(0), feed=out
        )
        return F.log_softmax(logits, dim=-1), new_state, weights

    def _attend(self, query: Tensor, enc: EncoderOutput) -> tuple[Tensor, Tensor]:
        """Context (N, Hv) and weights (N, S): attention.Attention.forward for one query per row."""
        assert enc.keys is not None
        if self.query is not None:  # additive: v · tanh(k + W_q q)
            hidden = torch.add(enc.keys, F.linear(query, *self.query).unsqueeze(1)).tanh_()
            scores = F.linear(hidden, self.energy).squeeze(2)
        else:  # multiplicative: q · k, the keys projected once per source
            scores = torch.bmm(query.unsqueeze(1), enc.keys.transpose(1, 2)).squeeze(1)
        if not enc.unpadded:
            scores = scores.masked_fill(~enc.mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        return torch.bmm(weights.unsqueeze(1), enc.states).squeeze(1), weights
