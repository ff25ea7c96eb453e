"""Training: turns a run folder's recipe into checkpoints, metrics and samples in that folder."""

from __future__ import annotations

import math
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import load_checkpoint, save_average, save_checkpoint
from .checkpoint import recover as recover_checkpoints
from .data.batching import Batch, batch_indices
from .data.cache import CorpusCache, cache_folder
from .data.prepare import PreparedCorpus, prepare
from .data.progress import ProgressLine
from .devices import (
    autocast,
    autocast_dtype,
    cpu_threads,
    describe,
    fast_bf16_cpu,
    resolve_device,
    usable_cpus,
)
from .distributed import (
    PeerError,
    Team,
    follow_launcher,
    is_peer_failure,
    launcher_died,
    local_gpu,
    peer_error,
    record_failure,
    topology_from_environment,
)
from .errors import UserError, disk_error, error_message
from .evaluation import score, teacher_forced
from .model import Seq2Seq, build_model
from .peak_memory import peak_memory
from .recipe import Recipe, RecipeError
from .run_folder import STOPPED_BY_USER, RunFolder
from .schedules import LearningRateSchedule, teacher_forcing_ratio
from .skipped_steps import SkippedSteps, step_unless
from .tokenizers import TokenizerPair, load_tokenizers
from .translator import Translator
from .vectors import load_vectors

SAMPLES_PER_VALIDATION = 3
RESERVE, RESERVE_BYTES = ".reserve", 64 * 1024  # freed on a full disk, for the status and the log
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


