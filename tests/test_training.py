"""Training: real short runs on a toy task — learning, determinism, exact resume, control messages."""

from dataclasses import fields

import pytest
import torch

from workbench.engine import devices
from workbench.engine.checkpoint import read_state
from workbench.engine.recipe import load_recipe
from workbench.engine.run_folder import RunFolder
from workbench.engine.session import TrainingSession
from workbench.engine.setup import TrainingSetup
from workbench.engine.training import Trainer

TINY = [
    "data.train_size=400",
    "data.valid_size=40",
    "data.test_size=0",
    "model.embedding_size=16",
    "model.hidden_size=32",
    "training.batch_size=16",
    "training.log_every=5",
    "training.valid_every=10",
    "training.max_steps=30",
    "training.threads=1",
]


def make_run(tmp_path, name, extra=()):
    return RunFolder.create(tmp_path, load_recipe("reverse", [*TINY, *extra]), name=name)


def train_curve(run):
    records, _ = run.read_metrics()
    return [(r["step"], r["loss"], r["lr"], r["grad_norm"]) for r in records if r["kind"] == "train"]


def test_a_run_writes_every_file_of_the_contract(tmp_path):
    run = make_run(tmp_path, "a")
    assert TrainingSession(run, "cpu").train() == "finished"
    for name in ("recipe.toml", "metrics.jsonl", "samples.jsonl", "status.json", "train.log"):
        assert (run.path / name).is_file(), name
    for name in ("last.safetensors", "last.optim.safetensors", "last.json", "best.safetensors", "best.json"):
        assert (run.checkpoints_dir / name).is_file(), name
    status = run.status()
    assert status["state"] == "finished" and status["step"] == 30
    samples, _ = run.read_samples()
    assert [s["step"] for s in samples] == [10, 20, 30]
    probe = samples[-1]["samples"][-1]
    assert probe["src"] == "a b c d e f g" and probe["ref"] is None
    assert len(probe["attention"]) == len(probe["hyp_pieces"]) + 1
    assert all(len(row) == len(probe["src_pieces"]) for row in probe["attention"])
    assert not list(run.path.rglob("*.pt")) and not list(run.path.rglob("*.pkl"))


def test_the_status_holds_the_limits_the_trainer_runs_to(tmp_path):
    run = make_run(tmp_path, "limits")
    TrainingSession(run, "cpu").train(max_steps=10, max_minutes=5)
    status = run.status()
    assert (status["max_steps"], status["max_minutes"], status["wall_at_start"]) == (10, 5, 0)
    TrainingSession(run, "cpu").train(max_steps=15)  # resumed: the recipe's time limit (none); clock goes on
    status = run.status()
    assert (status["step"], status["max_steps"], status["max_minutes"]) == (15, 15, 0)
    assert status["wall_at_start"] > 0


def test_same_recipe_and_seed_give_the_same_loss_curve(tmp_path):
    a, b = make_run(tmp_path, "a"), make_run(tmp_path, "b")
    TrainingSession(a, "cpu").train(max_steps=20)
    TrainingSession(b, "cpu").train(max_steps=20)
    assert train_curve(a) == train_curve(b)
    c = make_run(tmp_path, "c", ["seed=2"])
    TrainingSession(c, "cpu").train(max_steps=20)
    assert train_curve(c) != train_curve(a)


@pytest.mark.parametrize("stop_at", [10, 17])
def test_an_interrupted_and_resumed_run_follows_the_uninterrupted_curve(tmp_path, stop_at):
    extra = [
        "training.lr_schedule=plateau",
        "training.lr_patience=0",
        "training.teacher_forcing=0.8",
        "model.dropout=0.2",
    ]
    whole, parts = make_run(tmp_path, "whole", extra), make_run(tmp_path, "parts", extra)
    TrainingSession(whole, "cpu").train(max_steps=30)
    assert TrainingSession(parts, "cpu").train(max_steps=stop_at) == "finished"
    assert read_state(parts.checkpoints_dir, "last")["step"] == stop_at
    TrainingSession(parts, "cpu").train(max_steps=30)
    assert train_curve(parts) == train_curve(whole)
    assert len(train_curve(whole)) == 6


def test_control_messages_checkpoint_and_stop_a_trainer(tmp_path):
    run = make_run(tmp_path, "c")
    run.send_control("checkpoint")
    run.send_control("stop")
    assert TrainingSession(run, "cpu").train() == "stopped"
    status = run.status()
    assert status["state"] == "stopped" and "control" in status["reason"]
    assert read_state(run.checkpoints_dir, "last")["step"] == 0
    assert TrainingSession(run, "cpu").train(max_steps=5) == "finished"  # and it resumes from there


@pytest.mark.slow
def test_reverse_recipe_learns_the_task(tmp_path):
    run = RunFolder.create(tmp_path, load_recipe("reverse", ["training.max_steps=600", "training.threads=1"]))
    TrainingSession(run, "cpu").train()
    records, _ = run.read_metrics()
    valid = [r for r in records if r["kind"] == "valid"]
    assert valid[-1]["loss"] < valid[0]["loss"] / 3
    assert valid[-1]["exact"] >= 0.8


