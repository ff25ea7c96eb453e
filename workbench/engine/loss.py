"""The training loss: token-level cross-entropy summed over the batch, padding ignored."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from workbench.engine.special_tokens import PAD


def sequence_loss(logits: Tensor, targets: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy of logits (B, T, V) against targets (B, T), summed over the non-PAD targets.

    The caller divides by the batch's token count, known on the host, so the step needs no device sync.
    """
    loss = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(),
        targets.reshape(-1),
        ignore_index=PAD,
        reduction="sum",
        label_smoothing=label_smoothing,
    )
    return loss