@dataclass
class Progress:
    """Everything a resumed run needs to continue exactly where it stopped."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    wall: float = 0.0  # training seconds, pauses excluded, across resumes
    best: float | None = None  # over every validation: picks the best checkpoint
    best_step: int = 0
    scheduled_best: float | None = None  # over scheduled validations only: drives early stopping
    bad_validations: int = 0
    last_valid_step: int = -1
    window_loss: float = 0.0
    window_tokens: int = 0
    window_src_tokens: int = 0
    schedule: dict[str, Any] = field(default_factory=dict)
    valid: dict[str, Any] = field(default_factory=dict)
    processes: int = 1  # the processes that trained it: the global batch, so the data order, depends on it
    # How batches are drawn: 2 plans them from the token store's length arrays (numpy's generator); runs
    # saved without the field drew them with Python's `random` from lists of sentences.
    batcher: int = 2
    nonfinite_in_a_row: int = 0  # batches skipped for a non-finite gradient, lately and in all
    nonfinite_skipped: int = 0


class DivergedError(UserError):
    """Training produced a loss or gradient that is not finite: the weights would be lost to NaN."""


class TrainingLoss(torch.nn.Module):
    """The model's summed training loss as a module's forward, so that DistributedDataParallel can wrap it."""

    def __init__(self, model: Seq2Seq):
        super().__init__()
        self.model = model

    def forward(self, batch: Batch, label_smoothing: float, sampling: float) -> torch.Tensor:
        return self.model.loss(
            batch.src, batch.src_lengths, batch.tgt_in, batch.tgt_out, label_smoothing, sampling
        )


class Trainer:
    """Trains the model of one run folder; `train()` returns the final state (finished, stopped...)."""

    def __init__(
        self, run: RunFolder, device: str = "auto", on_event: Event | None = None, threads: int | None = None
    ):
        self.run = run
        self.recipe: Recipe = run.recipe()
        self.threads = (
            threads or self.recipe.training.threads
        )  # a sweep's share of the cores, else the recipe's
        self.topology = topology_from_environment()
        self.main = self.topology.main  # rank 0 alone writes the run folder
        self.device = resolve_device(device)
        if self.device.type == "cuda":
            if self.topology.distributed:  # one GPU per process
                index = local_gpu(self.topology, torch.cuda.device_count())
            else:
                index = torch.cuda.current_device() if self.device.index is None else self.device.index
            self.device = torch.device("cuda", index)
            torch.cuda.set_device(self.device)  # what torch allocates without a device goes there too
            if self.threads:  # the CPU side of a GPU run (its batches): a sweep's share of the cores
                torch.set_num_threads(self.threads)
        self.on_event = on_event or (lambda kind, record: None)
        self._stop_requested = False
        self._pending: deque[str] = deque()  # control commands read, not yet acted on
        self.found_inf: torch.Tensor | None = None  # the last step's: 1. if its gradient was not finite
        self.skips: SkippedSteps | None = None  # made with the first step's flag, on its device
        self.saved_step = 0
        # Logging steps in a row whose loss was over the explosion bound. Never in a checkpoint: none is
        # saved while it is above 0, so a resumed run starts from 0.
        self.exploded_in_a_row = 0

    def _log(self, message: str) -> None:
        if self.main:
            self.run.log(message)

    def _status(self, state: str, **fields: Any) -> None:
        if self.main:
            self.run.write_status(state, **fields)

    # Set-up -------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Load data, tokenizers (trained on first use), model, optimizer and the last checkpoint."""
        r, topology = self.recipe, self.topology
        self.team = Team(topology, self.device, r.training.collective_timeout)
        if self.device.type == "cpu":
            threads = self.threads
            if topology.distributed and not threads:  # the process's cores, divided between its peers
                threads = max(1, len(usable_cpus()) // topology.local_world_size)
            torch.set_num_threads(cpu_threads(threads))
        torch.manual_seed(r.seed)
        self.data: PreparedCorpus = self._prepare_data()
        self.tokenizers: TokenizerPair = load_tokenizers(self.run.tokenizer_dir)
        self._status("running", reason="preparing the model", preparing=None)
        self.model: Seq2Seq = build_model(
            r.model, self.tokenizers.src.vocab_size, self.tokenizers.tgt.vocab_size
        )
        self._load_vectors()
        self.model.to(self.device)
        self.optimizer = _optimizer(self.model, r)
        dtype = autocast_dtype(self.device, r.training.precision)
        self.precision = {torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast"}.get(dtype, "fp32")
        if dtype is None and r.training.precision == "fp16":
            self._log("training.precision = fp16 is CUDA autocast; on the CPU: fp32 (bf16 is the CPU's)")
        if r.training.precision == "bf16" and self.device.type == "cpu" and not fast_bf16_cpu():
            self._log(
                "training.precision = bf16: this CPU has no bf16 instructions (AMX, AVX-512 BF16), so it "
                "trains in fp32 (emulated bf16 is slower, and has no LSTM kernel)"
            )
        # fp16 gradients underflow without loss scaling; bf16 and fp32 need none.
        self.scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
        higher = r.training.early_stopping_metric != "loss"
        self.schedule = LearningRateSchedule(r.training, higher_is_better=higher)
        self.progress = Progress(processes=topology.world_size)
        if self.main:  # a save that a crash interrupted: finished if it was committed, else dropped
            for tag in recover_checkpoints(self.run.checkpoints_dir):
                self._log(f"checkpoint {tag!r}: finished the save that a crash interrupted")
        self.team.wait_for_all()
        if self.run.has_checkpoint("last"):
            state = load_checkpoint(
                self.run.checkpoints_dir, "last", self.model, self.optimizer, self.device
            )
            self.progress = Progress(**{"batcher": 1, **state["progress"]})
            self.schedule.load_state_dict(self.progress.schedule)
            self._rescale_epoch_position()
            self.saved_step = self.progress.step
        if self.main:
            self.run.forget_after(self.progress.step)
            if removed := self.run.remove_temporaries():
                self._log(f"removed {removed} temporary file(s) left by a write that a crash cut short")
        self.translator = Translator(self.model, self.tokenizers, r.decoding, self.device)
        self.params = sum(p.numel() for p in self.model.parameters())
        self.loss_module: torch.nn.Module = TrainingLoss(self.model)
        if topology.distributed:
            self.loss_module = torch.nn.parallel.DistributedDataParallel(
                self.loss_module,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
            )

    def _rescale_epoch_position(self) -> None:
        """A run resumed on another number of processes, or saved when batches were drawn another way, has
        other batches: keep its place in the epoch as a fraction, and say that the data order changed."""
        p, processes = self.progress, self.topology.world_size
        if p.processes == processes and p.batcher == Progress.batcher:
            return
        if p.batcher != Progress.batcher:
            self._log(
                f"resumed with batches planned from the token store: the data order from step {p.step} on "
                "differs from the run's so far"
            )
        if p.processes != processes:
            self._log(
                f"resumed on {processes} process(es) after {p.processes}: the global batch is now "
                f"{self.global_batch()}, so the data order from step {p.step} on differs from the run's so "
                "far"
            )
        before, after = len(self.epoch_order(p.epoch, p.processes)), len(self.epoch_order(p.epoch))
        p.batch_in_epoch = min(after, round(p.batch_in_epoch * after / max(before, 1)))
        p.processes, p.batcher = processes, Progress.batcher

    def global_batch(self) -> str:
        t = self.recipe.training
        return f"{t.batch_size * t.accumulate * self.topology.world_size} {t.batch_unit}"

    def _prepare_data(self) -> PreparedCorpus:
        """The corpus from the corpus cache beside the runs (prepared there now if it is not), and the
        run's tokenizer: its own if it has one, else the one prepared with the corpus."""
        has_tokenizer = (self.run.tokenizer_dir / "tokenizer.json").is_file()
        cache = CorpusCache(cache_folder(self.run.path.parent))
        clock = ProgressLine()

        def report(phase: str, done: int, total: int | None, fraction: float | None) -> None:
            if clock.due(phase):
                line = clock.line(phase, done, total, fraction)
                self._status(
                    "running",
                    reason=f"preparing data: {line}",
                    preparing={"phase": phase, "done": done, "total": total, "fraction": fraction},
                )

        workers = self.threads or len(usable_cpus())
        own = self.run.tokenizer_dir if has_tokenizer else None
        data = prepare(self.recipe, cache, own, report=report, workers=workers)
        if self.main:
            if not has_tokenizer:
                self.run.adopt_tokenizer(data.tokenizer_dir)
            self.run.record_corpus(data.key, cache.folder, data.manifest["label"])
            for note in data.notes:  # how the tokenizer was made only where the run took it
                if not has_tokenizer or note.startswith("data:"):
                    self.run.log(note)
            self.run.log(f"data: corpus {data.key} of the corpus cache {cache.folder}")
        self.team.wait_for_all()  # the others read the tokenizer rank 0 copied (the runs folder is shared)
        return data

    def _load_vectors(self) -> None:
        m = self.recipe.model
        matrices = {}
        for side, path, tok in (
            ("src", m.src_vectors, self.tokenizers.src),
            ("tgt", m.tgt_vectors, self.tokenizers.tgt),
        ):
            if path:
                pieces = tok.pieces(list(range(tok.vocab_size)))
                try:
                    matrices[side], found = load_vectors(Path(path), pieces, m.embedding_size)
                except (OSError, ValueError) as exc:
                    raise RecipeError(f"model.{side}_vectors: {exc}") from None
                self.run.log(f"vectors: {found} of {tok.vocab_size} {side} pieces found in {path}")
        if matrices:
            self.model.load_pretrained(matrices.get("src"), matrices.get("tgt"), m.freeze_vectors)

    # The loop -----------------------------------------------------------------------------------
    def train(self, max_steps: int | None = None, max_minutes: float | None = None) -> str:
        """Train until a limit, early stopping or a stop message; the run folder records everything."""
        # SIGTERM and SIGHUP (a closed SSH session) stop cleanly with a checkpoint; only the main thread
        # may install handlers, so a trainer run from another thread relies on the control channel.
        # Several processes stop together: Ctrl-C, too, only asks, and every process agrees on the step.
        in_main = threading.current_thread() is threading.main_thread()
        signals = (signal.SIGTERM, signal.SIGHUP) if in_main else ()
        if in_main and self.topology.distributed:
            signals += (signal.SIGINT,)
        lock = self._claim() if self.main else None  # one trainer per run; readers tell a live run by it
        previous: dict[int, Any] = {}
        # From here on every failure, a full disk at the first write included, is said in one line and
        # recorded in the run folder, which stays resumable.
        try:
            if self.main:
                _reserve(self.run.path / RESERVE)
            previous = {s: signal.signal(s, self._request_stop) for s in signals}
            if in_main and self.topology.launched:
                follow_launcher(lambda: self._request_stop(signal.SIGTERM, None))
            self._status(
                "running",
                device=str(self.device),
                torch_device=str(self.device),
                reason="preparing data and model",
            )
            self.prepare()
            ended = self._loop(max_steps, max_minutes)
            # Every process leaves together: one that tore down its connections while rank 0 still
            # saved could abort at exit (gloo), and torchrun would then fail the finished run.
            self.team.wait_for_all()
            return ended
        except KeyboardInterrupt:
            if not hasattr(self, "_window_loss"):  # interrupted before the first step: nothing to keep
                self._status("stopped", reason="interrupted while preparing")
                return "stopped"
            return self._stop("interrupted")
        except Exception as exc:
            peer = self.topology.distributed and is_peer_failure(exc)
            if peer and not isinstance(exc, PeerError):  # raised by torch's own collectives (DDP's)
                exc = peer_error(exc, self.recipe.training.collective_timeout)
            disk = disk_error(exc, self.run.path)
            message = error_message(disk or exc)
            if self.topology.distributed:
                message = f"rank {self.topology.rank}: {message}"
                record_failure(message, peer=peer)
            if disk is not None and self.main:
                (self.run.path / RESERVE).unlink(missing_ok=True)  # room to say why in the run folder
            self._record_failure(message)
            if peer or disk:
                raise (disk or exc) from None  # one line: not this process's bug, and no traceback
            raise
        finally:
            if hasattr(self, "team"):
                vars(self).pop("loss_module", None)  # a DistributedDataParallel holds the process group
                self.team.close()
            if lock is not None:
                lock.close()
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _claim(self) -> Any:
        """The run's lock; a disk that refuses even its empty file (read-only, out of inodes) is one line."""
        try:
            return self.run.lock()
        except OSError as exc:
            disk = disk_error(exc, self.run.path)
            if disk is None:
                raise
            raise disk from None

    def _record_failure(self, message: str) -> None:
        """Write why the run failed into train.log and status.json. A write the disk refuses gives back the
        reserve and is tried once more: an error that hides a full disk (the corpus cache's) still leaves
        its reason. Where even that fails the message reaches the terminal all the same."""
        if not self.main:
            return
        writes = (
            lambda: self.run.log(f"failed: {message}"),
            lambda: self.run.write_status("failed", reason=message),
        )
        for write in writes:
            try:
                write()
            except OSError:
                (self.run.path / RESERVE).unlink(missing_ok=True)
                try:
                    write()
                except OSError:
                    pass

    def _request_stop(self, signum: int, frame: Any) -> None:
        self._stop_requested = True

    def _loop(self, max_steps: int | None, max_minutes: float | None) -> str:
        t, p = self.recipe.training, self.progress
        max_steps = max_steps if max_steps is not None else t.max_steps
        max_minutes = max_minutes if max_minutes is not None else t.max_minutes
        self.session_start = time.monotonic()
        self.wall_at_start = p.wall
        n = self.topology.world_size
        self._status(
            "running",
            device=describe(self.device),
            step=p.step,
            epoch=p.epoch,
            params=self.params,
            processes=n,
            global_batch=self.global_batch(),
            max_steps=max_steps,
            max_minutes=max_minutes,
            wall_at_start=round(p.wall, 2),
        )
        on = f"{n} processes, each on {describe(self.device)}" if n > 1 else describe(self.device)
        self._log(
            f"training on {on} in {self.precision}: {self.params:,} parameters, "
            f"{len(self.data.train):,} pairs, global batch {self.global_batch()}"
        )
        self._window_start = time.monotonic()
        # Summed on the device so that the step needs no host sync; read at log time.
        # (A checkpoint holds the whole window's loss, gathered on rank 0: the others start from none.)
        window = p.window_loss if self.main else 0.0
        self._window_loss = torch.tensor(window, dtype=torch.float64, device=self.device)
        while True:
            reason = self._limit_reached(max_steps, max_minutes)
            if reason:
                return self._finish(reason)
            order = self.epoch_order(p.epoch)
            while p.batch_in_epoch < len(order):
                command = self._handle_controls(max_minutes)
                if command == "stop":
                    return self._stop(STOPPED_BY_USER)
                if command == "signal":
                    orphaned = self.topology.launched and launcher_died(within_s=2.0)
                    return self._stop("stopped: its launcher died" if orphaned else "stopped by a signal")
                if command == "time":
                    return self._finish(f"reached the time limit ({max_minutes:g} min)")
                indices = order[p.batch_in_epoch]
                p.step += 1
                p.batch_in_epoch += 1
                loss_sum, grad_norm = self.train_step(self.shards(indices), self._tokens(indices, "tgt"))
                self._add_to_window(loss_sum, self._tokens(indices, "tgt"), self._tokens(indices, "src"))
                if p.step % t.log_every == 0:
                    self._log_window(grad_norm.item())
                # valid_every = 0: at the end of every epoch (as Keras validates).
                if (p.step % t.valid_every == 0) if t.valid_every else p.batch_in_epoch == len(order):
                    if self._scheduled_validation():
                        return self._finish(
                            f"early stopping: no improvement in {t.early_stopping} validations"
                        )
                    self._window_start = time.monotonic()
                reason = self._limit_reached(max_steps, max_minutes)
                if reason:
                    return self._finish(reason)
            p.epoch += 1
            p.batch_in_epoch = 0

    def epoch_order(self, epoch: int, processes: int | None = None) -> list[np.ndarray]:
        """The global batches of one epoch, as lists of training-pair indices (seeded: resumable).

        A global batch holds batch_size x processes x accumulate sentences (or tokens), bucketed by length
        as one batch would be, so N processes of B sentences take the same steps as one process of N x B.
        """
        t = self.recipe.training
        processes = processes or self.topology.world_size
        train = self.data.train
        return batch_indices(
            train.lengths["src"],
            train.lengths["tgt"] + 1,
            t.batch_size * processes * t.accumulate,
            t.batch_unit,
            seed=self.recipe.seed * 100_003 + epoch,
        )

    def shards(self, indices: np.ndarray) -> list[tuple[Batch, float]]:
        """This process's part of a global batch: `accumulate` batches, each with its loss weight.

        Shard j of the global batch is every (processes x accumulate)-th sentence from the j-th; this
        process takes shards rank, rank + processes, ... A global batch too small to give every shard a
        sentence gives the empty ones a copy of its first sentence with weight 0, so that every process
        still takes part in the gradient's all-reduce.
        """
        t, n = self.recipe.training, self.topology.world_size
        parts = n * t.accumulate
        mine = [indices[k * n + self.topology.rank :: parts] for k in range(t.accumulate)]
        return [(self.train_batch(part if len(part) else indices[:1]), float(len(part) > 0)) for part in mine]

    def _tokens(self, indices: np.ndarray, side: str) -> int:
        """Non-pad tokens of a global batch (targets with their EOS), as every process can count them."""
        return self.data.train.tokens(side, indices)

    def train_batch(self, indices: np.ndarray | list[int]) -> Batch:
        """The padded batch of the given training pairs, on the training device."""
        return self.data.train.batch(indices).to(self.device, non_blocking=True)

    def train_step(
        self, batches: Batch | list[tuple[Batch, float]], n_tgt_tokens: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step on a batch, or on this process's weighted shards of a global batch of
        `n_tgt_tokens` target tokens; returns the summed token loss and the gradient norm (on device).

        The loss is normalised by the global batch's tokens, so the summed gradient is the same whether
        the batch was taken whole, accumulated in parts, or split across processes (DDP averages the
        processes' gradients, hence the factor of their number).
        """
        t, p = self.recipe.training, self.progress
        if isinstance(batches, Batch):
            batches, n_tgt_tokens = [(batches, 1.0)], batches.n_tgt_tokens
        for group in self.optimizer.param_groups:
            group["lr"] = self.schedule.lr(p.step)
        if self.topology.distributed:  # each process its own dropout masks, the same on a resume
            torch.manual_seed((self.recipe.seed * 1_000_003 + p.step) * 1_009 + self.topology.rank)
        sampling = 1.0 - teacher_forcing_ratio(t, p.step)
        self.optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), device=self.device)
        for k, (batch, weight) in enumerate(batches):
            last = k == len(batches) - 1
            sync = self.loss_module.no_sync() if not last and self.topology.distributed else nullcontext()
            with sync:
                with autocast(self.device, t.precision):
                    loss_sum = self.loss_module(batch, t.label_smoothing, sampling)
                self.scaler.scale(loss_sum * (weight * self.topology.world_size) / n_tgt_tokens).backward()
            total = total + loss_sum.detach().float() * weight
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.clip_grad or math.inf)
        if self.scaler.is_enabled():  # fp16: the scaler skips a non-finite step itself, and lowers its scale
            self.found_inf = None
            self.scaler.step(self.optimizer)
            self.scaler.update()
            return total, grad_norm
        # A non-finite gradient is never applied, decided on the device (skipped_steps.py): the norm is
        # the same on every process, so they all decide alike, and none waits for the step to finish.
        self.found_inf = (~torch.isfinite(grad_norm)).float()
        step_unless(self.optimizer, self.found_inf)
        return total, grad_norm

    def _add_to_window(self, loss_sum: torch.Tensor, tgt_tokens: int, src_tokens: int) -> None:
        """Add the last step to the logging window; a skipped step, to the skip counts instead."""
        p = self.progress
        p.window_tokens += tgt_tokens
        p.window_src_tokens += src_tokens
        if self.found_inf is None:
            self._window_loss += loss_sum.detach()
            return
        if self.skips is None:
            self.skips = SkippedSteps(self.device, self.recipe.training.skip_nonfinite, p.nonfinite_in_a_row)
        self._window_loss += torch.where(self.found_inf > 0, 0.0, loss_sum.detach().double())
        self.skips.add(self.found_inf, p.step, tgt_tokens, src_tokens)

    def _skip_nonfinite(self) -> None:
        """Account for the batches skipped for a non-finite gradient since the last look (one read), and
        stop with a clear reason where more were skipped in a row than the recipe allows. The weights
        and every checkpoint stay as they were before such a batch. Every process reads at the same step
        and holds the same counts."""
        if self.skips is None:
            return
        p, t, seen = self.progress, self.recipe.training, self.skips.read()
        p.nonfinite_in_a_row = seen.in_a_row
        if not seen.skipped:
            return
        p.nonfinite_skipped += seen.skipped
        p.window_tokens -= seen.tgt_tokens  # the loss of a skipped batch is not in the window's
        p.window_src_tokens -= seen.src_tokens
        if seen.over_at:
            raise DivergedError(
                f"step {seen.over_at}: the loss or its gradient is not finite (NaN or inf), "
                f"{t.skip_nonfinite + 1} batch(es) in a row; {self._diverged_advice()}"
            )
        self._log(
            f"steps {seen.first}-{seen.last}: {seen.skipped} batch(es) skipped for a non-finite gradient, at "
            f"most {seen.most_in_a_row} in a row ({p.nonfinite_skipped} in all, "
            f"training.skip_nonfinite = {t.skip_nonfinite})"
        )

    def _diverged_advice(self) -> str:
        step = self.saved_step
        saved = f"the checkpoints hold step {step}'s weights" if step else "no checkpoint"
        return (
            f"training stopped ({saved}): lower training.lr or clip gradients (training.clip_grad), in the "
            "run's recipe.toml to resume it, or for a new run"
        )

    def _explosion_bound(self) -> float:
        return EXPLODED_TIMES * math.log(self.tokenizers.tgt.vocab_size)

    def _check_explosion(self, loss: float) -> None:
        """Count the logging steps in a row whose loss per target token is over the bound, and stop the run
        at EXPLODED_WINDOWS of them. Every process holds the same loss (summed over them), so all stop."""
        bound = self._explosion_bound()
        self.exploded_in_a_row = self.exploded_in_a_row + 1 if loss > bound else 0
        if self.exploded_in_a_row >= EXPLODED_WINDOWS:
            raise DivergedError(
                f"step {self.progress.step}: the training loss has exploded, though finite: {loss:.3g} per "
                f"target token, over {bound:.3g} ({EXPLODED_TIMES} x ln {self.tokenizers.tgt.vocab_size}, "
                f"the loss of guessing every piece alike) at {EXPLODED_WINDOWS} logging steps in a row; "
                f"{self._diverged_advice()}"
            )

    def _log_window(self, grad_norm: float) -> None:
        self._skip_nonfinite()
        p = self.progress
        elapsed = max(time.monotonic() - self._window_start, 1e-9)
        loss = self.team.sum(self._window_loss.clone()).item() / max(p.window_tokens, 1)
        self._check_explosion(loss)
        record = {
            "kind": "train",
            "step": p.step,
            "epoch": p.epoch,
            "loss": round(loss, 5),
            "ppl": round(math.exp(min(loss, 50.0)), 3),
            "lr": self.optimizer.param_groups[0]["lr"],
            "grad_norm": round(grad_norm, 4),
            "tgt_tokens_per_s": round(p.window_tokens / elapsed, 1),
            "src_tokens_per_s": round(p.window_src_tokens / elapsed, 1),
            "wall": round(self._wall(), 2),
            **peak_memory(self.device),
        }
        if self.main:
            self.run.append_metrics(record)
            self.run.write_status("running", step=p.step, epoch=p.epoch)
            self.on_event("train", record)
        self._window_loss.zero_()
        p.window_tokens, p.window_src_tokens = 0, 0
        self._window_start = time.monotonic()

    def _wall(self) -> float:
        return self.wall_at_start + time.monotonic() - self.session_start

    def _limit_reached(self, max_steps: int, max_minutes: float) -> str:
        p, t = self.progress, self.recipe.training
        if max_steps and p.step >= max_steps:
            return f"reached {max_steps} steps"
        if t.max_epochs and p.epoch >= t.max_epochs:
            return f"reached {t.max_epochs} epochs"
        if max_minutes and self._time_up(max_minutes) and not self.topology.distributed:
            return f"reached the time limit ({max_minutes:g} min)"  # else rank 0's clock, via the controls
        return ""

    def _time_up(self, max_minutes: float | None) -> bool:
        return bool(max_minutes) and time.monotonic() - self.session_start >= max_minutes * 60

    # Control channel ----------------------------------------------------------------------------
    def _handle_controls(self, max_minutes: float | None = None) -> str:
        """Act on what was asked since the last step: "stop", "signal" or "time" end the training.

        Rank 0 reads the control folder and the clock; with several processes one command a step is
        shared with the others, together with any process's stop signal (`Team.agree`).
        """
        if self.main:
            self._pending.extend(self.run.take_controls())
        while True:
            command = self._pending.popleft() if self._pending else ""
            signalled, command, time_up = self.team.agree(
                self._stop_requested, command, self.main and self._time_up(max_minutes)
            )
            if signalled:
                return "signal"
            if time_up and self.topology.distributed:
                return "time"
            if command == "checkpoint":
                self._gather_window()
                self._save("last")
                self._log(f"checkpoint saved at step {self.progress.step} on request")
            elif command == "stop":
                return "stop"
            elif command == "pause":
                if self._pause() == "stop":
                    return "stop"
            if not self._pending or self.topology.distributed:
                return ""

    def _pause(self) -> str:
        self._gather_window()
        self._save("last")  # so a paused run can be decoded from where it is
        self._status("paused", step=self.progress.step, epoch=self.progress.epoch)
        self._log(f"paused at step {self.progress.step}")
        paused_at = time.monotonic()
        while True:
            commands = self.run.take_controls() if self.main else []
            command = "stop" if "stop" in commands else "resume" if "resume" in commands else ""
            signalled, command, _ = self.team.agree(self._stop_requested, command)
            if signalled or command == "stop":
                return "stop"
            if command == "resume":
                break
            time.sleep(0.2)
        # time spent paused is not training time
        self.session_start += time.monotonic() - paused_at
        self._window_start = time.monotonic()
        self._status("running", step=self.progress.step, epoch=self.progress.epoch)
        self._log("resumed")
        return ""

    def _gather_window(self) -> None:
        """The loss summed since the last log, from every process onto rank 0 (the others keep none), so
        that a checkpoint holds all of it. Every process calls it at the same step, before a save."""
        self._skip_nonfinite()  # a checkpoint holds the skips so far, and none past the recipe's limit
        if self.topology.distributed:
            total = self.team.sum(self._window_loss.clone())
            self._window_loss.copy_(total if self.main else torch.zeros_like(total))

    def _stop(self, reason: str) -> str:
        self._gather_window()
        self._save("last")
        self._status("stopped", reason=reason, step=self.progress.step, epoch=self.progress.epoch)
        self._log(f"{reason} at step {self.progress.step}")
        return "stopped"

    def _finish(self, reason: str) -> str:
        p = self.progress
        self._gather_window()
        if not self.main:
            return "finished"
        if p.last_valid_step != p.step:
            self._validate()  # saves `last` too
        else:
            self._save("last")
        self.run.write_status("finished", reason=reason, step=p.step, epoch=p.epoch)
        self.run.log(f"finished: {reason}; best {self.recipe.training.early_stopping_metric} {p.best}")
        self.on_event("finished", {"reason": reason, "step": p.step})
        return "finished"

    # Validation and checkpoints -----------------------------------------------------------------
    def _scheduled_validation(self) -> bool:
        """Validate; feed the schedule and early stopping. True when training should stop."""
        # Only scheduled validations steer training, so that a run stopped and resumed at any step
        # follows the same curve as one that never stopped.
        # With several processes rank 0 validates alone and the others take its decisions.
        t, p = self.recipe.training, self.progress
        self._gather_window()
        if self.main:
            value = self._validate()[t.early_stopping_metric]
            if self.schedule.on_validation(value):
                self.run.log(f"learning rate decayed to {self.schedule.lr(p.step + 1):.3g}")
            if p.scheduled_best is None or _better(value, p.scheduled_best, t.early_stopping_metric):
                p.scheduled_best, p.bad_validations = value, 0
            else:
                p.bad_validations += 1
        decided = self.team.share(
            {"schedule": self.schedule.state_dict(), "progress": {k: getattr(p, k) for k in SHARED_PROGRESS}}
        )
        self.schedule.load_state_dict(decided["schedule"])
        for key, value in decided["progress"].items():
            setattr(p, key, value)
        return bool(t.early_stopping) and p.bad_validations >= t.early_stopping

    def _validate(self) -> dict[str, Any]:
        r, p = self.recipe, self.progress
        start = time.monotonic()
        loss, accuracy = self._valid_loss()
        pairs = self.data.valid_pairs(r.decoding.valid_sentences)
        hyps = [
            t[0].text for t in self.translator.translate([s for s, _ in pairs], r.decoding.valid_beam_size)
        ]
        scores = score(hyps, [ref for _, ref in pairs], language=r.data.tgt)
        metrics = {
            "loss": round(loss, 5),
            "ppl": round(math.exp(min(loss, 50.0)), 3),
            "accuracy": round(accuracy, 4),
            **scores.as_dict(),
        }
        record = {
            "kind": "valid",
            "step": p.step,
            "epoch": p.epoch,
            "wall": round(self._wall(), 2),
            **metrics,
            "seconds": round(time.monotonic() - start, 2),
        }
        self.run.append_metrics(record)
        self._write_samples(pairs)
        key = r.training.early_stopping_metric
        # Weights whose loss has exploded are no one's best, and are kept out of every checkpoint (_save).
        held = self.exploded_in_a_row > 0
        improved = not held and (p.best is None or _better(metrics[key], p.best, key))
        if improved:
            p.best, p.best_step = metrics[key], p.step
        p.last_valid_step, p.valid = p.step, metrics
        p.schedule = self.schedule.state_dict()
        self._save("last")
        if improved:
            self._save("best", with_optimizer=False)
        if r.training.average_checkpoints >= 2 and not held:
            self._save_average(r.training.average_checkpoints)
        self.run.log(f"valid step {p.step}: " + ", ".join(f"{k} {v}" for k, v in metrics.items()))
        self.on_event("valid", record)
        return metrics

    def _valid_loss(self) -> tuple[float, float]:
        """The valid set's loss per target token and its token accuracy, in one teacher-forced pass."""
        t = self.recipe.training
        return teacher_forced(self.model, self.data.valid, t.batch_size, t.batch_unit, t.precision)

    def _write_samples(self, pairs: list[tuple[str, str]]) -> None:
        r = self.recipe
        chosen = [(s, ref) for s, ref in pairs[:SAMPLES_PER_VALIDATION]] + [
            (s, None) for s in r.decoding.probes
        ]
        translations = self.translator.translate(
            [s for s, _ in chosen], r.decoding.valid_beam_size, attention=True
        )
        samples = []
        for (src, ref), (best, *_) in zip(chosen, translations):
            samples.append(
                {
                    "src": src,
                    "ref": ref,
                    "hyp": best.text,
                    "src_pieces": best.src_pieces,
                    "hyp_pieces": best.tgt_pieces,
                    "attention": [[round(w, 4) for w in row] for row in best.attention or []],
                }
            )
        self.run.append_samples({"step": self.progress.step, "samples": samples})

    def _save(self, tag: str, with_optimizer: bool = True) -> None:
        if not self.main:
            return
        if self.exploded_in_a_row:  # resuming from such weights is hopeless: keep the ones from before
            self.run.log(
                f"step {self.progress.step}: not saved as {tag!r}: the training loss is over "
                f"{self._explosion_bound():.3g}, exploded ({self.exploded_in_a_row} logging step(s) in a row)"
            )
            return
        if not all(bool(torch.isfinite(w).all()) for w in self.model.parameters()):
            raise DivergedError(
                f"step {self.progress.step}: the weights are not finite; not saved as {tag!r}"
            )
        p = self.progress
        p.wall = self._wall()
        p.window_loss = self._window_loss.item()
        p.schedule = self.schedule.state_dict()
        state = {"progress": p.__dict__.copy(), "step": p.step, "valid": p.valid}
        optimizer = self.optimizer if with_optimizer else None
        save_checkpoint(self.run.checkpoints_dir, tag, self.model, optimizer, state, self.device)
        self.saved_step = p.step

    def _save_average(self, n: int) -> None:
        """Keep the weights of the last n validations as `step-N` and write their mean as `averaged`."""
        p, folder = self.progress, self.run.checkpoints_dir
        self._save(f"step-{p.step}", with_optimizer=False)
        steps = sorted(int(f.stem.removeprefix("step-")) for f in folder.glob("step-*.json"))
        # Checkpoints past this step are left over from before a resume: not part of this run's history.
        kept = [s for s in steps if s <= p.step][-n:]
        for step in set(steps) - set(kept):
            for path in folder.glob(f"step-{step}.*"):
                path.unlink(missing_ok=True)
        save_average(folder, "averaged", [f"step-{s}" for s in kept], {"step": p.step})


def _reserve(path: Path) -> None:
    """Hold a little disk space that a full disk gives back, so that the run can still say why it failed."""
    try:
        if not path.is_file():
            path.write_bytes(b"\0" * RESERVE_BYTES)
    except OSError:
        path.unlink(missing_ok=True)  # the disk is already full: the run will say so when it writes


def _better(value: float, best: float, metric: str) -> bool:
    return value < best if metric == "loss" else value > best


def _optimizer(model: torch.nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    t = recipe.training
    params = [q for q in model.parameters() if q.requires_grad]
    # The fused kernels skip a non-finite step on the device (skipped_steps.step_unless); fused Adam gives
    # the same curve as the per-parameter loop, five times faster on CPU.
    if t.optimizer == "adam":
        return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay, fused=True)
    if t.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay, fused=True)