def test_pause_saves_a_checkpoint_and_resume_carries_on(tmp_path):
    import threading
    import time

    run = make_run(tmp_path, "p")

    def operator():
        run.send_control("pause")
        deadline = time.monotonic() + 60
        try:
            while run.status().get("state") != "paused" and time.monotonic() < deadline:
                time.sleep(0.05)
            seen.append((run.status()["state"], read_state(run.checkpoints_dir, "last")["step"]))
        finally:
            run.send_control("resume")

    seen: list[int] = []
    thread = threading.Thread(target=operator)
    thread.start()
    assert TrainingSession(run, "cpu").train() == "finished"
    thread.join()
    assert seen[0][0] == "paused" and seen[0][1] < 30
    assert "paused at step" in run.log_path.read_text() and run.status()["step"] == 30


def test_pretrained_vectors_initialise_the_embeddings(tmp_path):
    vectors = tmp_path / "vectors.txt"
    vectors.write_text("2 16\na " + " ".join(["0.5"] * 16) + "\nb " + " ".join(["-0.25"] * 16) + "\n")
    run = make_run(tmp_path, "v", [f"model.src_vectors={vectors}", "model.freeze_vectors=true"])
    setup = TrainingSession(run, "cpu").prepare()
    weights = setup.model.encoder.embedding.weight
    row = setup.tokenizers.src.encode("a")[0]
    assert weights[row].tolist() == [0.5] * 16
    assert "2 of" in run.log_path.read_text()


def test_a_broken_vectors_file_is_a_recipe_error(tmp_path):
    from workbench.engine.recipe import RecipeError

    vectors = tmp_path / "vectors.txt"
    vectors.write_text("a 0.1 0.2\n")
    run = make_run(tmp_path, "bad", [f"model.src_vectors={vectors}"])
    with pytest.raises(RecipeError, match="model.src_vectors"):
        TrainingSession(run, "cpu").prepare()


def test_resume_after_a_crash_redoes_the_lost_steps_without_duplicate_records(tmp_path):
    whole, crashed = make_run(tmp_path, "whole"), make_run(tmp_path, "crashed")
    TrainingSession(whole, "cpu").train(max_steps=30)
    TrainingSession(crashed, "cpu").train(max_steps=30)
    # A crash after step 30's records but with the checkpoint of step 20: what step 30 wrote is lost.
    for name in ("last.safetensors", "last.optim.safetensors", "last.json"):
        (crashed.checkpoints_dir / name).unlink()
    # A fresh start to step 20 stands in for the older checkpoint.
    TrainingSession(crashed, "cpu").train(max_steps=20)
    assert max(r["step"] for r in crashed.read_metrics()[0]) == 20
    TrainingSession(crashed, "cpu").train(max_steps=30)
    assert train_curve(crashed) == train_curve(whole)


def test_averaged_checkpoint_is_the_mean_of_the_last_validations(tmp_path):
    from safetensors.torch import load_file

    from workbench.engine.translator import Translator

    run = make_run(tmp_path, "avg", ["training.average_checkpoints=2", "training.max_steps=40"])
    TrainingSession(run, "cpu").train(max_steps=30)
    folder = run.checkpoints_dir
    assert sorted(p.name for p in folder.glob("step-*.safetensors")) == [
        "step-20.safetensors",
        "step-30.safetensors",
    ]
    a, b, mean = (load_file(folder / f"{tag}.safetensors") for tag in ("step-20", "step-30", "averaged"))
    for name in mean:
        torch.testing.assert_close(mean[name], (a[name] + b[name]) / 2)
    assert read_state(folder, "averaged")["averaged"] == ["step-20", "step-30"]
    decoding = Translator.from_run(run, "averaged").model.state_dict()  # the decode path loads the mean
    for name in mean:
        torch.testing.assert_close(decoding[name], mean[name])
    # A resume from step 30 carries on with the same window of checkpoints.
    TrainingSession(run, "cpu").train(max_steps=40)
    assert read_state(folder, "averaged")["averaged"] == ["step-30", "step-40"]
    assert not (folder / "step-20.safetensors").exists()


def test_the_log_names_the_precision_and_says_when_autocast_does_not_apply(tmp_path):
    run = make_run(tmp_path, "p", ["training.precision=fp16"])
    TrainingSession(run, "cpu").train(max_steps=5)
    log = (run.path / "train.log").read_text()
    assert "training.precision = fp16 is CUDA autocast; on the CPU: fp32 (bf16 is the CPU's)" in log
    assert "training on cpu" in log and " in fp32: " in log
    run = make_run(tmp_path, "b", ["training.precision=bf16"])
    TrainingSession(run, "cpu").train(max_steps=5)
    log = (run.path / "train.log").read_text()
    assert (" in bf16 autocast: " in log) == devices.fast_bf16_cpu()
    assert ("no bf16 instructions" in log) != devices.fast_bf16_cpu()


