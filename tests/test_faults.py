"""Faults during training: a diverging run, a full disk. Each is caught, said in words, and leaves the run
folder loadable and resumable (real trainer processes; the full disk is a real, small tmpfs)."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from workbench.engine.run_folder import RunFolder

TINY = [
    "data.train_size=400",
    "data.valid_size=30",
    "model.hidden_size=32",
    "model.embedding_size=16",
    "training.valid_every=10",
    "training.log_every=5",
    "training.threads=1",
    "training.batch_size=16",
]


# Weights of ~1e37 after a step or two: the logits overflow to inf, and the loss to NaN. (Adam's steps
# are bounded by its learning rate, and saturating gates and a stable softmax keep even lr = 1e30 finite.)
DIVERGING = ["training.optimizer=sgd", "training.lr=1e38", "training.clip_grad=0", "training.valid_every=2"]


def command(*args: str, sets=()) -> list[str]:
    out = [sys.executable, "-m", "workbench", *args]
    for s in sets:
        out += ["--set", s]
    return out


def run_cli(*args: str, sets=()) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(
        command(*args, sets=sets), input="abc\n", capture_output=True, text=True, env=env, timeout=300
    )


def steps(run: Path, kind: str = "train") -> list[int]:
    return [r["step"] for r in RunFolder(run).read_metrics()[0] if r["kind"] == kind]


def finite_checkpoints(run: Path) -> list[str]:
    """The checkpoints whose every weight is finite (all there are, if the run kept its promise)."""
    found = []
    for path in sorted((run / "checkpoints").glob("*.safetensors")):
        if all(bool(torch.isfinite(t).all()) for t in load_file(path).values() if t.is_floating_point()):
            found.append(path.name)
    return found


@pytest.mark.slow
def test_a_diverging_run_stops_at_the_step_it_diverges_and_keeps_its_last_finite_checkpoint(
    tmp_path, record_property
):
    sets = [*TINY, *DIVERGING]
    out = run_cli("train", "reverse", "--headless", "--max-steps", "200", "--name", "nan",
                  "--runs-dir", str(tmp_path), sets=sets)  # fmt: skip
    run = tmp_path / "nan"
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    status = RunFolder(run).status()
    assert status["state"] == "failed"
    assert "the loss or its gradient is not finite (NaN or inf)" in status["reason"]
    assert "lower training.lr or clip gradients (training.clip_grad)" in status["reason"]
    assert "not finite" in out.stderr
    step = int(status["reason"].split(":")[0].removeprefix("step "))
    assert step < 200
    checkpoints = sorted(p.name for p in (run / "checkpoints").glob("*.safetensors"))
    assert "last.safetensors" in checkpoints and finite_checkpoints(run) == checkpoints  # none holds a NaN
    assert run_cli("decode", str(run), "--checkpoint", "last").returncode == 0
    assert all(s < step for s in steps(run))  # nothing logged from the diverged step on
    record_property("inputs", 1)
    record_property("shows", status["reason"])


@pytest.mark.slow
def test_a_recipe_may_skip_non_finite_batches_and_stops_after_too_many_in_a_row(tmp_path, record_property):
    sets = [*TINY, *DIVERGING, "training.skip_nonfinite=2"]
    out = run_cli("train", "reverse", "--headless", "--max-steps", "200", "--name", "skip",
                  "--runs-dir", str(tmp_path), sets=sets)  # fmt: skip
    assert out.returncode == 2, out.stdout + out.stderr
    log = (tmp_path / "skip" / "train.log").read_text()
    # Read at each validation (every 2 steps): one or two skipped in a row, then the third stops the run.
    assert re.search(r"batch\(es\) skipped for a non-finite gradient, at most [12] in a row", log), log
    assert "3 batch(es) in a row" in RunFolder(tmp_path / "skip").status()["reason"]
    assert finite_checkpoints(tmp_path / "skip") == sorted(
        p.name for p in (tmp_path / "skip" / "checkpoints").glob("*.safetensors")
    )
    record_property("inputs", 3)
    record_property("shows", RunFolder(tmp_path / "skip").status()["reason"])


# Finite but exploding: SGD at lr = 1e6 takes the weights to ~1e7 (the loss to ~1e7 nats per token) and
# saturating gates and a stable softmax keep every number finite, so the non-finite guard never fires.
EXPLODING = ["training.optimizer=sgd", "training.lr=1e6", "training.clip_grad=0"]
EXPLODED = re.compile(
    r"step (\d+): the training loss has exploded, though finite: (\S+) per target token, over (\S+) "
    r"\(10 x ln (\d+), the loss of guessing every piece alike\) at 3 logging steps in a row; training "
    r"stopped \((.+)\): lower training.lr or clip gradients \(training.clip_grad\), in the run's "
    r"recipe.toml to resume it, or for a new run"
)


def train_losses(run: Path) -> list[float]:
    return [r["loss"] for r in RunFolder(run).read_metrics()[0] if r["kind"] == "train"]


@pytest.mark.slow
def test_a_loss_that_explodes_while_staying_finite_stops_the_run_naming_the_step_and_the_loss(
    tmp_path, record_property
):
    """Logged every 5 steps: the loss is over 10 x ln V from the first window on, so the third, at step
    15, stops the run. The validation at step 10 saves nothing: no checkpoint holds exploded weights."""
    out = run_cli("train", "reverse", "--headless", "--max-steps", "60", "--name", "boom",
                  "--runs-dir", str(tmp_path), sets=[*TINY, *EXPLODING])  # fmt: skip
    assert out.returncode == 2, out.stdout + out.stderr
    line = one_error_line(out.stderr)
    found = EXPLODED.fullmatch(line)
    assert found, line
    step, loss, bound, vocab, saved = found.groups()
    run = RunFolder(tmp_path / "boom")
    assert int(vocab) == len(json.loads((run.tokenizer_dir / "tgt.vocab.json").read_text()))
    assert float(bound) == pytest.approx(10 * math.log(int(vocab)), rel=1e-2)
    assert int(step) == 15 and math.isfinite(float(loss)) and float(loss) > 1e4 * float(bound)
    logged = train_losses(run.path)  # the two windows before it: exploded too, and finite
    assert len(logged) == 2 and all(math.isfinite(x) and x > float(bound) for x in logged)
    assert saved == "no checkpoint" and not list(run.checkpoints_dir.glob("*.safetensors"))
    assert run.status()["state"] == "failed" and run.status()["reason"] == line
    record_property("inputs", 1)
    record_property("shows", line)


@pytest.mark.slow
def test_a_run_whose_loss_explodes_keeps_its_checkpoint_from_before_and_resumes_once_its_recipe_is_fixed(
    tmp_path, record_property
):
    """A healthy SGD run to step 10, then lr = 1e6 in its recipe: stopped at the third exploded window
    (step 25), `last` still step 10's; with the rate set back, resume trains on with no step missing or
    doubled, and the healthy windows never stop it."""
    sets = [*TINY, *EXPLODING, "training.lr=0.5"]
    trained = run_cli("train", "reverse", "--headless", "--max-steps", "10", "--name", "back",
                      "--runs-dir", str(tmp_path), sets=sets)  # fmt: skip
    assert trained.returncode == 0, trained.stdout + trained.stderr
    run = RunFolder(tmp_path / "back")
    saved = (run.checkpoints_dir / "last.safetensors").read_bytes()
    healthy = run.recipe_path.read_text()
    run.recipe_path.write_text(re.sub(r"(?m)^lr = .*$", "lr = 1000000.0", healthy))
    out = run_cli("resume", str(run.path), "--max-steps", "60")
    assert out.returncode == 2, out.stdout + out.stderr
    line = one_error_line(out.stderr)
    found = EXPLODED.fullmatch(line)
    assert found and found[1] == "25" and found[5] == "the checkpoints hold step 10's weights", line
    assert (run.checkpoints_dir / "last.safetensors").read_bytes() == saved
    assert json.loads((run.checkpoints_dir / "last.json").read_text())["state"]["step"] == 10
    assert "not saved as 'last': the training loss is over" in run.log_path.read_text()  # step 20's
    run.recipe_path.write_text(healthy)
    resumed = run_cli("resume", str(run.path), "--max-steps", "30")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert steps(run.path) == [5, 10, 15, 20, 25, 30] and run.status()["state"] == "finished"
    vocab = len(json.loads((run.tokenizer_dir / "tgt.vocab.json").read_text()))
    assert max(train_losses(run.path)) < 1.1 * math.log(vocab)  # near ln V, far under 10 x ln V
    record_property("inputs", 2)
    record_property("shows", line)


@pytest.fixture
def small_disk(tmp_path):
    """A real 16 MiB file system (tmpfs), for filling up; skipped where this user may not mount one."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()}); CI runs as root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path, leave: int = 0) -> Path:
    """Write a file until the disk is full, then give back `leave` bytes of it; returns it (delete it to
    give the space back)."""
    filler = folder / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    os.truncate(filler, filler.stat().st_size - leave)
    return filler


