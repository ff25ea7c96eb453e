"""A one-layer (bi)directional GRU over a packed batch for training on the CPU, as one autograd node.

torch's CPU GRU records every step of every direction in autograd. Its backward then zero-fills a
gradient the size of the whole packed input for each step's slice of it, adds those up, and adds a
64-row weight gradient into a weight-sized buffer at every step. Here forward runs the same
recurrence into buffers laid out like the packed data, backward walks the steps back for the state
gradients only, and the input and weight gradients are single products over all tokens.

Reference: `nn.GRU` on the same PackedSequence (encoders.py); the same results and gradients to
rounding (tests/test_fused.py, float64). The gate updates are shared with the decoder's fused loop
(kernels.py).

Under CPU bf16 autocast (`training.precision = "bf16"`) both fused paths multiply in bf16, which AMX
runs several times faster than fp32, and keep everything else in fp32: the states, the gates, the
buffers saved for backward, the sums of products and the gradients they return (kernels.mm_in, addmm_in).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from workbench.engine.devices import product_dtype
from workbench.engine.fast_paths.kernels import (
    addmm_in,
    gru_update,
    gru_update_backward,
    mm_in,
    without_autocast,
)


def packed_gru(rnn: nn.GRU, packed: PackedSequence) -> tuple[PackedSequence, Tensor]:
    """`rnn(packed)` for a one-layer GRU from a zero state: (packed outputs, final states (dirs, B, H))."""
    dirs = 2 if rnn.bidirectional else 1
    suffixes = ["", "_reverse"][:dirs]
    w_ih = torch.cat([getattr(rnn, f"weight_ih_l0{s}") for s in suffixes])
    b_ih = torch.cat([getattr(rnn, f"bias_ih_l0{s}") for s in suffixes])
    recurrent = [getattr(rnn, f"{kind}_hh_l0{s}") for s in suffixes for kind in ("weight", "bias")]
    dtype = product_dtype(packed.data)
    out, final = _PackedGRU.apply(packed.data, packed.batch_sizes, dtype, w_ih, b_ih, *recurrent)
    final = final if packed.unsorted_indices is None else final.index_select(1, packed.unsorted_indices)
    return packed._replace(data=out), final


class _PackedGRU(torch.autograd.Function):
    """Directions run in one loop: the forward one at time i, the backward one at time S - 1 - i.

    Packed data is time-major over sentences sorted longest first, so at time t the active sentences
    are the first batch_sizes[t] rows of the state, and time t's tokens are one contiguous block.
    """

    @staticmethod
    @without_autocast
    def forward(ctx, x, batch_sizes, dtype, w_ih, b_ih, *recurrent):  # type: ignore[override]
        """dtype: the products' (see the module's docstring); the weights are cast to it once."""
        dirs, hid = len(recurrent) // 2, recurrent[0].size(1)
        sizes = batch_sizes.tolist()
        starts = [sum(sizes[:t]) for t in range(len(sizes))]
        tokens, new = x.size(0), x.new_empty
        w_ih = w_ih.to(dtype)
        recurrent = tuple(r.to(dtype) if i % 2 == 0 else r for i, r in enumerate(recurrent))
        gi = addmm_in(b_ih, x, w_ih.t(), dtype)  # (N, dirs * 3H): every input projection at once
        out = new(tokens, dirs * hid)
        gh, rz = new(dirs, tokens, 3 * hid), new(dirs, tokens, 2 * hid)
        n, h_prev = new(dirs, tokens, hid), new(dirs, tokens, hid)
        state = x.new_zeros(dirs, sizes[0], hid)
        for i in range(len(sizes)):
            for d in range(dirs):
                t = i if d == 0 else len(sizes) - 1 - i
                rows, size = slice(starts[t], starts[t] + sizes[t]), sizes[t]
                h_prev[d, rows] = state[d, :size]
                g = addmm_in(
                    recurrent[2 * d + 1], state[d, :size], recurrent[2 * d].t(), dtype, out=gh[d, rows]
                )
                h = gru_update(
                    gi[rows, 3 * hid * d : 3 * hid * (d + 1)], g, h_prev[d, rows], rz[d, rows], n[d, rows],
                    out[rows, hid * d : hid * (d + 1)],
                )  # fmt: skip
                state[d, :size] = h
        ctx.save_for_backward(x, w_ih, gh, rz, n, h_prev, *recurrent)
        ctx.sizes, ctx.starts, ctx.dtype = sizes, starts, dtype
        return out, state

    @staticmethod
    @torch.autograd.function.once_differentiable
    @without_autocast
    def backward(ctx, d_out: Tensor, d_final: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        x, w_ih, gh, rz, n, h_prev, *recurrent = ctx.saved_tensors
        sizes, starts, dtype = ctx.sizes, ctx.starts, ctx.dtype
        dirs, hid = len(recurrent) // 2, recurrent[0].size(1)
        d_gi, d_gh = d_out.new_empty(x.size(0), dirs * 3 * hid), torch.empty_like(gh)
        d_state = d_final.clone()  # (dirs, B, H): the gradient of each sentence's current state
        for i in range(len(sizes) - 1, -1, -1):
            for d in range(dirs):
                t = i if d == 0 else len(sizes) - 1 - i
                rows, size = slice(starts[t], starts[t] + sizes[t]), sizes[t]
                dh = d_state[d, :size].add_(d_out[rows, hid * d : hid * (d + 1)])
                direct = gru_update_backward(
                    dh, rz[d, rows], n[d, rows], gh[d, rows, 2 * hid :], h_prev[d, rows],
                    d_gi[rows, 3 * hid * d : 3 * hid * (d + 1)], d_gh[d, rows],
                )  # fmt: skip
                addmm_in(direct, d_gh[d, rows], recurrent[2 * d], dtype, out=d_state[d, :size])
        d_recurrent = []
        for d in range(dirs):
            d_recurrent += [mm_in(d_gh[d].t(), h_prev[d], dtype), d_gh[d].sum(0)]
        return mm_in(d_gi, w_ih, dtype), None, None, mm_in(d_gi.t(), x, dtype), d_gi.sum(0), *d_recurrent
