"""The optimizers a recipe may name (`training.optimizer`): name -> builder, read by the recipe's checks."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the recipe reads this registry for its checks, and loads without importing torch
    import torch

    from workbench.engine.recipe import TrainingConfig

Builder = Callable[["Iterable[torch.nn.Parameter]", "TrainingConfig"], "torch.optim.Optimizer"]


# The fused kernels skip a non-finite step on the device (skipped_steps.step_unless); fused Adam gives the
# same curve as the per-parameter loop, five times faster on CPU. torch has no fused RMSprop.
def _adam(params: Iterable[torch.nn.Parameter], cfg: TrainingConfig) -> torch.optim.Optimizer:
    import torch

    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)


def _sgd(params: Iterable[torch.nn.Parameter], cfg: TrainingConfig) -> torch.optim.Optimizer:
    import torch

    return torch.optim.SGD(
        params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, fused=True
    )


def _rmsprop(params: Iterable[torch.nn.Parameter], cfg: TrainingConfig) -> torch.optim.Optimizer:
    import torch

    return torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


OPTIMIZERS: dict[str, Builder] = {"adam": _adam, "sgd": _sgd, "rmsprop": _rmsprop}


def build_optimizer(model: torch.nn.Module, cfg: TrainingConfig) -> torch.optim.Optimizer:
    """The recipe's optimizer over the model's trainable weights."""
    return OPTIMIZERS[cfg.optimizer]([q for q in model.parameters() if q.requires_grad], cfg)