@pytest.mark.slow
def test_a_full_disk_fails_the_run_in_words_keeps_its_checkpoint_and_resume_works_once_space_is_back(
    small_disk, tmp_path, record_property
):
    runs = small_disk / "runs"
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    args = command("train", "reverse", "--headless", "--max-steps", "60", "--name", "full", "--runs-dir",
                   str(runs), sets=TINY)  # fmt: skip
    trainer = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    run = RunFolder(runs / "full")
    deadline = time.monotonic() + 120
    while not (run.has_checkpoint("last") and steps(run.path)):
        assert time.monotonic() < deadline and trainer.poll() is None, trainer.communicate()
        time.sleep(0.1)
    filler = fill(small_disk)
    out, err = trainer.communicate(timeout=120)
    assert trainer.returncode == 2, out + err
    assert "no space left on the disk of" in err and "free space or move the runs folder" in err
    assert "Traceback" not in err
    status = run.status()
    assert status["state"] == "failed" and "no space left on the disk of" in status["reason"]
    failed_at = max(steps(run.path))
    assert failed_at < 60
    assert finite_checkpoints(run.path)  # the checkpoint from before the disk filled still loads
    decoded = run_cli("decode", str(run.path), "--checkpoint", "last")
    assert decoded.returncode == 0, decoded.stderr
    filler.unlink()
    resumed = run_cli("resume", str(run.path), "--max-steps", "60")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert steps(run.path) == list(range(5, 61, 5))  # no step missing or doubled
    assert json.loads((run.path / "status.json").read_text())["state"] == "finished"
    record_property("inputs", 1)
    record_property("shows", status["reason"].replace(str(runs), "RUNS"))


