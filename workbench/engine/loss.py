"""The training loss: label-smoothed cross-entropy of the vocabulary projection, summed over real tokens.

The projection and the loss are fused and run over chunks of rows, so the (tokens x vocabulary) logits
and their gradient never exist whole. For a batch of ~1,000 target tokens and 8,000 pieces those are
32 MB tensors: on the CPU, allocating, zero-filling and faulting in their pages cost more than the
softmax itself, and the chunks stay in cache. The loss is a scalar, so its gradient with respect to the
hidden states and the weight is computed in the forward pass, chunk by chunk; backward only scales it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from workbench.engine.devices import product_dtype
from workbench.engine.special_tokens import PAD

CHUNK_ROWS = 256  # 256 x 8,000 fp32 logits: 8 MB, in cache
# On a GPU a small chunk only adds launches (a dozen kernels each): about one chunk a batch there.
CUDA_CHUNK_ROWS = 8192


def projected_cross_entropy(
    hidden: Tensor, weight: Tensor, targets: Tensor, label_smoothing: float = 0.0
) -> Tensor:
    """Cross-entropy of logits `hidden @ weight.T` against `targets`, summed over the non-PAD targets.

    hidden (..., H), weight (V, H), targets (...) of token ids; the same value as `F.cross_entropy(...,
    ignore_index=PAD, reduction="sum", label_smoothing=...)` on the full logits. The caller divides by
    the batch's token count, known on the host, so the step needs no device sync.
    """
    hidden = hidden.reshape(-1, hidden.size(-1))
    targets = targets.reshape(-1)
    if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
        return _ProjectedCrossEntropy.apply(hidden, weight, targets, label_smoothing)
    return _chunked(hidden, weight, targets, label_smoothing, gradients=False)[0]


def cross_entropy_and_correct(hidden: Tensor, weight: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """`projected_cross_entropy` (no smoothing, no gradient) and, in the same pass, how many non-PAD
    targets are the argmax of their logits: token accuracy under teacher forcing, for validation."""
    hidden = hidden.reshape(-1, hidden.size(-1))
    correct = torch.zeros((), dtype=torch.long, device=hidden.device)
    loss = _chunked(hidden, weight, targets.reshape(-1), 0.0, gradients=False, correct=correct)[0]
    return loss, correct


class _ProjectedCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: Tensor, weight: Tensor, targets: Tensor, label_smoothing: float) -> Tensor:  # type: ignore[override]
        loss, grad_hidden, grad_weight = _chunked(hidden, weight, targets, label_smoothing, gradients=True)
        ctx.save_for_backward(grad_hidden, grad_weight)
        ctx.used = False
        return loss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss: Tensor) -> tuple[Tensor | None, Tensor | None, None, None]:  # type: ignore[override]
        if ctx.used:  # the buffers below are scaled in place: a second backward would be wrong
            raise RuntimeError("projected_cross_entropy: backward ran twice over one graph")
        ctx.used = True
        grad_hidden, grad_weight = ctx.saved_tensors
        return (
            grad_hidden.mul_(grad_loss) if ctx.needs_input_grad[0] else None,
            grad_weight.mul_(grad_loss) if ctx.needs_input_grad[1] else None,
            None,
            None,
        )


def _chunked(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    label_smoothing: float,
    gradients: bool,
    correct: Tensor | None = None,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """The summed loss and, if asked, its gradients with respect to hidden (N, H) and weight (V, H);
    `correct`, if given, gains the number of non-PAD targets that are their row's argmax."""
    rows, vocab = hidden.size(0), weight.size(0)
    eps = label_smoothing
    dtype = torch.promote_types(hidden.dtype, torch.float32)  # the softmax never in bf16/fp16
    # The products in the autocast dtype inside an autocast region (the weight cast once, not per chunk).
    low = product_dtype(hidden)
    weight_low = weight.to(low)
    loss = hidden.new_zeros((), dtype=dtype)
    grad_hidden = torch.empty_like(hidden) if gradients else None
    grad_weight = torch.zeros_like(weight) if gradients and low == weight.dtype else None
    # In a lower precision the logits' gradients are kept, (N, V) in it, for one weight-gradient
    # product at the end: adding each chunk's low-precision product into the fp32 gradient would round
    # it and cost three weight-sized passes a chunk.
    grads = hidden.new_empty(rows, vocab, dtype=low) if gradients and grad_weight is None else None
    chunk = CHUNK_ROWS if hidden.device.type == "cpu" else CUDA_CHUNK_ROWS
    for start in range(0, rows, chunk):
        h = hidden[start : start + chunk]
        y = targets[start : start + chunk].unsqueeze(1)
        real = (y != PAD).to(dtype)  # (c, 1): PAD rows count for nothing
        log_probs = torch.log_softmax((h.to(low) @ weight_low.t()).to(dtype), dim=-1)
        if correct is not None:
            correct += ((log_probs.argmax(dim=1, keepdim=True) == y) & (y != PAD)).sum()
        # Label smoothing as torch defines it: (1 - eps) * NLL + eps * mean over the vocabulary of -log p.
        token_loss = -(1.0 - eps) * log_probs.gather(1, y)
        if eps:
            token_loss -= (eps / vocab) * log_probs.sum(dim=1, keepdim=True)
        loss += (token_loss * real).sum()
        if gradients:
            assert grad_hidden is not None
            # d loss / d logits = softmax - (1 - eps) * one_hot(y) - eps / V, zero on PAD rows.
            grad = log_probs.exp_()
            if eps:
                grad.sub_(eps / vocab)
            grad.scatter_add_(1, y, torch.full_like(real, eps - 1.0))
            grad.mul_(real)
            if grads is None:
                assert grad_weight is not None
                grad_hidden[start : start + chunk] = grad @ weight
                grad_weight.addmm_(grad.t(), h)
            else:
                grad = grads[start : start + chunk].copy_(grad)
                grad_hidden[start : start + chunk] = grad @ weight_low
    if grads is not None:
        grad_weight = (grads.t() @ hidden.to(low)).to(weight.dtype)
    return loss, grad_hidden, grad_weight
