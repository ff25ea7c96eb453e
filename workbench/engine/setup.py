"""Setting up a training session: data, tokenizers, model, optimizer, schedule, the state to resume from
and the team of processes, as one `TrainingSetup` that the trainer is built from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workbench.engine.checkpoint import load_checkpoint
from workbench.engine.checkpoint import recover as recover_checkpoints
from workbench.engine.data.batching import Batch, batch_indices
from workbench.engine.data.cache import CorpusCache, cache_folder
from workbench.engine.data.prepare import PreparedCorpus, prepare
from workbench.engine.data.progress import ProgressLine
from workbench.engine.data.store import TokenSplit
from workbench.engine.devices import autocast_dtype, cpu_threads, fast_bf16_cpu, resolve_device, usable_cpus
from workbench.engine.distributed import Team, Topology, local_gpu
from workbench.engine.model import Seq2Seq, build_model
from workbench.engine.optimizers import build_optimizer
from workbench.engine.recipe import Recipe, RecipeError
from workbench.engine.run_folder import RunFolder
from workbench.engine.schedules import LearningRateSchedule
from workbench.engine.tokenizers import TokenizerPair, load_tokenizers
from workbench.engine.translator import Translator
from workbench.engine.vectors import load_vectors


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


class TrainingLoss(torch.nn.Module):
    """The model's summed training loss as a module's forward, so that DistributedDataParallel can wrap it."""

    def __init__(self, model: Seq2Seq):
        super().__init__()
        self.model = model

    def forward(self, batch: Batch, label_smoothing: float, sampling: float) -> torch.Tensor:
        return self.model.loss(
            batch.src, batch.src_lengths, batch.tgt_in, batch.tgt_out, label_smoothing, sampling
        )


@dataclass
class TrainingSetup:
    """What a training session trains with, built once by `prepare_training`."""

    run: RunFolder
    recipe: Recipe
    topology: Topology
    device: torch.device
    team: Team
    data: PreparedCorpus
    tokenizers: TokenizerPair
    model: Seq2Seq
    optimizer: torch.optim.Optimizer
    precision: str  # in words: "fp32", "bf16 autocast", "fp16 autocast"
    scaler: torch.amp.GradScaler  # loss scaling, enabled for fp16 alone
    schedule: LearningRateSchedule
    progress: Progress  # the resumed run's, or a fresh start's
    translator: Translator  # validation's decoder, over the training model
    loss_module: torch.nn.Module  # TrainingLoss, in a DistributedDataParallel with several processes

    @property
    def params(self) -> int:
        """The model's parameters, frozen ones included."""
        return sum(weight.numel() for weight in self.model.parameters())

    def close(self) -> None:
        """Leave the team; the DistributedDataParallel wrapper goes first, as it holds the process group."""
        if isinstance(self.loss_module, torch.nn.parallel.DistributedDataParallel):
            self.loss_module = self.loss_module.module
        self.team.close()


def training_device(device: str, topology: Topology, threads: int) -> torch.device:
    """The device this process trains on: on a GPU, one per process, made the current one."""
    chosen = resolve_device(device)
    if chosen.type != "cuda":
        return chosen
    if topology.distributed:  # one GPU per process
        index = local_gpu(topology, torch.cuda.device_count())
    else:
        index = torch.cuda.current_device() if chosen.index is None else chosen.index
    chosen = torch.device("cuda", index)
    torch.cuda.set_device(chosen)  # what torch allocates without a device goes there too
    if threads:  # the CPU side of a GPU run (its batches): a sweep's share of the cores
        torch.set_num_threads(threads)
    return chosen