def no_space(where: Path) -> str:
    return f"no space left on the disk of {where}: free space or move the runs folder (--runs-dir)"


def one_error_line(err: str) -> str:
    """The error a command printed on stderr, asserting that it is all it printed: one line, no traceback."""
    assert "Traceback" not in err, err
    (line,) = [line for line in err.splitlines() if line.strip()]
    assert line.startswith("error: "), err
    return line.removeprefix("error: ")


@pytest.mark.slow
def test_a_full_disk_at_resume_fails_it_in_one_line_before_training_and_resume_works_once_space_is_back(
    small_disk, record_property
):
    """The disk fills while the run is not training: resume's first write (its status) meets it. A disk
    that turned read-only refuses even the run's lock file. Each is one line, exit 2, the checkpoint as it
    was."""
    runs = small_disk / "runs"
    trained = run_cli("train", "reverse", "--headless", "--max-steps", "10", "--name", "full",
                      "--runs-dir", str(runs), sets=TINY)  # fmt: skip
    assert trained.returncode == 0, trained.stdout + trained.stderr
    run = RunFolder(runs / "full")
    saved = (run.checkpoints_dir / "last.safetensors").read_bytes()
    filler = fill(small_disk)
    out = run_cli("resume", str(run.path), "--max-steps", "30")
    assert out.returncode == 2, out.stdout + out.stderr
    full = one_error_line(out.stderr)
    assert full == no_space(run.path)
    status = run.status()
    assert status["state"] == "failed" and status["reason"] == full  # the reserve gave the room to say so
    assert (run.checkpoints_dir / "last.safetensors").read_bytes() == saved and steps(run.path) == [5, 10]
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        out = run_cli("resume", str(run.path), "--max-steps", "30")
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert out.returncode == 2, out.stdout + out.stderr
    read_only = one_error_line(out.stderr)
    assert read_only.startswith(f"{run.path / '.lock'} is on a read-only file system: move the runs folder")
    filler.unlink()
    resumed = run_cli("resume", str(run.path), "--max-steps", "30")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert steps(run.path) == [5, 10, 15, 20, 25, 30]  # no step missing or doubled
    assert run.status()["state"] == "finished"
    record_property("inputs", 2)
    record_property("shows", f"{full}; {read_only}".replace(str(runs), "RUNS"))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("cached", "leave"),
    [(False, 0), (True, 0), (True, 128 * 1024)],
    ids=["preparing the corpus into the cache", "making the run folder", "writing the first checkpoint"],
)
def test_a_full_disk_fails_a_new_run_in_one_line_at_every_stage_and_leaves_nothing_half_made(
    cached, leave, small_disk, record_property
):
    """`train` on a disk with no room (`leave` bytes, after the corpus cache's entry if `cached`). With
    none, the corpus cache's entry or else the run folder cannot be made: neither is left half made. With
    128 KiB the run starts (the 64 KiB reserve, the status, the log, the first metrics) and its first
    checkpoint (88 KiB of weights) does not fit: the run fails and resumes once there is space."""
    runs = small_disk / "runs"
    if cached:
        prepared = run_cli("prepare", "reverse", "--runs-dir", str(runs), sets=TINY)
        assert prepared.returncode == 0, prepared.stderr
    filler = fill(small_disk, leave)
    out = run_cli("train", "reverse", "--headless", "--max-steps", "30", "--name", "new",
                  "--runs-dir", str(runs), sets=TINY)  # fmt: skip
    assert out.returncode == 2, out.stdout + out.stderr
    line = one_error_line(out.stderr)
    run = RunFolder(runs / "new")
    if not cached:  # no entry, no lock, not the folders made for them
        assert line.startswith(f"{runs / '.corpora'}: no space left on the disk while preparing the corpus")
        assert not runs.exists()
    elif not leave:
        assert line == no_space(runs)
        assert sorted(p.name for p in runs.iterdir()) == [".corpora"]
    else:
        assert line == no_space(run.path)
        assert run.status()["state"] == "failed" and run.status()["reason"] == line
        assert steps(run.path, "valid") == [10] and not run.has_checkpoint("last")
    filler.unlink()
    if leave:
        resumed = run_cli("resume", str(run.path), "--max-steps", "30")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert steps(run.path) == [5, 10, 15, 20, 25, 30] and run.status()["state"] == "finished"
    record_property("inputs", 1)
    record_property("shows", line.replace(str(runs), "RUNS"))


