"""The training loop of the input-feeding GRU decoder with additive attention, as one autograd node.

The decoder of the reference model (GRU cell, Bahdanau or Luong "concat" attention, input feeding, one
layer) runs its T target steps in a Python loop. Differentiated by autograd, each step records some
thirty nodes, and backward forms, at every step, a 64-row weight-gradient product and a weight-sized
accumulation for each of its matrices. Here the whole loop is one `autograd.Function`:

- forward runs the same recurrence into preallocated (T, B, ...) buffers. The products that read h_t
  (the next step's W_hh h_t, the attention query W_q h_t and the h_t half of the attentional layer)
  are one GEMM, and the embeddings' half of W_ih runs once over all steps;
- backward walks the steps back for the gradients of the states only (three products a step), then
  forms every weight's gradient as one product over all B·T rows.

Same function, same dropout masks (drawn in the same order and shapes as `nn.Dropout` does), and the
same gradients to rounding (tests compare both paths in float64). It is used only when it applies and
gradients are wanted in fp32; decoding and every other configuration take `RecurrentDecoder.step`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from workbench.engine.fused_gru import gru_update, gru_update_backward

aten = torch.ops.aten


def fused_decoder_loop(
    embedded: Tensor,
    hidden: Tensor,
    keys: Tensor,
    values: Tensor,
    mask: Tensor,
    cell: torch.nn.GRUCell,
    query_layer: torch.nn.Linear,
    energy_layer: torch.nn.Linear,
    attentional_layer: torch.nn.Linear,
    dropout: float,
) -> tuple[Tensor, Tensor]:
    """Outputs (B, T, H), dropout applied, and attention weights (B, T, S), like the step loop."""
    return _DecoderLoop.apply(
        embedded,
        hidden,
        keys,
        values,
        mask,
        cell.weight_ih,
        cell.bias_ih,
        cell.weight_hh,
        cell.bias_hh,
        query_layer.weight,
        query_layer.bias,
        energy_layer.weight,
        attentional_layer.weight,
        attentional_layer.bias,
        dropout,
    )


class _DecoderLoop(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx, emb, h0, keys, values, mask, w_ih, b_ih, w_hh, b_hh, w_q, b_q, v, w_o, b_o, p
    ) -> tuple[Tensor, Tensor]:
        batch, steps, emb_size = emb.shape
        hid, att, src, val = w_hh.size(1), w_q.size(0), keys.size(1), values.size(2)
        new = emb.new_empty
        emb_tb = emb.transpose(0, 1).reshape(steps * batch, emb_size)  # time-major rows
        gi_emb = torch.addmm(b_ih, emb_tb, w_ih[:, :emb_size].t()).view(steps, batch, 3 * hid)
        w_feed_t, w_oc_t = w_ih[:, emb_size:].t(), w_o[:, hid:].t()
        w_cat = torch.cat([w_hh, w_q, w_o[:, :hid]])  # everything h_t is multiplied by
        b_cat = torch.cat([b_hh, new(att).zero_() if b_q is None else b_q, b_o])
        # MM[t + 1] = h_t @ w_cat.T + b_cat = [W_hh h_t + b_hh (the next step's) | query_t | W_oh h_t + b_o]
        hs, mm = new(steps + 1, batch, hid), new(steps + 1, batch, 3 * hid + att + hid)
        rz, n_gate = new(steps, batch, 2 * hid), new(steps, batch, hid)
        u, weights, context = new(steps, batch, src, att), new(steps, batch, src), new(steps, batch, val)
        out, feed = new(steps, batch, hid), new(steps, batch, hid)
        noise = new(steps, batch, hid) if p > 0 else out
        hs[0] = h0
        torch.addmm(b_hh, h0, w_hh.t(), out=mm[0, :, : 3 * hid])
        padding, v_col, keep = ~mask, v.view(att, 1), 1.0 - p
        for t in range(steps):
            gi = gi_emb[t] if t == 0 else torch.addmm(gi_emb[t], feed[t - 1], w_feed_t)
            h = gru_update(gi, mm[t, :, : 3 * hid], hs[t], rz[t], n_gate[t], hs[t + 1])
            m = torch.addmm(b_cat, h, w_cat.t(), out=mm[t + 1])
            ut = torch.add(keys, m[:, 3 * hid : 3 * hid + att].unsqueeze(1), out=u[t]).tanh_()
            scores = torch.mm(ut.view(batch * src, att), v_col).view(batch, src)
            alpha = torch.softmax(scores.masked_fill_(padding, float("-inf")), dim=-1)
            weights[t] = alpha
            c = torch.bmm(alpha.unsqueeze(1), values, out=context[t].unsqueeze(1)).squeeze(1)
            o = torch.addmm(m[:, 3 * hid + att :], c, w_oc_t, out=out[t]).tanh_()
            if p > 0:  # nn.Dropout's draw: bernoulli_(1 - p) on a tensor like o, divided by 1 - p
                torch.mul(o, noise[t].bernoulli_(keep).div_(keep), out=feed[t])
            else:
                feed[t] = o
        ctx.save_for_backward(
            emb_tb, keys, values, w_ih, w_hh, v, w_o, w_cat, hs, mm, rz, n_gate, u, weights, context,
            out, noise, feed,
        )  # fmt: skip
        ctx.p, ctx.has_query_bias = p, b_q is not None
        ctx.mark_non_differentiable(weights)
        return feed.transpose(0, 1), weights.transpose(0, 1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor, _grad_weights: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        (
            emb_tb, keys, values, w_ih, w_hh, v, w_o, w_cat, hs, mm, rz, n_gate, u, weights, context,
            out, noise, feed,
        ) = ctx.saved_tensors  # fmt: skip
        steps, batch, hid = out.shape
        att, src, val, emb_size = v.size(1), keys.size(1), values.size(2), emb_tb.size(1)
        rows = steps * batch
        grad_out = grad_out.transpose(0, 1)
        w_feed, w_oc = w_ih[:, emb_size:], w_o[:, hid:]
        # d_mm[t] is the gradient of mm[t]: [d gh_t | d query_{t-1} | d pre-activation of out_{t-1}].
        d_mm = out.new_zeros(steps + 1, batch, 3 * hid + att + hid)
        d_gi, d_context = out.new_empty(steps, batch, 3 * hid), out.new_empty(steps, batch, val)
        d_scores = out.new_empty(steps, batch, src)
        d_keys = torch.zeros_like(keys)
        v_row = v.view(1, 1, att)
        carry: Tensor | float = 0.0  # d h_t through the next step's z gate
        d_feed: Tensor | None = None
        for t in range(steps - 1, -1, -1):
            d_o = grad_out[t] if d_feed is None else d_feed.add_(grad_out[t])
            if ctx.p > 0:
                d_o = d_o * noise[t]
            dm = d_mm[t + 1]
            d_pre = dm[:, 3 * hid + att :]
            d_pre.copy_(aten.tanh_backward(d_o, out[t]))
            dc = torch.mm(d_pre, w_oc, out=d_context[t])
            alpha = weights[t]
            d_alpha = torch.bmm(values, dc.unsqueeze(2)).view(batch, src)
            ds = torch.ops.aten._softmax_backward_data(d_alpha, alpha, 1, alpha.dtype)
            d_scores[t] = ds
            d_u = aten.tanh_backward(ds.unsqueeze(2) * v_row, u[t])
            d_keys += d_u
            torch.sum(d_u, 1, out=dm[:, 3 * hid : 3 * hid + att])
            dh = torch.mm(dm, w_cat).add_(carry)
            carry = gru_update_backward(  # fills d_mm[t]'s d gh_t, read by step t - 1's product
                dh, rz[t], n_gate[t], mm[t, :, 2 * hid : 3 * hid], hs[t], d_gi[t], d_mm[t, :, : 3 * hid]
            )
            d_feed = torch.mm(d_gi[t], w_feed) if t > 0 else None
        assert isinstance(carry, Tensor)
        d_h0 = torch.addmm(carry, d_mm[0, :, : 3 * hid], w_hh)
        # Every weight's gradient as one product over all steps.
        d_gi_rows = d_gi.view(rows, 3 * hid)
        d_w_ih = torch.cat(
            [d_gi_rows.t() @ emb_tb, d_gi[1:].reshape(-1, 3 * hid).t() @ feed[:-1].reshape(-1, hid)], dim=1
        )
        d_cat = d_mm[1:].view(rows, -1).t() @ hs[1:].reshape(rows, hid)
        d_w_hh = d_cat[: 3 * hid].addmm_(d_mm[0, :, : 3 * hid].t(), hs[0])
        d_pre_rows = d_mm[1:, :, 3 * hid + att :].reshape(rows, hid)
        d_w_o = torch.cat([d_cat[3 * hid + att :], d_pre_rows.t() @ context.view(rows, val)], dim=1)
        d_v = d_scores.view(1, rows * src) @ u.view(rows * src, att)
        d_emb = (d_gi_rows @ w_ih[:, :emb_size]).view(steps, batch, emb_size).transpose(0, 1)
        d_values = torch.bmm(weights.permute(1, 2, 0), d_context.transpose(0, 1))
        d_b_q = d_mm[1:, :, 3 * hid : 3 * hid + att].sum((0, 1)) if ctx.has_query_bias else None
        return (
            d_emb, d_h0, d_keys, d_values, None,
            d_w_ih, d_gi_rows.sum(0), d_w_hh, d_mm[:steps, :, : 3 * hid].sum((0, 1)),
            d_cat[3 * hid : 3 * hid + att], d_b_q, d_v, d_w_o, d_pre_rows.sum(0), None,
        )  # fmt: skip
