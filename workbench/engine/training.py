"""Training: turns a run folder's recipe into checkpoints, metrics and samples in that folder.

Set-up is `setup.prepare_training`, which returns the `TrainingSetup` a `Trainer` is built from; the
lifecycle (the lock, signals and failure reports) is `session.TrainingSession`; validation's scores are
`validation.evaluate`; the control messages are `controls.Controls`. Here: the loop, the training step,
the logging window and the checkpoints a run saves.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch

from workbench.engine.checkpoint import average_last, save_checkpoint, step_tag
from workbench.engine.controls import Controls
from workbench.engine.data.batching import Batch
from workbench.engine.devices import autocast, describe
from workbench.engine.distributed import launcher_died
from workbench.engine.errors import UserError
from workbench.engine.evaluation import teacher_forced
from workbench.engine.peak_memory import peak_memory
from workbench.engine.run_folder import STOPPED_BY_USER
from workbench.engine.schedules import teacher_forcing_ratio
from workbench.engine.setup import TrainingSetup, epoch_order, global_batch
from workbench.engine.skipped_steps import SkippedSteps, step_unless
from workbench.engine.validation import evaluate, samples

# A loss that explodes while staying finite stops the run: the window's mean training loss per target
# token above EXPLODED_TIMES x ln(target vocabulary size) at EXPLODED_WINDOWS logging steps in a row. ln V
# is the loss of a model that gives every piece the same probability: an untrained one starts near it, and
# training only lowers it (label smoothing keeps a trained model below it too). 10 x ln V means the right
# pieces get, on average over a whole window, V^-9 of a blind guess's probability: weights blown up by a
# too-large step, never a model that learns. Three windows in a row let a single odd window go on.
EXPLODED_TIMES, EXPLODED_WINDOWS = 10, 3
# What rank 0's validation decides, for every process: the best so far and early stopping's count.
SHARED_PROGRESS = ("best", "best_step", "scheduled_best", "bad_validations", "last_valid_step", "valid")
Event = Callable[[str, dict[str, Any]], None]


class DivergedError(UserError):
    """Training produced a loss or gradient that is not finite: the weights would be lost to NaN."""


class Trainer:
    """The training loop over one finished `TrainingSetup`; `train()` returns the end state (finished,
    stopped). `session.TrainingSession` builds it inside the run's lock and stop signals; benchmarks and
    tests build one from `TrainingSession.prepare()` and take its steps by hand.

    `on_event(kind, record)` hears each metrics record and the end; `stop_requested()` tells whether a
    stop signal has come (the session's handlers set it).
    """

    def __init__(
        self,
        setup: TrainingSetup,
        on_event: Event | None = None,
        stop_requested: Callable[[], bool] | None = None,
    ):
        self.setup = setup
        self.run, self.recipe, self.topology = setup.run, setup.recipe, setup.topology
        self.main = self.topology.main  # rank 0 alone writes the run folder
        self.device, self.model, self.optimizer = setup.device, setup.model, setup.optimizer
        self.progress = progress = setup.progress
        self.on_event = on_event or (lambda kind, record: None)
        self.stop_requested = stop_requested or (lambda: False)
        # The last step's flag, on the device: 1. where its gradient was not finite and the step was left
        # out (fp16's loss scaler decides alone), counted in `skips`.
        self.found_inf = torch.zeros((), device=self.device)
        limit = self.recipe.training.skip_nonfinite
        self.skips = SkippedSteps(self.device, limit, progress.nonfinite_in_a_row)
        self.saved_step = progress.step  # the step of the weights in the checkpoints
        # Logging steps in a row whose loss was over the explosion bound. Never in a checkpoint: none is
        # saved while it is above 0, so a resumed run starts from 0.
        self.exploded_in_a_row = 0
        # The loss summed since the last log, on the training device so that a step needs no host sync;
        # read at log time. A checkpoint holds the whole window's loss, gathered on rank 0: the others
        # start from none.
        window = progress.window_loss if self.main else 0.0
        self._window_loss = torch.tensor(window, dtype=torch.float64, device=self.device)
        self._window_start = time.monotonic()
        self.session_start = time.monotonic()  # this session's clock, pauses excluded
        self.wall_at_start = progress.wall  # the run's training seconds before this session

    def global_batch(self) -> str:
        return global_batch(self.recipe, self.topology.world_size)

    def epoch_order(self, epoch: int) -> list[np.ndarray]:
        return epoch_order(self.recipe, self.setup.data.train, epoch, self.topology.world_size)

    def _log(self, message: str) -> None:
        if self.main:
            self.run.log(message)

    def _status(self, state: str, **fields: Any) -> None:
        if self.main:
            self.run.write_status(state, **fields)

    # The loop ---------------------------------------------------------------------------------------
    def train(self, max_steps: int | None = None, max_minutes: float | None = None) -> str:
        """Train until a limit (the recipe's where None), early stopping or a stop message; the run folder
        records everything."""
        ended = self._loop(max_steps, max_minutes)
        # Every process leaves together: one that tore down its connections while rank 0 still
        # saved could abort at exit (gloo), and torchrun would then fail the finished run.
        self.setup.team.wait_for_all()
        return ended

    def _loop(self, max_steps: int | None, max_minutes: float | None) -> str:
        cfg, progress = self.recipe.training, self.progress
        max_steps = max_steps if max_steps is not None else cfg.max_steps
        max_minutes = max_minutes if max_minutes is not None else cfg.max_minutes
        self._start_clock(max_steps, max_minutes)
        controls = Controls(self.run, self.setup.team)
        while True:
            if reason := self._limit_reached(max_steps, max_minutes):
                return self._finish(reason)
            order = self.epoch_order(progress.epoch)
            while progress.batch_in_epoch < len(order):
                if ended := self._act_on_controls(controls, max_minutes):
                    return ended
                indices = order[progress.batch_in_epoch]
                progress.step += 1
                progress.batch_in_epoch += 1
                tgt_tokens = self.setup.data.train.tokens("tgt", indices)
                loss_sum, grad_norm = self.train_step(self.shards(indices), tgt_tokens)
                self._add_to_window(loss_sum, tgt_tokens, self.setup.data.train.tokens("src", indices))
                if progress.step % cfg.log_every == 0:
                    self._log_window(grad_norm.item())
                if self._validation_due(len(order)) and self._scheduled_validation():
                    return self._finish(f"early stopping: no improvement in {cfg.early_stopping} validations")
                if reason := self._limit_reached(max_steps, max_minutes):
                    return self._finish(reason)
            progress.epoch += 1
            progress.batch_in_epoch = 0

    def train_step(
        self, batches: Batch | list[tuple[Batch, float]], n_tgt_tokens: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step on a batch, or on this process's weighted shards of a global batch of
        `n_tgt_tokens` target tokens; returns the summed token loss and the gradient norm (on device).

        The loss is normalised by the global batch's tokens, so the summed gradient is the same whether
        the batch was taken whole, accumulated in parts, or split across processes (DDP averages the
        processes' gradients, hence the factor of their number).
        """
        cfg, setup, step = self.recipe.training, self.setup, self.progress.step
        if isinstance(batches, Batch):
            batches, n_tgt_tokens = [(batches, 1.0)], batches.n_tgt_tokens
        for group in setup.optimizer.param_groups:
            group["lr"] = setup.schedule.lr(step)
        processes = self.topology.world_size
        if self.topology.distributed:  # each process its own dropout masks, the same on a resume
            torch.manual_seed((self.recipe.seed * 1_000_003 + step) * 1_009 + self.topology.rank)
        sampling = 1.0 - teacher_forcing_ratio(cfg, step)
        setup.optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), device=self.device)
        for k, (batch, weight) in enumerate(batches):
            last = k == len(batches) - 1
            sync = setup.loss_module.no_sync() if not last and self.topology.distributed else nullcontext()
            with sync:
                with autocast(self.device, cfg.precision):
                    loss_sum = setup.loss_module(batch, cfg.label_smoothing, sampling)
                setup.scaler.scale(loss_sum * (weight * processes) / n_tgt_tokens).backward()
            total = total + loss_sum.detach().float() * weight
        setup.scaler.unscale_(setup.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(setup.model.parameters(), cfg.clip_grad or math.inf)
        if setup.scaler.is_enabled():  # fp16: the scaler skips a non-finite step itself, and lowers its scale
            setup.scaler.step(setup.optimizer)
            setup.scaler.update()
            return total, grad_norm
        # A non-finite gradient is never applied, decided on the device (skipped_steps.py): the norm is
        # the same on every process, so they all decide alike, and none waits for the step to finish.
        self.found_inf = (~torch.isfinite(grad_norm)).float()
        step_unless(setup.optimizer, self.found_inf)
        return total, grad_norm

    def shards(self, indices: np.ndarray) -> list[tuple[Batch, float]]:
        """This process's part of a global batch: `accumulate` batches, each with its loss weight.

        Shard j of the global batch is every (processes x accumulate)-th sentence from the j-th; this
        process takes shards rank, rank + processes, ... A global batch too small to give every shard a
        sentence gives the empty ones a copy of its first sentence with weight 0, so that every process
        still takes part in the gradient's all-reduce.
        """
        accumulate, processes = self.recipe.training.accumulate, self.topology.world_size
        parts = processes * accumulate
        mine = [indices[k * processes + self.topology.rank :: parts] for k in range(accumulate)]
        return [(self.train_batch(part if len(part) else indices[:1]), float(len(part) > 0)) for part in mine]

    def train_batch(self, indices: np.ndarray | list[int]) -> Batch:
        """The padded batch of the given training pairs, on the training device."""
        return self.setup.data.train.batch(indices).to(self.device, non_blocking=True)

    # Clock and limits -------------------------------------------------------------------------------
    def _start_clock(self, max_steps: int, max_minutes: float) -> None:
        """Start this session's clock and window, and say what trains where."""
        progress, processes, params = self.progress, self.topology.world_size, self.setup.params
        self.session_start = time.monotonic()
        self._status(
            "running",
            device=describe(self.device),
            step=progress.step,
            epoch=progress.epoch,
            params=params,
            processes=processes,
            global_batch=self.global_batch(),
            max_steps=max_steps,
            max_minutes=max_minutes,
            wall_at_start=round(progress.wall, 2),
        )
        where = describe(self.device)
        on = f"{processes} processes, each on {where}" if processes > 1 else where
        self._log(
            f"training on {on} in {self.setup.precision}: {params:,} parameters, "
            f"{len(self.setup.data.train):,} pairs, global batch {self.global_batch()}"
        )
        self._window_start = time.monotonic()

    def _wall(self) -> float:
        return self.wall_at_start + time.monotonic() - self.session_start

    def _time_up(self, max_minutes: float | None) -> bool:
        return bool(max_minutes) and time.monotonic() - self.session_start >= max_minutes * 60

    def _limit_reached(self, max_steps: int, max_minutes: float) -> str:
        progress, cfg = self.progress, self.recipe.training
        if max_steps and progress.step >= max_steps:
            return f"reached {max_steps} steps"
        if cfg.max_epochs and progress.epoch >= cfg.max_epochs:
            return f"reached {cfg.max_epochs} epochs"
        if max_minutes and self._time_up(max_minutes) and not self.topology.distributed:
            return f"reached the time limit ({max_minutes:g} min)"  # else rank 0's clock, via the controls
        return ""

    # Control messages -------------------------------------------------------------------------------
    def _act_on_controls(self, controls: Controls, max_minutes: float | None) -> str:
        """Act on what was asked since the last step; the end state where it ends the training."""
        for command in controls.agreed(self.stop_requested, self._time_up(max_minutes)):
            if command == "checkpoint":
                self._gather_window()
                self._save("last")
                self._log(f"checkpoint saved at step {self.progress.step} on request")
            elif command == "stop" or (command == "pause" and not self._pause(controls)):
                return self.stop(STOPPED_BY_USER)
            elif command == "signal":
                orphaned = self.topology.launched and launcher_died(within_s=2.0)
                return self.stop("stopped: its launcher died" if orphaned else "stopped by a signal")
            elif command == "time":
                return self._finish(f"reached the time limit ({max_minutes:g} min)")
        return ""

    def _pause(self, controls: Controls) -> bool:
        """Save, wait for "resume" (True) or a stop (False); time spent paused is not training time."""
        self._gather_window()
        self._save("last")  # so a paused run can be decoded from where it is
        self._status("paused", step=self.progress.step, epoch=self.progress.epoch)
        self._log(f"paused at step {self.progress.step}")
        paused_at = time.monotonic()
        if not controls.wait_while_paused(self.stop_requested):
            return False
        self.session_start += time.monotonic() - paused_at
        self._window_start = time.monotonic()
        self._status("running", step=self.progress.step, epoch=self.progress.epoch)
        self._log("resumed")
        return True

    def stop(self, reason: str) -> str:
        """Save `last` and record the stop; the end state "stopped"."""
        self._gather_window()
        self._save("last")
        self._status("stopped", reason=reason, step=self.progress.step, epoch=self.progress.epoch)
        self._log(f"{reason} at step {self.progress.step}")
        return "stopped"

    def _finish(self, reason: str) -> str:
        progress = self.progress
        self._gather_window()
        if not self.main:
            return "finished"
        if progress.last_valid_step != progress.step:
            self._validate()  # saves `last` too
        else:
            self._save("last")
        self.run.write_status("finished", reason=reason, step=progress.step, epoch=progress.epoch)
        metric = self.recipe.training.early_stopping_metric
        self.run.log(f"finished: {reason}; best {metric} {progress.best}")
        self.on_event("finished", {"reason": reason, "step": progress.step})
        return "finished"

    # The logging window -----------------------------------------------------------------------------
    def _add_to_window(self, loss_sum: torch.Tensor, tgt_tokens: int, src_tokens: int) -> None:
        """Add the last step to the logging window; a skipped step, to the skip counts instead."""
        progress = self.progress
        progress.window_tokens += tgt_tokens
        progress.window_src_tokens += src_tokens
        if self.setup.scaler.is_enabled():  # fp16: the scaler has skipped what it had to
            self._window_loss += loss_sum.detach()
            return
        self._window_loss += torch.where(self.found_inf > 0, 0.0, loss_sum.detach().double())
        self.skips.add(self.found_inf, progress.step, tgt_tokens, src_tokens)

    def _log_window(self, grad_norm: float) -> None:
        self._skip_nonfinite()
        progress = self.progress
        elapsed = max(time.monotonic() - self._window_start, 1e-9)
        loss = self.setup.team.sum(self._window_loss.clone()).item() / max(progress.window_tokens, 1)
        self._check_explosion(loss)
        record = {
            "kind": "train",
            "step": progress.step,
            "epoch": progress.epoch,
            "loss": round(loss, 5),
            "ppl": round(math.exp(min(loss, 50.0)), 3),
            "lr": self.optimizer.param_groups[0]["lr"],
            "grad_norm": round(grad_norm, 4),
            "tgt_tokens_per_s": round(progress.window_tokens / elapsed, 1),
            "src_tokens_per_s": round(progress.window_src_tokens / elapsed, 1),
            "wall": round(self._wall(), 2),
            **peak_memory(self.device),
        }
        if self.main:
            self.run.append_metrics(record)
            self.run.write_status("running", step=progress.step, epoch=progress.epoch)
            self.on_event("train", record)
        self._window_loss.zero_()
        progress.window_tokens, progress.window_src_tokens = 0, 0
        self._window_start = time.monotonic()

    def _gather_window(self) -> None:
        """The loss summed since the last log, from every process onto rank 0 (the others keep none), so
        that a checkpoint holds all of it. Every process calls it at the same step, before a save."""
        self._skip_nonfinite()  # a checkpoint holds the skips so far, and none past the recipe's limit
        if self.topology.distributed:
            total = self.setup.team.sum(self._window_loss.clone())
            self._window_loss.copy_(total if self.main else torch.zeros_like(total))

    # Divergence -------------------------------------------------------------------------------------
    def _skip_nonfinite(self) -> None:
        """Account for the batches skipped for a non-finite gradient since the last look (one read), and
        stop with a clear reason where more were skipped in a row than the recipe allows. The weights
        and every checkpoint stay as they were before such a batch. Every process reads at the same step
        and holds the same counts."""
        progress, limit, seen = self.progress, self.recipe.training.skip_nonfinite, self.skips.read()
        progress.nonfinite_in_a_row = seen.in_a_row
        if not seen.skipped:
            return
        progress.nonfinite_skipped += seen.skipped
        progress.window_tokens -= seen.tgt_tokens  # the loss of a skipped batch is not in the window's
        progress.window_src_tokens -= seen.src_tokens
        if seen.over_at:
            raise DivergedError(
                f"step {seen.over_at}: the loss or its gradient is not finite (NaN or inf), "
                f"{limit + 1} batch(es) in a row; {self._diverged_advice()}"
            )
        self._log(
            f"steps {seen.first}-{seen.last}: {seen.skipped} batch(es) skipped for a non-finite gradient, at "
            f"most {seen.most_in_a_row} in a row ({progress.nonfinite_skipped} in all, "
            f"training.skip_nonfinite = {limit})"
        )

    def _diverged_advice(self) -> str:
        step = self.saved_step
        saved = f"the checkpoints hold step {step}'s weights" if step else "no checkpoint"
        return (
            f"training stopped ({saved}): lower training.lr or clip gradients (training.clip_grad), in the "
            "run's recipe.toml to resume it, or for a new run"
        )

    def _explosion_bound(self) -> float:
        return EXPLODED_TIMES * math.log(self.setup.tokenizers.tgt.vocab_size)

    def _check_explosion(self, loss: float) -> None:
        """Count the logging steps in a row whose loss per target token is over the bound, and stop the run
        at EXPLODED_WINDOWS of them. Every process holds the same loss (summed over them), so all stop."""
        bound, vocab = self._explosion_bound(), self.setup.tokenizers.tgt.vocab_size
        self.exploded_in_a_row = self.exploded_in_a_row + 1 if loss > bound else 0
        if self.exploded_in_a_row >= EXPLODED_WINDOWS:
            raise DivergedError(
                f"step {self.progress.step}: the training loss has exploded, though finite: {loss:.3g} per "
                f"target token, over {bound:.3g} ({EXPLODED_TIMES} x ln {vocab}, the loss of guessing every "
                f"piece alike) at {EXPLODED_WINDOWS} logging steps in a row; {self._diverged_advice()}"
            )

    # Validation and checkpoints ---------------------------------------------------------------------
    def _validation_due(self, batches_in_epoch: int) -> bool:
        """Every valid_every steps; with valid_every = 0 at the end of every epoch (as Keras validates)."""
        progress, every = self.progress, self.recipe.training.valid_every
        return progress.step % every == 0 if every else progress.batch_in_epoch == batches_in_epoch

    def _scheduled_validation(self) -> bool:
        """Validate; feed the schedule and early stopping. True when training should stop."""
        # Only scheduled validations steer training, so that a run stopped and resumed at any step
        # follows the same curve as one that never stopped.
        # With several processes rank 0 validates alone and the others take its decisions.
        cfg, progress, schedule = self.recipe.training, self.progress, self.setup.schedule
        self._gather_window()
        if self.main:
            value = self._validate()[cfg.early_stopping_metric]
            if schedule.on_validation(value):
                self.run.log(f"learning rate decayed to {schedule.lr(progress.step + 1):.3g}")
            if progress.scheduled_best is None or better(
                value, progress.scheduled_best, cfg.early_stopping_metric
            ):
                progress.scheduled_best, progress.bad_validations = value, 0
            else:
                progress.bad_validations += 1
        decided = self.setup.team.share(
            {
                "schedule": schedule.state_dict(),
                "progress": {k: getattr(progress, k) for k in SHARED_PROGRESS},
            }
        )
        schedule.load_state_dict(decided["schedule"])
        for key, value in decided["progress"].items():
            setattr(progress, key, value)
        self._window_start = time.monotonic()
        return bool(cfg.early_stopping) and progress.bad_validations >= cfg.early_stopping

    def _validate(self) -> dict[str, Any]:
        """Score the valid set (`validation.evaluate`), write the metrics and samples, save `last` (and
        `best`, `averaged`)."""
        recipe, progress, setup = self.recipe, self.progress, self.setup
        start = time.monotonic()
        forced = self._valid_loss()
        pairs = setup.data.valid_pairs(recipe.decoding.valid_sentences)
        sources, references = [src for src, _ in pairs], [ref for _, ref in pairs]
        beam = recipe.decoding.valid_beam_size
        metrics = evaluate(setup.translator, sources, references, beam, recipe.data.tgt, forced).metrics()
        record = {
            "kind": "valid",
            "step": progress.step,
            "epoch": progress.epoch,
            "wall": round(self._wall(), 2),
            **metrics,
            "seconds": round(time.monotonic() - start, 2),
        }
        self.run.append_metrics(record)
        sampled = samples(setup.translator, pairs, recipe.decoding.probes, beam)
        self.run.append_samples({"step": progress.step, "samples": sampled})
        key, cfg = recipe.training.early_stopping_metric, recipe.training
        # Weights whose loss has exploded are no one's best, and are kept out of every checkpoint (_save).
        held = self.exploded_in_a_row > 0
        improved = not held and (progress.best is None or better(metrics[key], progress.best, key))
        if improved:
            progress.best, progress.best_step = metrics[key], progress.step
        progress.last_valid_step, progress.valid = progress.step, metrics
        progress.schedule = setup.schedule.state_dict()
        self._save("last")
        if improved:
            self._save("best", with_optimizer=False)
        if cfg.average_checkpoints >= 2 and not held:
            self._save(step_tag(progress.step), with_optimizer=False)
            average_last(self.run.checkpoints_dir, progress.step, cfg.average_checkpoints)
        self.run.log(f"valid step {progress.step}: " + ", ".join(f"{k} {v}" for k, v in metrics.items()))
        self.on_event("valid", record)
        return metrics

    def _valid_loss(self) -> tuple[float, float]:
        """The valid set's loss per target token and its token accuracy, in one teacher-forced pass."""
        cfg = self.recipe.training
        return teacher_forced(
            self.model, self.setup.data.valid, cfg.batch_size, cfg.batch_unit, cfg.precision
        )

    def _save(self, tag: str, with_optimizer: bool = True) -> None:
        if not self.main:
            return
        progress = self.progress
        if self.exploded_in_a_row:  # resuming from such weights is hopeless: keep the ones from before
            self.run.log(
                f"step {progress.step}: not saved as {tag!r}: the training loss is over "
                f"{self._explosion_bound():.3g}, exploded ({self.exploded_in_a_row} logging step(s) in a row)"
            )
            return
        if not all(bool(torch.isfinite(w).all()) for w in self.model.parameters()):
            raise DivergedError(f"step {progress.step}: the weights are not finite; not saved as {tag!r}")
        progress.wall = self._wall()
        progress.window_loss = self._window_loss.item()
        progress.schedule = self.setup.schedule.state_dict()
        state = {"progress": progress.__dict__.copy(), "step": progress.step, "valid": progress.valid}
        optimizer = self.optimizer if with_optimizer else None
        save_checkpoint(self.run.checkpoints_dir, tag, self.model, optimizer, state, self.device)
        self.saved_step = progress.step


def better(value: float, best: float, metric: str) -> bool:
    """Whether `value` of `metric` beats `best` (a lower loss, a higher score)."""
    return value < best if metric == "loss" else value > best