def test_bf16_on_a_cpu_without_bf16_instructions_trains_in_fp32_and_says_so(tmp_path, monkeypatch):
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        monkeypatch.setattr(torch.cpu, probe, lambda: False)
    run = make_run(tmp_path, "b", ["training.precision=bf16", "model.cell=lstm"])
    TrainingSession(run, "cpu").train(max_steps=2)
    log = (run.path / "train.log").read_text()
    assert (
        "training.precision = bf16: this CPU has no bf16 instructions (AMX, AVX-512 BF16), so it trains"
        in log
    )
    assert " in fp32: " in log


class CudaRandomState:
    """A stand-in for torch.cuda's random states: one per GPU, each telling its GPU's index apart."""

    def __init__(self, monkeypatch):
        self.restored: dict[int, torch.Tensor] = {}
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
        monkeypatch.setattr(torch.cuda, "get_rng_state", self.get)
        monkeypatch.setattr(torch.cuda, "set_rng_state", self.set)

    @staticmethod
    def index(device) -> int:
        device = torch.device(device)
        return 0 if device.index is None else device.index  # "cuda": the current device, 0

    def get(self, device="cuda"):
        return torch.full((16,), self.index(device), dtype=torch.uint8)

    def set(self, state, device="cuda"):
        self.restored[self.index(device)] = state


def test_a_checkpoint_keeps_and_restores_the_random_state_of_the_gpu_the_run_trains_on(tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from workbench.engine.checkpoint import load_checkpoint, save_checkpoint

    cuda = CudaRandomState(monkeypatch)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters())
    save_checkpoint(tmp_path, "last", model, optimizer, {}, torch.device("cuda", 2))  # --device cuda:2
    assert load_file(tmp_path / "last.optim.safetensors")["rng.cuda"].tolist() == [2] * 16
    load_checkpoint(tmp_path, "last", model, optimizer, torch.device("cuda", 2))
    assert list(cuda.restored) == [2] and cuda.restored[2].tolist() == [2] * 16


def test_a_cpu_trainer_on_a_gpu_machine_neither_saves_nor_restores_a_gpu_random_state(tmp_path, monkeypatch):
    cuda = CudaRandomState(monkeypatch)

    def untouched(*args, **kwargs):
        raise AssertionError("a CPU trainer read a GPU's random state (and so started CUDA)")

    monkeypatch.setattr(torch.cuda, "get_rng_state", untouched)
    run = make_run(tmp_path, "cpu")
    assert TrainingSession(run, "cpu").train(max_steps=10) == "finished"
    assert TrainingSession(run, "cpu").train(max_steps=20) == "finished"  # resumed from its checkpoint
    assert cuda.restored == {}


def test_a_trainer_holds_every_attribute_from_its_construction_on(tmp_path, trainers_built):
    """The session builds its trainer from the finished `TrainingSetup`. Set-up, a control message and the
    loop add no attribute to the session, the trainer or the set-up, and none is a None that stands in
    for a value set later: no object is told apart by its stage of life."""
    at_construction = []

    class Watched(Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            at_construction.append(dict(vars(self)))

    built = trainers_built(Watched)
    run = make_run(tmp_path, "a", ["training.average_checkpoints=2"])
    session = TrainingSession(run, "cpu")
    session_attributes = dict(vars(session))
    run.send_control("checkpoint")
    assert session.train(max_steps=20) == "finished"
    (trainer,), (attributes,) = built, at_construction
    assert set(vars(trainer)) == set(attributes)
    assert set(vars(session)) == set(session_attributes)
    assert [name for name, value in {**attributes, **session_attributes}.items() if value is None] == []
    assert set(vars(trainer.setup)) == {f.name for f in fields(TrainingSetup)}
    assert trainer.setup.progress is trainer.progress and trainer.progress.step == 20


@pytest.mark.parametrize("when", ["preparing", "training"])
def test_ctrl_c_stops_a_session_and_gives_back_the_lock_and_the_signal_handlers(tmp_path, monkeypatch, when):
    """Ctrl-C while setting up leaves nothing to keep; in the loop it saves `last` at the step it reached.
    Either way the run is stopped, resumable, and neither locked nor holding the process's signals."""
    import signal

    from workbench.engine import session

    run = make_run(tmp_path, "c")
    handlers = [signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGHUP)]
    held = []

    def interrupt(*args, **kwargs):
        held.append(run.trainer_alive())
        raise KeyboardInterrupt

    if when == "preparing":
        monkeypatch.setattr(session, "prepare_training", interrupt)
    else:
        real = Trainer.train_step
        monkeypatch.setattr(
            Trainer, "train_step", lambda t, *a: interrupt() if t.progress.step == 3 else real(t, *a)
        )
    assert TrainingSession(run, "cpu").train(max_steps=10) == "stopped"
    assert held == [True] and not run.trainer_alive()
    assert [signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGHUP)] == handlers
    status = run.status()
    if when == "preparing":
        assert status["reason"] == "interrupted while preparing" and not run.has_checkpoint("last")
    else:
        assert status["reason"] == "interrupted" and read_state(run.checkpoints_dir, "last")["step"] == 3
    assert status["state"] == "stopped"
    monkeypatch.undo()
    assert TrainingSession(run, "cpu").train(max_steps=5) == "finished"
