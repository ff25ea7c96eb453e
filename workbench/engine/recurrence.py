"""Layers used at every step of the decoder loop, with their weight gradients deferred to one GEMM.

In a step loop autograd differentiates each use of a shared weight separately: every step adds a
(rows x out) by (rows x in) weight-gradient GEMM of only B rows and accumulates the full weight-sized
result into the gradient. For the reference decoder that is ~16 MB written and re-added per step.
Inside `deferred_weight_gradients(module)` the `StepLinear` and the `Step*Cell` layers instead keep
each step's input and output gradient and compute the weight gradient once, over all B * T rows,
when autograd reaches the weight (`_Tap`): the same sum, one large GEMM, no per-step accumulation.

Outside that context (decoding, validation, GPUs) the layers are plain `nn.Linear` / `nn.*Cell`
(the fused cell kernels on CUDA); the parameter names are theirs, so checkpoints do not change.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn


class _Rows:
    """The inputs and output gradients of every use of one weight in one backward pass."""

    def __init__(self) -> None:
        self.inputs: list[Tensor] = []
        self.grads: list[Tensor] = []

    def weight_gradient(self) -> Tensor | None:
        if not self.grads:
            return None
        grad = torch.cat(self.grads).t().mm(torch.cat(self.inputs))
        self.inputs.clear()
        self.grads.clear()
        return grad


class _Tap(torch.autograd.Function):
    """Identity on a weight. Autograd runs its backward after every use of the weight has run its own
    (each use is a later node), so the collected rows are complete: their product is the gradient."""

    @staticmethod
    def forward(ctx, weight: Tensor, rows: _Rows) -> Tensor:  # type: ignore[override]
        ctx.rows = rows
        ctx.set_materialize_grads(False)
        return weight.view_as(weight)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor | None) -> tuple[Tensor | None, None]:  # type: ignore[override]
        deferred = ctx.rows.weight_gradient()
        if grad is None:
            return deferred, None
        return grad if deferred is None else grad + deferred, None


class _Product(torch.autograd.Function):
    """x @ w.T + b whose backward returns the input and bias gradients and leaves the weight's to `_Tap`."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, rows: _Rows) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        ctx.rows = rows
        ctx.has_bias = bias is not None
        return x.mm(weight.t()) if bias is None else torch.addmm(bias, x, weight.t())

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, None, Tensor | None, None]:  # type: ignore[override]
        x, weight = ctx.saved_tensors
        if ctx.needs_input_grad[1]:
            ctx.rows.inputs.append(x)
            ctx.rows.grads.append(grad)
        grad_x = grad.mm(weight) if ctx.needs_input_grad[0] else None
        grad_bias = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, None, grad_bias, None


class _Deferred:
    """A weight seen through its `_Tap` for the duration of one forward pass."""

    def __init__(self, weight: Tensor) -> None:
        self.rows = _Rows()
        self.weight = _Tap.apply(weight, self.rows)

    def linear(self, x: Tensor, bias: Tensor | None) -> Tensor:
        flat = x.reshape(-1, x.size(-1))
        return _Product.apply(flat, self.weight, bias, self.rows).view(*x.shape[:-1], -1)


class _StepLayer:
    """Mixin: the deferred weights of a layer while `deferred_weight_gradients` is active."""

    _deferred: dict[str, _Deferred] | None = None

    _weights: tuple[str, ...] = ("weight_ih", "weight_hh")

    def _defer(self) -> None:
        self._deferred = {
            name: _Deferred(getattr(self, name))
            for name in self._weights
            if getattr(self, name).requires_grad
        }

    def _linear(self, x: Tensor, weight: str, bias: Tensor | None) -> Tensor:
        assert self._deferred is not None
        deferred = self._deferred.get(weight)
        if deferred is None:  # a frozen weight
            return nn.functional.linear(x, getattr(self, weight), bias)
        return deferred.linear(x, bias)


class StepLinear(nn.Linear, _StepLayer):
    """nn.Linear for use inside a step loop (see the module docstring)."""

    _weights = ("weight",)

    def forward(self, x: Tensor) -> Tensor:
        if self._deferred is None:
            return super().forward(x)
        return self._linear(x, "weight", self.bias)


class StepGRUCell(nn.GRUCell, _StepLayer):
    """nn.GRUCell; deferred, it computes torch's GRU cell from its own products."""

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:  # type: ignore[override]
        if self._deferred is None or h is None:
            return super().forward(x, h)
        i_r, i_z, i_n = self._linear(x, "weight_ih", self.bias_ih).chunk(3, 1)
        h_r, h_z, h_n = self._linear(h, "weight_hh", self.bias_hh).chunk(3, 1)
        reset = torch.sigmoid(i_r + h_r)
        update = torch.sigmoid(i_z + h_z)
        new = torch.tanh(i_n + reset * h_n)
        return (h - new) * update + new


class StepLSTMCell(nn.LSTMCell, _StepLayer):
    """nn.LSTMCell; deferred, it computes torch's LSTM cell from its own products."""

    def forward(  # type: ignore[override]
        self, x: Tensor, hc: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        if self._deferred is None or hc is None:
            return super().forward(x, hc)
        h, c = hc
        gates = self._linear(x, "weight_ih", self.bias_ih) + self._linear(h, "weight_hh", self.bias_hh)
        i, f, g, o = gates.chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class StepRNNCell(nn.RNNCell, _StepLayer):
    """nn.RNNCell (tanh); deferred, it computes the cell from its own products."""

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:  # type: ignore[override]
        if self._deferred is None or h is None or self.nonlinearity != "tanh":
            return super().forward(x, h)
        return torch.tanh(
            self._linear(x, "weight_ih", self.bias_ih) + self._linear(h, "weight_hh", self.bias_hh)
        )


@contextmanager
def deferred_weight_gradients(module: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Within: the step layers of `module` defer their weight gradients (when gradients are on)."""
    layers = [m for m in module.modules() if isinstance(m, _StepLayer)]
    active = enabled and torch.is_grad_enabled()
    try:
        for layer in layers if active else []:
            layer._defer()
        yield
    finally:
        for layer in layers:
            layer._deferred = None
