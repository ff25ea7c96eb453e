"""A non-finite gradient is never applied, decided on the training device: a step reads nothing back from
its tensors (on a GPU such a read makes the CPU wait for every step), and the skips are reported at the
next logging step or checkpoint."""

import pytest
import torch

from workbench.engine.recipe import load_recipe
from workbench.engine.run_folder import RunFolder
from workbench.engine.session import TrainingSession
from workbench.engine.training import DivergedError, Trainer

TINY = [
    "data.train_size=200",
    "data.valid_size=20",
    "data.test_size=0",
    "model.embedding_size=16",
    "model.hidden_size=32",
    "training.batch_size=16",
    "training.log_every=5",
    "training.valid_every=100",
    "training.threads=1",
]
READS = ("item", "tolist", "__bool__", "__float__", "__int__")


def prepared(tmp_path, extra=()):
    run = RunFolder.create(tmp_path, load_recipe("reverse", [*TINY, *extra]), name="r")
    return Trainer(TrainingSession(run, "cpu").prepare())


def batches(trainer, n):
    order = trainer.epoch_order(0)
    return [trainer.train_batch(order[i]) for i in range(n)]


def poison(trainer, steps):
    """Make the gradient of one weight NaN at the given steps."""
    weight = next(trainer.model.parameters())
    weight.register_hook(lambda g: g * float("nan") if trainer.progress.step in steps else g)


@pytest.fixture
def no_reads(monkeypatch):
    """Inside the `with`: reading the value of a float or bool tensor (a loss, a norm, a flag: on a GPU,
    device memory) raises. Integer tensors are the batch's lengths, which stay on the host."""

    class Reads:
        def __enter__(self):
            for name in READS:
                monkeypatch.setattr(torch.Tensor, name, _refuse(name))

        def __exit__(self, *exc):
            monkeypatch.undo()

    return Reads()


def _refuse(name):
    original = getattr(torch.Tensor, name)

    def read(self, *args, **kwargs):
        if self.is_floating_point() or self.dtype == torch.bool:
            raise AssertionError(f"Tensor.{name}: a host read inside a training step")
        return original(self, *args, **kwargs)

    return read


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_a_training_step_decides_on_a_non_finite_gradient_without_reading_it(tmp_path, no_reads, optimizer):
    trainer = prepared(tmp_path, [f"training.optimizer={optimizer}", "training.precision=fp32"])
    first, *rest = batches(trainer, 3)
    trainer.train_step(first)  # creates the optimizer's state
    trainer._window_loss = torch.zeros((), dtype=torch.float64)  # as the loop starts it
    with no_reads:
        for batch in rest:
            trainer.progress.step += 1
            loss_sum, grad_norm = trainer.train_step(batch)
            trainer._add_to_window(loss_sum, 10, 10)
    assert trainer.found_inf.device == grad_norm.device and trainer.found_inf.shape == ()
    assert trainer.found_inf.item() == 0.0 and trainer.skips.read().skipped == 0


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop"])  # rmsprop: no fused kernel, a read
def test_a_step_with_a_non_finite_gradient_leaves_weights_and_optimizer_as_they_were(tmp_path, optimizer):
    trainer = prepared(tmp_path, [f"training.optimizer={optimizer}", "training.momentum=0.9"])
    poison(trainer, {2})
    first, second = batches(trainer, 2)
    trainer.progress.step = 1
    trainer.train_step(first)
    weights = [p.detach().clone() for p in trainer.model.parameters()]
    state = [{k: v.clone() for k, v in s.items()} for s in trainer.optimizer.state.values()]
    trainer.progress.step = 2
    trainer.train_step(second)
    assert trainer.found_inf.item() == 1.0
    assert all(torch.equal(a, b) for a, b in zip(weights, trainer.model.parameters()))
    for before, after in zip(state, trainer.optimizer.state.values()):
        assert all(torch.equal(v, after[k]) for k, v in before.items())  # Adam's step count too


class Poisoned(Trainer):
    """A trainer whose gradient is NaN at `steps`; it keeps each step's summed loss and target tokens."""

    steps: set[int] = set()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        poison(self, self.steps)
        self.taken = {}

    def train_step(self, batches, n_tgt_tokens=None):
        loss_sum, grad_norm = super().train_step(batches, n_tgt_tokens)
        self.taken[self.progress.step] = (loss_sum.item(), n_tgt_tokens)
        return loss_sum, grad_norm


def poisoned(trainers_built, monkeypatch, steps):
    """Training sessions build `Poisoned` trainers, NaN at `steps`; the list of those built."""
    monkeypatch.setattr(Poisoned, "steps", steps)
    return trainers_built(Poisoned)


def test_skipped_steps_are_reported_at_the_next_logging_step_and_training_goes_on(
    tmp_path, trainers_built, monkeypatch
):
    run = RunFolder.create(tmp_path, load_recipe("reverse", [*TINY, "training.skip_nonfinite=1"]), name="r")
    built = poisoned(trainers_built, monkeypatch, {3, 7, 8})
    with pytest.raises(DivergedError):
        TrainingSession(run, "cpu").train(max_steps=10)
    (trainer,) = built
    log = (run.path / "train.log").read_text()
    assert "steps 3-3: 1 batch(es) skipped for a non-finite gradient, at most 1 in a row (1 in all" in log
    # Steps 7 and 8 make two in a row, one more than allowed: reported at step 10, as step 8's fault.
    reason = run.status()["reason"]
    assert reason.startswith("step 8: the loss or its gradient is not finite (NaN or inf), 2 batch(es)")
    assert [r["step"] for r in run.read_metrics()[0] if r["kind"] == "train"] == [5]
    assert trainer.progress.nonfinite_skipped == 3


def test_the_loss_of_a_window_leaves_out_the_skipped_batches(tmp_path, trainers_built, monkeypatch):
    run = RunFolder.create(tmp_path, load_recipe("reverse", [*TINY, "training.skip_nonfinite=5"]), name="r")
    built = poisoned(trainers_built, monkeypatch, {2, 3})
    assert TrainingSession(run, "cpu").train(max_steps=5) == "finished"
    (trainer,) = built
    (record,) = [r for r in run.read_metrics()[0] if r["kind"] == "train"]
    applied = [trainer.taken[step] for step in (1, 4, 5)]
    assert record["loss"] == round(sum(loss for loss, _ in applied) / sum(n for _, n in applied), 5)
    assert trainer.progress.nonfinite_in_a_row == 0 and trainer.progress.nonfinite_skipped == 2
