"""Attention over the encoder states: Bahdanau (additive), Luong (dot, general, concat) and cosine scoring.

These classes differ only in the scoring function; which state is the query (the new one in Luong's
order, the previous one in Bahdanau's) is the decoder's choice (decoders.py). Keys are projected once
per source with `precompute`; `forward` then scores one query per sentence (B, Hq) or a block of
queries (B, T, Hq).

These modules are the reference. With the default model (input feeding, a GRU or LSTM cell) training
computes the same scores inside fast_paths/decoder_loop.py (forward and backward written out) and search
inside fast_paths/search_step.py; `fast_paths.reference_maths()` runs these instead (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _BatchMatmul(torch.autograd.Function):
    """torch.bmm with a backward that stays fast when one side is a single row per sentence.

    In the decoder loop every step multiplies (B, 1, S) weights by (B, S, H) values. torch's own
    backward then forms the values' gradient as B outer products through a batched matmul of inner
    size 1 from a non-contiguous gradient; on the CPU that cost several times the whole forward step.
    A broadcast multiply gives the same numbers.
    """

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor) -> Tensor:  # type: ignore[override]
        out = torch.bmm(a, b)
        # Under autocast the product ran in its dtype (bf16, fp16); backward runs outside autocast, so
        # it gets the operands as the forward product saw them.
        ctx.save_for_backward(a.to(out.dtype), b.to(out.dtype))
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:  # type: ignore[override]
        a, b = ctx.saved_tensors
        grad = grad.contiguous()
        grad_a = torch.bmm(grad, b.transpose(1, 2)) if ctx.needs_input_grad[0] else None
        grad_b = None
        if ctx.needs_input_grad[1]:
            at = a.transpose(1, 2)
            grad_b = at * grad if a.size(1) == 1 else torch.bmm(at, grad)
        return grad_a, grad_b


def batch_matmul(a: Tensor, b: Tensor) -> Tensor:
    """(B, M, K) @ (B, K, N); the same as torch.bmm, with a faster backward for M = 1 (see above)."""
    if torch.is_grad_enabled() and (a.requires_grad or b.requires_grad):
        return _BatchMatmul.apply(a, b)
    return torch.bmm(a, b)


class Attention(nn.Module):
    """Base class: masked softmax over scores, then the weighted sum of the values."""

    values_are_keys = False  # True: the context sums the projected keys instead of the encoder states

    def precompute(self, keys: Tensor) -> Tensor:
        """Project the keys (B, S, Hk) once per source; the result is passed to every `forward`."""
        return keys

    def additive_layers(self) -> tuple[nn.Linear, nn.Linear] | None:
        """(query layer, energy layer) of an additive score v · tanh(k + W_q q); None for q · k."""
        return None

    def score(self, query: Tensor, proj_keys: Tensor) -> Tensor:
        """Raw scores (B, T, S) of queries (B, T, Hq) against precomputed keys (B, S, A)."""
        raise NotImplementedError

    def forward(
        self, query: Tensor, proj_keys: Tensor, values: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Context (B, [T,] Hv) and weights (B, [T,] S) for queries (B, [T,] Hq); mask (B, S) True = real."""
        single = query.dim() == 2
        queries = query.unsqueeze(1) if single else query
        scores = self.score(queries, proj_keys)
        # -inf before the softmax gives padded positions exactly zero weight (every source has >= 1 token).
        scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        context = batch_matmul(weights, proj_keys if self.values_are_keys else values)
        if single:
            return context.squeeze(1), weights.squeeze(1)
        return context, weights