def epoch_order(recipe: Recipe, train: TokenSplit, epoch: int, processes: int) -> list[np.ndarray]:
    """The global batches of one epoch, as lists of training-pair indices (seeded: resumable).

    A global batch holds batch_size x processes x accumulate sentences (or tokens), bucketed by length
    as one batch would be, so N processes of B sentences take the same steps as one process of N x B.
    """
    cfg = recipe.training
    return batch_indices(
        train.lengths["src"],
        train.lengths["tgt"] + 1,
        cfg.batch_size * processes * cfg.accumulate,
        cfg.batch_unit,
        seed=recipe.seed * 100_003 + epoch,
    )


def global_batch(recipe: Recipe, processes: int) -> str:
    """The global batch in words, as "128 sentences"."""
    cfg = recipe.training
    return f"{cfg.batch_size * cfg.accumulate * processes} {cfg.batch_unit}"


def prepare_training(
    run: RunFolder, recipe: Recipe, topology: Topology, device: torch.device, threads: int
) -> TrainingSetup:
    """Join the team, load data, tokenizers (trained on first use), model, optimizer and the last
    checkpoint. Rank 0 alone writes the run folder. The team is left where set-up fails."""
    team = Team(topology, device, recipe.training.collective_timeout)
    try:
        return _prepare(run, recipe, topology, device, threads, team)
    except BaseException:
        team.close()
        raise


