"""The training loop of the input-feeding decoder (GRU or LSTM cell, any attention) as one autograd node.

Reference: `RecurrentDecoder.step` looped over the target (decoders.py), differentiated by autograd.

The input-feeding decoder (one layer, a GRU or LSTM cell, attention) runs its T target steps in a
Python loop. Differentiated by autograd, each step records some thirty nodes, and backward forms, at
every step, a 64-row weight-gradient product and a weight-sized accumulation for each of its matrices.
Here the whole loop is one `autograd.Function`:

- forward runs the same recurrence into preallocated (T, B, ...) buffers. The products that read h_t
  (the next step's W_hh h_t, an additive attention's query W_q h_t and the h_t half of the attentional
  layer) are one GEMM, and the embeddings' half of W_ih runs once over all steps;
- backward walks the steps back for the gradients of the states only (three products a step), then
  forms every weight's gradient as one product over all B·T rows.

Same function, same dropout masks (drawn in the same order and shapes as `nn.Dropout` does on the CPU;
on a GPU nn.Dropout's own kernel draws other masks of the same law), and the same gradients to
rounding (tests compare both paths in float64). Under CPU bf16 autocast the products with weights run
in bf16 and the rest in fp32, as in packed_gru.py. Scores are additive (Bahdanau, Luong
"concat": v · tanh(k + W_q h)) or multiplicative (Luong "dot" and "general": k · h, the keys projected
once per source as before).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from workbench.engine.devices import product_dtype
from workbench.engine.fast_paths.kernels import (
    addmm_in,
    gru_update,
    gru_update_backward,
    lstm_update,
    lstm_update_backward,
    mm_in,
    without_autocast,
)

aten = torch.ops.aten


def fused_decoder_loop(
    embedded: Tensor,
    hidden: Tensor,
    cell_state: Tensor | None,
    keys: Tensor,
    values: Tensor,
    mask: Tensor,
    cell: nn.GRUCell | nn.LSTMCell,
    additive: tuple[nn.Linear, nn.Linear] | None,
    attentional_layer: nn.Linear,
    dropout: float,
) -> tuple[Tensor, Tensor]:
    """Outputs (B, T, H), dropout applied, and attention weights (B, T, S), like the step loop.

    hidden and cell_state (LSTM) are the initial states (B, H); additive is the attention's (query
    layer, energy layer) for an additive score, None for a multiplicative one.
    """
    query, energy = additive if additive is not None else (None, None)
    dtype = product_dtype(embedded)
    # Under autocast the states from outside (keys, the bridge's h0) may arrive in bf16: the loop's are fp32.
    hidden, keys, values = (t.to(embedded.dtype) for t in (hidden, keys, values))
    return _DecoderLoop.apply(
        embedded, hidden, cell_state, keys, values, mask,
        cell.weight_ih, cell.bias_ih, cell.weight_hh, cell.bias_hh,
        None if query is None else query.weight, None if query is None else query.bias,
        None if energy is None else energy.weight,
        attentional_layer.weight, attentional_layer.bias, dropout, dtype,
    )  # fmt: skip


class _DecoderLoop(torch.autograd.Function):
    @staticmethod
    @without_autocast
    def forward(  # type: ignore[override]
        ctx, emb, h0, c0, keys, values, mask, w_ih, b_ih, w_hh, b_hh, w_q, b_q, v, w_o, b_o, p, dtype
    ) -> tuple[Tensor, Tensor]:
        batch, steps, emb_size = emb.shape
        hid, src, val = w_hh.size(1), keys.size(1), values.size(2)
        gate, att = w_hh.size(0), 0 if w_q is None else w_q.size(0)  # gate: 3H (GRU) or 4H (LSTM)
        lstm = c0 is not None
        new = emb.new_empty
        emb_tb = emb.transpose(0, 1).reshape(steps * batch, emb_size)  # time-major rows
        w_ih, w_hh, w_o = w_ih.to(dtype), w_hh.to(dtype), w_o.to(dtype)  # once, for every product
        gi_emb = addmm_in(b_ih, emb_tb, w_ih[:, :emb_size].t(), dtype).view(steps, batch, gate)
        w_feed_t, w_oc_t = w_ih[:, emb_size:].t(), w_o[:, hid:].t()
        # Everything h_t is multiplied by: mm[t + 1] = h_t @ w_cat.T + b_cat
        # = [W_hh h_t + b_hh (the next step's) | W_q h_t + b_q (additive attention) | W_oh h_t + b_o].
        w_cat = torch.cat([w_hh, w_o[:, :hid]] if w_q is None else [w_hh, w_q.to(dtype), w_o[:, :hid]])
        ctx.has_query_bias = b_q is not None
        query_bias = new(att).zero_() if b_q is None else b_q
        b_cat = torch.cat([b_hh, b_o] if w_q is None else [b_hh, query_bias, b_o])
        hs, mm = new(steps + 1, batch, hid), new(steps + 1, batch, gate + att + hid)
        if lstm:  # gates (i, f, g, o), the cells and their tanh
            gates, cs, tanh_c = new(steps, batch, gate), new(steps + 1, batch, hid), new(steps, batch, hid)
            cs[0] = c0
        else:  # gates (r, z) and n
            gates, n_gate = new(steps, batch, 2 * hid), new(steps, batch, hid)
        # tanh(k + W_q h) of an additive score, step by step in one buffer; backward computes it again.
        # Kept for all steps it would be a (T, B, S, A) tensor of ~80 MB a batch, and the page faults of
        # allocating that much afresh at every step cost more than the second tanh.
        u = new(batch, src, att) if att else None
        weights, context = new(steps, batch, src), new(steps, batch, val)
        out, feed = new(steps, batch, hid), new(steps, batch, hid)
        noise = new(steps, batch, hid) if p > 0 else out
        hs[0] = h0
        addmm_in(b_hh, h0, w_hh.t(), dtype, out=mm[0, :, :gate])
        padding, keep = ~mask, 1.0 - p
        for t in range(steps):
            gi = gi_emb[t] if t == 0 else addmm_in(gi_emb[t], feed[t - 1], w_feed_t, dtype)
            if lstm:
                h = lstm_update(gi, mm[t, :, :gate], cs[t], gates[t], cs[t + 1], tanh_c[t], hs[t + 1])
            else:
                h = gru_update(gi, mm[t, :, :gate], hs[t], gates[t], n_gate[t], hs[t + 1])
            m = addmm_in(b_cat, h, w_cat.t(), dtype, out=mm[t + 1])
            if u is not None:
                ut = torch.add(keys, m[:, gate : gate + att].unsqueeze(1), out=u).tanh_()
                scores = torch.mm(ut.view(batch * src, att), v.view(att, 1)).view(batch, src)
            else:
                scores = torch.bmm(keys, h.unsqueeze(2)).view(batch, src)
            alpha = torch.softmax(scores.masked_fill_(padding, float("-inf")), dim=-1)
            weights[t] = alpha
            c = torch.bmm(alpha.unsqueeze(1), values, out=context[t].unsqueeze(1)).squeeze(1)
            o = addmm_in(m[:, gate + att :], c, w_oc_t, dtype, out=out[t]).tanh_()
            if p > 0:  # nn.Dropout's draw: bernoulli_(1 - p) on a tensor like o, divided by 1 - p
                torch.mul(o, noise[t].bernoulli_(keep).div_(keep), out=feed[t])
            else:
                feed[t] = o
        cell_buffers = (cs, tanh_c) if lstm else (n_gate,)
        ctx.save_for_backward(
            emb_tb, keys, values, w_ih, w_hh, v, w_o, w_cat, hs, mm, gates, u, weights, context, out,
            noise, feed, *cell_buffers,
        )  # fmt: skip
        ctx.p, ctx.lstm, ctx.att, ctx.dtype = p, lstm, att, dtype
        ctx.mark_non_differentiable(weights)
        return feed.transpose(0, 1), weights.transpose(0, 1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    @without_autocast
    def backward(ctx, grad_out: Tensor, _grad_weights: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        (
            emb_tb, keys, values, w_ih, w_hh, v, w_o, w_cat, hs, mm, gates, u, weights, context, out,
            noise, feed, *cell_buffers,
        ) = ctx.saved_tensors  # fmt: skip
        steps, batch, hid = out.shape
        att, src, val, emb_size, gate = ctx.att, keys.size(1), values.size(2), emb_tb.size(1), w_hh.size(0)
        dtype = ctx.dtype
        rows = steps * batch
        grad_out = grad_out.transpose(0, 1)
        w_feed, w_oc = w_ih[:, emb_size:], w_o[:, hid:]
        (cs, tanh_c), n_gate = (cell_buffers, None) if ctx.lstm else ((None, None), cell_buffers[0])
        # d_mm[t] is the gradient of mm[t]: [d gh_t | d query_{t-1} | d pre-activation of out_{t-1}].
        d_mm = out.new_zeros(steps + 1, batch, gate + att + hid)
        d_gi, d_context = out.new_empty(steps, batch, gate), out.new_empty(steps, batch, val)
        d_scores = out.new_empty(steps, batch, src)
        additive = att > 0
        d_keys = torch.zeros_like(keys) if additive else None
        d_v = v.new_zeros(1, att) if additive else None
        carry: Tensor | float = 0.0  # GRU: d h_t through the next step's z gate
        d_cell: Tensor | float = 0.0  # LSTM: d c_t from the next step
        d_feed: Tensor | None = None
        for t in range(steps - 1, -1, -1):
            d_o = grad_out[t] if d_feed is None else d_feed.add_(grad_out[t])
            if ctx.p > 0:
                d_o = d_o * noise[t]
            dm = d_mm[t + 1]
            d_pre = dm[:, gate + att :]
            d_pre.copy_(aten.tanh_backward(d_o, out[t]))
            dc = mm_in(d_pre, w_oc, dtype, out=d_context[t])
            alpha = weights[t]
            d_alpha = torch.bmm(values, dc.unsqueeze(2)).view(batch, src)
            ds = torch.ops.aten._softmax_backward_data(d_alpha, alpha, 1, alpha.dtype)
            d_scores[t] = ds
            if additive:  # d query_t, multiplied with the rest of d_mm[t + 1] below
                ut = torch.add(keys, mm[t + 1, :, gate : gate + att].unsqueeze(1), out=u).tanh_()
                d_v.addmm_(ds.view(1, batch * src), ut.view(batch * src, att))
                d_u = aten.tanh_backward(ds.unsqueeze(2) * v.view(1, 1, att), ut)
                d_keys += d_u
                torch.sum(d_u, 1, out=dm[:, gate : gate + att])
            dh = mm_in(dm, w_cat, dtype).add_(carry)
            if not additive:  # the score k · h_t
                dh += torch.bmm(ds.unsqueeze(1), keys).squeeze(1)
            if ctx.lstm:
                d_cell = lstm_update_backward(dh, d_cell, gates[t], cs[t], tanh_c[t], d_gi[t])
                d_mm[t, :, :gate] = d_gi[t]  # gates = gi + gh: one gradient for both
            else:  # fills d_mm[t]'s d gh_t, read by step t - 1's product
                gh_n = mm[t, :, 2 * hid : gate]
                carry = gru_update_backward(dh, gates[t], n_gate[t], gh_n, hs[t], d_gi[t], d_mm[t, :, :gate])
            d_feed = mm_in(d_gi[t], w_feed, dtype) if t > 0 else None
        d_h0 = mm_in(d_mm[0, :, :gate], w_hh, dtype).add_(carry)
        # Every weight's gradient as one product over all steps.
        d_gi_rows, h_rows = d_gi.view(rows, gate), hs[1:].reshape(rows, hid)
        d_w_ih = torch.cat(
            [
                mm_in(d_gi_rows.t(), emb_tb, dtype),
                mm_in(d_gi[1:].reshape(-1, gate).t(), feed[:-1].reshape(-1, hid), dtype),
            ],
            dim=1,
        )
        d_cat = mm_in(d_mm[1:].view(rows, -1).t(), h_rows, dtype)
        d_w_hh = addmm_in(d_cat[:gate], d_mm[0, :, :gate].t(), hs[0], dtype, out=d_cat[:gate])
        d_pre_rows = d_mm[1:, :, gate + att :].reshape(rows, hid)
        d_w_o = torch.cat([d_cat[gate + att :], mm_in(d_pre_rows.t(), context.view(rows, val), dtype)], dim=1)
        d_emb = mm_in(d_gi_rows, w_ih[:, :emb_size], dtype).view(steps, batch, emb_size).transpose(0, 1)
        d_values = torch.bmm(weights.permute(1, 2, 0), d_context.transpose(0, 1))
        d_w_q = d_b_q = None
        if not additive:  # d scores_t / d keys = h_t, summed over the steps
            d_keys = torch.bmm(d_scores.permute(1, 2, 0), hs[1:].transpose(0, 1))
        else:
            d_w_q = d_cat[gate : gate + att]
            d_b_q = d_mm[1:, :, gate : gate + att].sum((0, 1)) if ctx.has_query_bias else None
        return (
            d_emb, d_h0, d_cell if ctx.lstm else None, d_keys, d_values, None,
            d_w_ih, d_gi_rows.sum(0), d_w_hh, d_mm[:steps, :, :gate].sum((0, 1)),
            d_w_q, d_b_q, d_v, d_w_o, d_pre_rows.sum(0), None, None,
        )  # fmt: skip
