"""The pieces both fused training paths (packed_gru.py, decoder_loop.py) are built from.

The GRU and LSTM gate updates with their hand-written backward, in torch's formulas, and the products
with weights: under CPU bf16 autocast `mm_in` and `addmm_in` multiply in bf16 and return fp32; with
equal dtypes they are torch's own products, so fp32 is unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor

aten = torch.ops.aten


def without_autocast(method: Callable) -> Callable:
    """An autograd Function's forward or backward run outside autocast: it casts for its products itself
    (and backward may be called inside an autocast region, which would otherwise recast them)."""

    @functools.wraps(method)
    def run(ctx, *args):
        device = next(a for a in args if isinstance(a, Tensor)).device
        with torch.autocast(device.type, enabled=False):
            return method(ctx, *args)

    return run


def mm_in(a: Tensor, b: Tensor, dtype: torch.dtype, out: Tensor | None = None) -> Tensor:
    """a @ b with the product in dtype, the result in a's dtype."""
    if a.dtype == dtype and b.dtype == dtype:
        return torch.mm(a, b, out=out)
    product = torch.mm(a.to(dtype), b.to(dtype))
    return product.to(a.dtype) if out is None else out.copy_(product)


def addmm_in(bias: Tensor, a: Tensor, b: Tensor, dtype: torch.dtype, out: Tensor | None = None) -> Tensor:
    """bias + a @ b with the product in dtype, the sum in bias's dtype."""
    if bias.dtype == a.dtype == b.dtype == dtype:
        return torch.addmm(bias, a, b, out=out)
    return torch.add(bias, torch.mm(a.to(dtype), b.to(dtype)), out=out)


def gru_update(gi: Tensor, gh: Tensor, h_prev: Tensor, rz: Tensor, n: Tensor, h: Tensor) -> Tensor:
    """h = GRU(h_prev) from the input and hidden projections gi, gh (N, 3H), biases included.

    The gates go into rz (N, 2H) and n (N, H), the new state into h; returns h. torch's formula:
    r, z = sigmoid(gi_rz + gh_rz), n = tanh(gi_n + r * gh_n), h = (1 - z) n + z h_prev.
    """
    size = h.size(1)
    r_z = torch.add(gi[:, : 2 * size], gh[:, : 2 * size], out=rz).sigmoid_()
    torch.addcmul(gi[:, 2 * size :], r_z[:, :size], gh[:, 2 * size :], out=n).tanh_()
    return torch.lerp(n, h_prev, r_z[:, size:], out=h)


def gru_update_backward(
    dh: Tensor, rz: Tensor, n: Tensor, gh_n: Tensor, h_prev: Tensor, d_gi: Tensor, d_gh: Tensor
) -> Tensor:
    """For d loss / d h, fills d_gi and d_gh (N, 3H); returns the gradient that reaches h_prev through z.

    gh_n is the hidden projection's n part (W_hn h_prev + b_hn). The other part of h_prev's gradient is
    d_gh @ W_hh, left to the caller, who may fold it into a larger product.
    """
    size = dh.size(1)
    r, z = rz[:, :size], rz[:, size:]
    direct = dh * z
    d_n = aten.tanh_backward(dh - direct, n)
    d_gi[:, 2 * size :] = d_n
    d_gi[:, :size] = aten.sigmoid_backward(d_n * gh_n, r)
    d_gi[:, size : 2 * size] = aten.sigmoid_backward(dh * (h_prev - n), z)
    d_gh[:, : 2 * size] = d_gi[:, : 2 * size]
    torch.mul(d_n, r, out=d_gh[:, 2 * size :])
    return direct


def lstm_update(
    gi: Tensor, gh: Tensor, c_prev: Tensor, gates: Tensor, c: Tensor, tanh_c: Tensor, h: Tensor
) -> Tensor:
    """h, c = LSTM(h_prev, c_prev) from the projections gi, gh (N, 4H), biases included, as torch's cell.

    The activated gates i, f, g, o go into gates (N, 4H), the cell into c, tanh(c) into tanh_c and
    the new hidden state into h; returns h.
    """
    size = h.size(1)
    torch.add(gi, gh, out=gates)
    gates[:, : 2 * size].sigmoid_()
    gates[:, 2 * size : 3 * size].tanh_()
    gates[:, 3 * size :].sigmoid_()
    i, f, g, o = gates.chunk(4, dim=1)
    torch.addcmul(f * c_prev, i, g, out=c)
    return torch.mul(o, torch.tanh(c, out=tanh_c), out=h)


def lstm_update_backward(
    dh: Tensor, dc: Tensor | float, gates: Tensor, c_prev: Tensor, tanh_c: Tensor, d_gates: Tensor
) -> Tensor:
    """For d loss / d h and d loss / d c, fills d_gates (N, 4H); returns d loss / d c_prev."""
    size = dh.size(1)
    i, f, g, o = gates.chunk(4, dim=1)
    dc = aten.tanh_backward(dh * o, tanh_c).add_(dc)
    d_gates[:, :size] = aten.sigmoid_backward(dc * g, i)
    d_gates[:, size : 2 * size] = aten.sigmoid_backward(dc * c_prev, f)
    d_gates[:, 2 * size : 3 * size] = aten.tanh_backward(dc * i, g)
    d_gates[:, 3 * size :] = aten.sigmoid_backward(dh * tanh_c, o)
    return dc * f