def samples_steps(run: Path) -> list[int]:
    return [r["step"] for r in RunFolder(run).read_samples()[0]]


@pytest.mark.slow
def test_kill_9_at_random_moments_with_a_resume_after_each_ends_on_the_uninterrupted_curve(
    tmp_path, record_property
):
    """Validations every 4 steps, each writing last, best, step-N and averaged, and metrics every 2: a
    kill lands between steps, in a validation, in a checkpoint write or in an append. After each one the
    run loads and every checkpoint it has decodes; after the last resume its curve is the whole run's."""
    import random

    from workbench.engine.translator import Translator

    sets = [*TINY, "training.valid_every=4", "training.log_every=2", "training.average_checkpoints=2"]
    sets += ["training.max_steps=80"]
    whole = run_cli(
        "train", "reverse", "--headless", "--name", "whole", "--runs-dir", str(tmp_path), sets=sets
    )
    assert whole.returncode == 0, whole.stderr
    env = {**os.environ, "NO_COLOR": "1"}
    first = command("train", "reverse", "--headless", "--name", "cut", "--runs-dir", str(tmp_path), sets=sets)
    again = command("resume", str(tmp_path / "cut"))
    run = RunFolder(tmp_path / "cut")
    rng = random.Random(7)
    kills = 0
    for attempt in range(40):
        trainer = subprocess.Popen(first if attempt == 0 else again, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)  # fmt: skip
        # Once this trainer has logged a step of its own (torch's import and the data take seconds first),
        # a random moment in the next second.
        grown = len(steps(run.path)) if run.metrics_path.is_file() else 0
        while trainer.poll() is None and (len(steps(run.path)) if run.metrics_path.is_file() else 0) <= grown:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.8))
        if trainer.poll() is not None:
            break  # it finished before this kill
        trainer.kill()
        trainer.wait()
        kills += 1
        state = run.status()["state"]
        assert run.recipe() and state in ("failed", "running", "new", "finished")
        for tag in ("last", "best", "averaged"):
            if run.has_checkpoint(tag):
                Translator.from_run(run.path, tag).translate(["a b c"], 1)
        if state == "finished":
            break  # it finished just before the kill
    assert kills >= 3
    assert run.status()["state"] == "finished"
    assert [(s, r) for s, r in zip(steps(run.path), steps(tmp_path / "whole"))] and steps(run.path) == list(
        range(2, 81, 2)
    )
    cut_losses = [(r["step"], r["loss"]) for r in run.read_metrics()[0] if r["kind"] == "train"]
    whole_losses = [
        (r["step"], r["loss"])
        for r in RunFolder(tmp_path / "whole").read_metrics()[0]
        if r["kind"] == "train"
    ]
    assert cut_losses == whole_losses
    assert samples_steps(run.path) == samples_steps(tmp_path / "whole") == list(range(4, 81, 4))
    assert not list(run.path.glob("**/.*.tmp"))  # a cut-short write's temporary file is cleared on resume
    record_property("inputs", kills)
    shown = "after each kill the run loads and its checkpoints decode; resumed: the same losses at every step"
    record_property("shows", shown)