def _prepare(
    run: RunFolder, recipe: Recipe, topology: Topology, device: torch.device, threads: int, team: Team
) -> TrainingSetup:
    cfg = recipe.training
    if device.type == "cpu":
        own = threads
        if topology.distributed and not own:  # the process's cores, divided between its peers
            own = max(1, len(usable_cpus()) // topology.local_world_size)
        torch.set_num_threads(cpu_threads(own))
    torch.manual_seed(recipe.seed)
    data = _prepare_data(run, recipe, topology, threads, team)
    tokenizers = load_tokenizers(run.tokenizer_dir)
    if topology.main:
        run.write_status("running", reason="preparing the model", preparing=None)
    model = build_model(recipe.model, tokenizers.src.vocab_size, tokenizers.tgt.vocab_size)
    _load_vectors(run, recipe, tokenizers, model)
    model.to(device)
    optimizer = build_optimizer(model, cfg)
    dtype = autocast_dtype(device, cfg.precision)
    precision = {torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast"}.get(dtype, "fp32")
    if topology.main and dtype is None and cfg.precision == "fp16":
        run.log("training.precision = fp16 is CUDA autocast; on the CPU: fp32 (bf16 is the CPU's)")
    if topology.main and cfg.precision == "bf16" and device.type == "cpu" and not fast_bf16_cpu():
        run.log(
            "training.precision = bf16: this CPU has no bf16 instructions (AMX, AVX-512 BF16), so it "
            "trains in fp32 (emulated bf16 is slower, and has no LSTM kernel)"
        )
    # fp16 gradients underflow without loss scaling; bf16 and fp32 need none.
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    schedule = LearningRateSchedule(cfg, higher_is_better=cfg.early_stopping_metric != "loss")
    progress = Progress(processes=topology.world_size)
    if topology.main:  # a save that a crash interrupted: finished if it was committed, else dropped
        for tag in recover_checkpoints(run.checkpoints_dir):
            run.log(f"checkpoint {tag!r}: finished the save that a crash interrupted")
    team.wait_for_all()
    if run.has_checkpoint("last"):
        state = load_checkpoint(run.checkpoints_dir, "last", model, optimizer, device)
        progress = Progress(**{"batcher": 1, **state["progress"]})
        schedule.load_state_dict(progress.schedule)
        _rescale_epoch_position(run, recipe, topology, data.train, progress)
    if topology.main:
        run.forget_after(progress.step)
        if removed := run.remove_temporaries():
            run.log(f"removed {removed} temporary file(s) left by a write that a crash cut short")
    translator = Translator(model, tokenizers, recipe.decoding, device)
    loss_module: torch.nn.Module = TrainingLoss(model)
    if topology.distributed:
        loss_module = torch.nn.parallel.DistributedDataParallel(
            loss_module, device_ids=[device.index] if device.type == "cuda" else None
        )
    return TrainingSetup(
        run, recipe, topology, device, team, data, tokenizers, model, optimizer, precision, scaler,
        schedule, progress, translator, loss_module,
    )  # fmt: skip


def _rescale_epoch_position(
    run: RunFolder, recipe: Recipe, topology: Topology, train: TokenSplit, progress: Progress
) -> None:
    """A run resumed on another number of processes, or saved when batches were drawn another way, has
    other batches: keep its place in the epoch as a fraction, and say that the data order changed."""
    processes = topology.world_size
    if progress.processes == processes and progress.batcher == Progress.batcher:
        return
    step = progress.step
    if topology.main and progress.batcher != Progress.batcher:
        run.log(
            f"resumed with batches planned from the token store: the data order from step {step} on "
            "differs from the run's so far"
        )
    if topology.main and progress.processes != processes:
        run.log(
            f"resumed on {processes} process(es) after {progress.processes}: the global batch is now "
            f"{global_batch(recipe, processes)}, so the data order from step {step} on differs from the "
            "run's so far"
        )
    before = len(epoch_order(recipe, train, progress.epoch, progress.processes))
    after = len(epoch_order(recipe, train, progress.epoch, processes))
    progress.batch_in_epoch = min(after, round(progress.batch_in_epoch * after / max(before, 1)))
    progress.processes, progress.batcher = processes, Progress.batcher


def _prepare_data(
    run: RunFolder, recipe: Recipe, topology: Topology, threads: int, team: Team
) -> PreparedCorpus:
    """The corpus from the corpus cache beside the runs (prepared there now if it is not), and the
    run's tokenizer: its own if it has one, else the one prepared with the corpus."""
    has_tokenizer = (run.tokenizer_dir / "tokenizer.json").is_file()
    cache = CorpusCache(cache_folder(run.path.parent))
    clock = ProgressLine()

    def report(phase: str, done: int, total: int | None, fraction: float | None) -> None:
        if clock.due(phase) and topology.main:
            line = clock.line(phase, done, total, fraction)
            run.write_status(
                "running",
                reason=f"preparing data: {line}",
                preparing={"phase": phase, "done": done, "total": total, "fraction": fraction},
            )

    workers = threads or len(usable_cpus())
    own = run.tokenizer_dir if has_tokenizer else None
    data = prepare(recipe, cache, own, report=report, workers=workers)
    if topology.main:
        if not has_tokenizer:
            run.adopt_tokenizer(data.tokenizer_dir)
        run.record_corpus(data.key, cache.folder, data.manifest["label"])
        for note in data.notes:  # how the tokenizer was made only where the run took it
            if not has_tokenizer or note.startswith("data:"):
                run.log(note)
        run.log(f"data: corpus {data.key} of the corpus cache {cache.folder}")
    team.wait_for_all()  # the others read the tokenizer rank 0 copied (the runs folder is shared)
    return data


def _load_vectors(run: RunFolder, recipe: Recipe, tokenizers: TokenizerPair, model: Seq2Seq) -> None:
    """Pretrained word vectors into the embeddings, where the recipe names them."""
    cfg = recipe.model
    matrices = {}
    for side, path, tokenizer in (
        ("src", cfg.src_vectors, tokenizers.src),
        ("tgt", cfg.tgt_vectors, tokenizers.tgt),
    ):
        if path:
            pieces = tokenizer.pieces(list(range(tokenizer.vocab_size)))
            try:
                matrices[side], found = load_vectors(Path(path), pieces, cfg.embedding_size)
            except (OSError, ValueError) as exc:
                raise RecipeError(f"model.{side}_vectors: {exc}") from None
            run.log(f"vectors: {found} of {tokenizer.vocab_size} {side} pieces found in {path}")
    if matrices:
        model.load_pretrained(matrices.get("src"), matrices.get("tgt"), cfg.freeze_vectors)
