"""Steps skipped for a non-finite gradient, decided and counted on the training device.

A training step never reads whether its gradient was finite: on a GPU that read would make the CPU wait
for every step before it builds the next batch. The step's flag goes to the optimizer as a tensor (the
fused kernels skip the update where it is set, as under GradScaler) and into the counts below, which the
trainer reads once per logging step and before every checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# The counts' slots: skips in a row now, the most in a row, skips, their target and source tokens (all
# since the last read), the first step past the recipe's limit, the first and last skipped step.
IN_A_ROW, MOST, SKIPPED, TGT, SRC, OVER_AT, FIRST, LAST = range(8)


@dataclass(frozen=True)
class Skips:
    """What the counts held at a read."""

    in_a_row: int  # up to the last step
    most_in_a_row: int
    skipped: int
    tgt_tokens: int
    src_tokens: int
    over_at: int  # the step at which more were skipped in a row than allowed; 0: none
    first: int
    last: int


def step_unless(optimizer: torch.optim.Optimizer, found_inf: torch.Tensor) -> None:
    """The optimizer's step, left out where `found_inf` (0. or 1., on the device) is set.

    Fused Adam and SGD take the flag as GradScaler hands it to them and skip on the device, the step
    count included. torch has no fused RMSprop: there the flag is read (a host sync every step).
    """
    if getattr(optimizer, "_step_supports_amp_scaling", False):
        optimizer.found_inf = found_inf
        try:
            optimizer.step()
        finally:
            del optimizer.found_inf
    elif not found_inf.item():
        optimizer.step()


class SkippedSteps:
    """Counts, on the device, of the steps whose gradient was not finite; read with `read()`."""

    def __init__(self, device: torch.device, limit: int, in_a_row: int = 0):
        self.limit = limit  # skips allowed in a row (training.skip_nonfinite)
        self.counts = torch.zeros(8, dtype=torch.int64, device=device)
        self.counts[IN_A_ROW] = in_a_row

    def add(self, found_inf: torch.Tensor, step: int, tgt_tokens: int, src_tokens: int) -> None:
        """Count step `step`, skipped where `found_inf` is set, without leaving the device."""
        c, skipped = self.counts, found_inf.to(torch.int64)
        in_a_row = (c[IN_A_ROW] + 1) * skipped
        over = (c[OVER_AT] == 0) & (in_a_row > self.limit)
        first = torch.where((c[FIRST] == 0) & (skipped > 0), step, c[FIRST])
        updated = [
            in_a_row,
            torch.maximum(c[MOST], in_a_row),
            c[SKIPPED] + skipped,
            c[TGT] + skipped * tgt_tokens,
            c[SRC] + skipped * src_tokens,
            torch.where(over, step, c[OVER_AT]),
            first,
            torch.where(skipped > 0, step, c[LAST]),
        ]
        c.copy_(torch.stack(updated))

    def read(self) -> Skips:
        """The counts (one host sync), then a fresh start for those kept since the last read."""
        skips = Skips(*self.counts.tolist())
        self.counts[MOST:OVER_AT] = 0
        self.counts[FIRST:] = 0
        return skips