def test_a_checkpoint_save_cut_short_anywhere_leaves_the_old_one_or_the_new_one_never_a_mix(
    tmp_path, record_property
):
    from workbench.engine.checkpoint import load_checkpoint, recover, save_checkpoint

    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters())
    save_checkpoint(tmp_path, "last", model, optimizer, {"step": 1})
    old = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.weight.add_(1.0)
    save_checkpoint(tmp_path, "next", model, optimizer, {"step": 2})  # the files a save of step 2 writes
    files = ("safetensors", "optim.safetensors", "json")

    def crash_after(written: tuple[str, ...], renamed: tuple[str, ...]) -> None:
        """The state a save of step 2 over `last` leaves when the process dies at that point."""
        for ext in written:
            (tmp_path / f".last.{ext}.pending").write_bytes((tmp_path / f"next.{ext}").read_bytes())
        for ext in renamed:
            (tmp_path / f".last.{ext}.pending").replace(tmp_path / f"last.{ext}")

    def loaded_step() -> int:
        fresh = torch.nn.Linear(3, 2)
        return load_checkpoint(tmp_path, "last", fresh, torch.optim.Adam(fresh.parameters()))["step"]

    crash_after(files[:2], ())  # before the commit record
    assert recover(tmp_path) == [] and loaded_step() == 1
    assert not list(tmp_path.glob(".*.pending"))
    crash_after(files, files[:1])  # after it, amid the renames
    assert recover(tmp_path) == ["last"] and loaded_step() == 2
    assert torch.equal(load_file(tmp_path / "last.safetensors")["weight"], old["weight"] + 1.0)
    record_property("inputs", 2)
    record_property("shows", "the old checkpoint before the commit record, the new one after it")