class BahdanauAttention(Attention):
    """Additive attention, score = v · tanh(W_k k + W_q q) (Bahdanau et al. 2015, appendix A.1.2)."""

    def __init__(self, key_size: int, query_size: int, hidden_size: int, query_bias: bool = False) -> None:
        super().__init__()
        self.key_layer = nn.Linear(key_size, hidden_size, bias=False)
        self.query_layer = nn.Linear(query_size, hidden_size, bias=query_bias)
        self.energy_layer = nn.Linear(hidden_size, 1, bias=False)

    def precompute(self, keys: Tensor) -> Tensor:
        return self.key_layer(keys)

    def additive_layers(self) -> tuple[nn.Linear, nn.Linear]:
        return self.query_layer, self.energy_layer

    def score(self, query: Tensor, proj_keys: Tensor) -> Tensor:
        # (B, 1, S, A) + (B, T, 1, A): all T queries in one broadcast, no loop.
        hidden = torch.tanh(proj_keys.unsqueeze(1) + self.query_layer(query).unsqueeze(2))
        return self.energy_layer(hidden).squeeze(-1)


class LuongAttention(Attention):
    """Luong et al. (2015) scores: dot q·k, general q·W k, concat v · tanh(W [q; k])."""

    def __init__(self, key_size: int, query_size: int, kind: str = "general") -> None:
        super().__init__()
        if kind not in ("dot", "general", "concat"):
            raise ValueError(f"unknown Luong attention kind {kind!r}; expected dot, general or concat")
        self.kind = kind
        self.key_layer: nn.Linear | None = None
        self.additive: BahdanauAttention | None = None
        if kind == "general":
            self.key_layer = nn.Linear(key_size, query_size, bias=False)
        elif kind == "concat":
            # W [q; k] splits into W_q q + W_k k, so the key half is still projected once per source;
            # the score is then the additive one, with W's bias kept on the query side.
            self.additive = BahdanauAttention(key_size, query_size, query_size, query_bias=True)

    def precompute(self, keys: Tensor) -> Tensor:
        if self.key_layer is not None:
            return self.key_layer(keys)
        if self.additive is not None:
            return self.additive.precompute(keys)
        return keys

    def additive_layers(self) -> tuple[nn.Linear, nn.Linear] | None:
        return None if self.additive is None else self.additive.additive_layers()

    def score(self, query: Tensor, proj_keys: Tensor) -> Tensor:
        if self.additive is not None:
            return self.additive.score(query, proj_keys)
        return batch_matmul(query, proj_keys.transpose(1, 2))


class CosineAttention(Attention):
    """score = cos(q, W k): the cosine similarity of the query and a linear transform of each encoder
    state (to the query's size); the context is the weighted sum of the transformed states W k."""

    values_are_keys = True
    EPS = 1e-8  # a zero vector has cosine 0 with everything

    def __init__(self, key_size: int, query_size: int) -> None:
        super().__init__()
        self.key_layer = nn.Linear(key_size, query_size, bias=False)

    def precompute(self, keys: Tensor) -> Tensor:
        return self.key_layer(keys)

    def score(self, query: Tensor, proj_keys: Tensor) -> Tensor:
        query = F.normalize(query, dim=-1, eps=self.EPS)
        keys = F.normalize(proj_keys, dim=-1, eps=self.EPS)
        return batch_matmul(query, keys.transpose(1, 2))


# model.attention's scores (the recipe's "none" has no module): name -> builder(key_size, query_size).
SCORES: dict[str, Callable[[int, int], Attention]] = {
    "bahdanau": lambda key_size, query_size: BahdanauAttention(key_size, query_size, query_size),
    "dot": lambda key_size, query_size: LuongAttention(key_size, query_size, "dot"),
    "general": lambda key_size, query_size: LuongAttention(key_size, query_size, "general"),
    "concat": lambda key_size, query_size: LuongAttention(key_size, query_size, "concat"),
    "cosine": CosineAttention,
}


def build_attention(kind: str, key_size: int, query_size: int) -> Attention:
    """The attention module for a recipe's `model.attention` (not "none")."""
    if kind not in SCORES:
        raise ValueError(f"unknown attention {kind!r}; expected one of {', '.join(SCORES)}")
    return SCORES[kind](key_size, query_size)
