"""The decoder's step as search runs it: RecurrentDecoder.step's operations without module calls.

Reference: `Seq2Seq.step` (model.py), which calls `RecurrentDecoder.step` and its modules.

A search step reads every decoder weight once (28 MB for the reference model, for five beams). Those
weights stream through the CPU's caches and evict the interpreter's own data, so each module call
of the reference step (hook checks, parameter lookups through `Module.__getattr__`) costs several µs
of cache misses: some 65 µs of a ~1 ms beam-5 step, and the attention mask's operators another 15 µs
for a source that has no padding. Here each layer's forward is looked up once per search (its weights
bound to the kernel it calls, fp32, bf16 or int8), the step calls those kernels directly, and the mask
is skipped where no position is padding: beam-5 latency 8% lower in fp32 and 12% in int8
(docs/benchmarks.md).

The same kernels on the same operands, so the same numbers: tests/test_model.py compares every output,
state and attention weight with the reference step's bit for bit, for GRU and LSTM cells, every
attention and every decoding precision. Used only where nothing is differentiated (search runs under
inference mode), in eval mode, for the input-feeding decoder with a GRU or LSTM cell and attention
in Luong's order, combined by concatenation, with an additive or multiplicative score;
everything else, and everything under `fast_paths.reference_maths()`, runs the reference step.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workbench.engine.decoders import DecoderState
from workbench.engine.encoders import EncoderOutput
from workbench.engine.fast_paths import enabled
from workbench.engine.quantization import int8_forward

if TYPE_CHECKING:
    from workbench.engine.model import Seq2Seq

Step = Callable[[Tensor, DecoderState, EncoderOutput], tuple[Tensor, DecoderState, Tensor | None]]
NARROW = (torch.bfloat16, torch.float16)  # logits widened to fp32, as Seq2Seq.step does


def search_step(model: Seq2Seq) -> Step:
    """The step function for one search: this module's where it applies, else `model.step`."""
    d = model.decoder
    fits = d.fast_path_maths and d.use_cell and d.input_feeding and d.cell_type != "rnn"
    if not enabled() or model.training or torch.is_grad_enabled() or not fits:
        return model.step
    return _InputFeedingStep(model)


def forward_of(layer: nn.Module) -> Callable[..., Any]:
    """The layer's forward with its weights looked up once: embeddings, linear layers and GRU/LSTM cells,
    float or int8; any other module (one-hot vectors) is returned as it is, to be called."""
    kind = type(layer)
    if kind is nn.Embedding:
        return partial(F.embedding, weight=layer.weight)
    if kind is nn.Linear:
        return partial(F.linear, weight=layer.weight, bias=layer.bias)
    if kind in (nn.GRUCell, nn.LSTMCell):
        cell = torch.gru_cell if kind is nn.GRUCell else torch.lstm_cell
        weights = (layer.weight_ih, layer.weight_hh, layer.bias_ih, layer.bias_hh)
        return lambda x, state: cell(x, state, *weights)
    return int8_forward(layer) or layer


class _InputFeedingStep:
    """One step of the input-feeding decoder in eval mode, each layer's forward looked up once."""

    def __init__(self, model: Seq2Seq) -> None:
        decoder = model.decoder
        assert decoder.attention is not None and decoder.attentional_layer is not None
        self.embed = forward_of(decoder.embedding)
        self.lstm = decoder.cell_type == "lstm"
        self.cell = forward_of(decoder.rnn)
        additive = decoder.attention.additive_layers()
        self.query = None if additive is None else forward_of(additive[0])
        self.energy = None if additive is None else forward_of(additive[1])
        self.attentional = forward_of(decoder.attentional_layer)
        self.logits = decoder.logits

    def __call__(
        self, prev_tokens: Tensor, state: DecoderState, enc: EncoderOutput
    ) -> tuple[Tensor, DecoderState, Tensor]:
        assert state.feed is not None
        x = torch.cat([self.embed(prev_tokens), state.feed], dim=-1)
        cell = None
        if self.lstm:
            assert state.cell is not None
            top, cell = self.cell(x, (state.hidden[0], state.cell[0]))
        else:
            top = self.cell(x, state.hidden[0])
        context, weights = self._attend(top, enc)
        out = self.attentional(torch.cat([top, context], dim=-1)).tanh_()
        logits = self.logits(out)
        if logits.dtype in NARROW:
            logits = logits.float()
        new_state = DecoderState(
            hidden=top.unsqueeze(0), cell=None if cell is None else cell.unsqueeze(0), feed=out
        )
        return F.log_softmax(logits, dim=-1), new_state, weights

    def _attend(self, query: Tensor, enc: EncoderOutput) -> tuple[Tensor, Tensor]:
        """Context (N, Hv) and weights (N, S): attention.Attention.forward for one query per row."""
        assert enc.keys is not None
        if self.query is not None:  # additive: v · tanh(k + W_q q)
            assert self.energy is not None
            hidden = torch.add(enc.keys, self.query(query).unsqueeze(1)).tanh_()
            scores = self.energy(hidden).squeeze(2)
        else:  # multiplicative: q · k, the keys projected once per source
            scores = torch.bmm(query.unsqueeze(1), enc.keys.transpose(1, 2)).squeeze(1)
        if not enc.unpadded:
            scores = scores.masked_fill(~enc.mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        return torch.bmm(weights.unsqueeze(1), enc.states).squeeze(1), weights