def wait_for_checkpoint(run: RunFolder, trainer: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not (run.has_checkpoint("last") and steps(run.path)):
        assert time.monotonic() < deadline and trainer.poll() is None, "no checkpoint in time"
        time.sleep(0.05)


def unused_pid() -> int:
    for pid in range(4_194_000, 4_194_300):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            continue
    raise AssertionError("no free pid")


async def runs_screen_rows(runs_dir: Path) -> dict[str, tuple[str, str]]:
    """name -> (state, reason) as the workbench's Runs screen lists them."""
    from workbench.tui.app import S2SBenchApp
    from workbench.tui.components.runs_table import RunsTable

    app = S2SBenchApp(runs_dir, recipes={}, sweeps={})
    async with app.run_test() as pilot:
        await pilot.pause()
        await app.screen._read_runs().wait()
        await pilot.pause()
        return {s.name: (s.state, s.reason) for s in app.screen.query_one(RunsTable).summaries}


@pytest.mark.slow
def test_a_run_left_running_by_a_reboot_reads_as_failed_in_the_list_and_the_workbench_and_resumes(
    tmp_path, record_property
):
    """A kill -9 and then a reboot: status.json still says running, its pid is gone or belongs to another
    process, the .lock file and any temporaries are left. Liveness is the lock's flock, never the pid."""
    import asyncio

    env = {**os.environ, "NO_COLOR": "1"}
    args = command("train", "reverse", "--headless", "--max-steps", "40", "--name", "boot",
                   "--runs-dir", str(tmp_path), sets=TINY)  # fmt: skip
    trainer = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run = RunFolder(tmp_path / "boot")
    wait_for_checkpoint(run, trainer)
    trainer.kill()
    trainer.wait()
    assert (run.path / ".lock").is_file() and run.read_status_file()["state"] == "running"
    for pid in (unused_pid(), os.getpid()):  # no such process; a live one that is no trainer
        run.status_path.write_text(json.dumps({**run.read_status_file(), "pid": pid}))
        listed = run_cli("runs", "--runs-dir", str(tmp_path))
        assert listed.returncode == 0 and "failed (the process died)" in listed.stdout, listed.stdout
        assert asyncio.run(runs_screen_rows(tmp_path)) == {"boot": ("failed", "the training process died")}
        refused = run_cli("control", str(run.path), "stop")
        assert refused.returncode == 2 and "no trainer is running this run (state: failed)" in refused.stderr
    resumed = run_cli("resume", str(run.path), "--max-steps", "40")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert steps(run.path) == list(range(5, 41, 5)) and run.status()["state"] == "finished"
    record_property("inputs", 2)
    record_property("shows", "runs and the Runs screen: failed (the training process died); resume works")


OOM = "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.15 GiB"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "at_step"),
    [("train_step", 23), ("_valid_loss", 20)],
    ids=["in a training step", "in a validation"],
)
def test_out_of_memory_mid_run_fails_it_in_one_line_naming_the_keys_and_resume_goes_on(
    method, at_step, tmp_path, record_property
):
    """torch.OutOfMemoryError raised inside the real trainer (by a patch, so it runs on a CPU) after a
    checkpoint: exit 2, one line naming the recipe keys to lower, the run failed with that reason."""
    script = "\n".join(
        [
            "import sys, torch, workbench.engine.training as t",
            f"real = t.Trainer.{method}",
            "def patched(self, *args, **kwargs):",
            f"    if self.progress.step >= {at_step}:",
            f"        raise torch.OutOfMemoryError({OOM!r})",
            "    return real(self, *args, **kwargs)",
            f"t.Trainer.{method} = patched",
            "from workbench.cli.main import main",
            "sys.argv = ['s2s-bench', *sys.argv[1:]]",
            "main()",
        ]
    )
    args = command("train", "reverse", "--headless", "--max-steps", "40", "--name", "oom",
                   "--runs-dir", str(tmp_path), sets=TINY)[3:]  # fmt: skip
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "300"}
    out = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    (line,) = [line for line in out.stderr.splitlines() if line.strip()]
    assert line.startswith("error: out of memory (it tried to allocate 2.00 GiB): the model or a batch")
    for key in ("model.hidden_size", "model.embedding_size", "tokenizer.vocab_size", "training.batch_size"):
        assert key in line
    run = RunFolder(tmp_path / "oom")
    status = run.status()
    assert status["state"] == "failed" and status["reason"] == line.removeprefix("error: ")
    assert max(steps(run.path)) < at_step + 5 and finite_checkpoints(run.path)
    resumed = run_cli("resume", str(run.path), "--max-steps", "40")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert steps(run.path) == list(range(5, 41, 5)) and run.status()["state"] == "finished"
    record_property("inputs", 1)
    record_property("shows", line.removeprefix("error: "))


def test_a_full_disk_met_inside_a_library_is_told_as_a_full_disk(tmp_path, record_property):
    """safetensors wraps the system's error in its own: still the run's one-line "no space left"."""
    from safetensors import SafetensorError

    from workbench.engine.errors import disk_error

    wrapped = SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
    assert "no space left on the disk of" in str(disk_error(wrapped, tmp_path))
    assert disk_error(SafetensorError("Error while deserializing header: HeaderTooLarge"), tmp_path) is None
    record_property("inputs", 2)
    record_property("shows", str(disk_error(wrapped, Path("RUNS"))))
