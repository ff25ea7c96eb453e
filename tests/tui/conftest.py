import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench.engine.recipe import recipe_from_dict
from workbench.engine.run_folder import RunFolder
from workbench.jobs.commands import TrainerCommand
from workbench.tui.app import S2SBenchApp

from .fake_translator import fake_factory
from .fixture_runs import STARTED, SWEEP_NAME, recipe_dict, write_run, write_sweep, write_sweep_file


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    """Times on screen are local: pin the zone so that snapshots match everywhere."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    time.tzset()


@pytest.fixture
def runs_dir(tmp_path):
    folder = tmp_path / "runs"
    folder.mkdir()
    return folder


@pytest.fixture
def finished_run(runs_dir):
    return write_run(runs_dir)


@pytest.fixture
def live_run(runs_dir):
    """A run whose status says running, its trainer's lock held by this process (so it reads as alive)."""
    path = write_run(
        runs_dir,
        name="dates-live",
        state="running",
        steps=400,
        host=socket.gethostname(),
        pid=os.getpid(),
        started=1767229200.0,
    )
    lock = RunFolder(path).lock()
    yield path
    lock.close()


class FakeLauncher:
    """Stands in for the trainer's process: records what it was asked and marks the run as running."""

    def __init__(self):
        self.launched: list[tuple[RunFolder, str]] = []
        self.commands: list[TrainerCommand] = []
        self.processes: list[int] = []

    def __call__(self, command: TrainerCommand):
        run = command.run
        self.commands.append(command)
        self.launched.append((run, command.device))
        self.processes.append(command.nproc or 1)
        status = {"state": "running", "pid": 1, "host": "fixture-host", "step": 0, "started": STARTED + 7200}
        run.status_path.write_text(json.dumps(status))
        return None


@pytest.fixture
def launcher():
    return FakeLauncher()


class FakeSweepLauncher:
    """Stands in for a sweep's queue runner: records the queues it was asked to run; starts nothing."""

    def __init__(self):
        self.launched = []

    def __call__(self, queue):
        self.launched.append(queue)
        return None


@pytest.fixture
def sweep_launcher():
    return FakeSweepLauncher()


@pytest.fixture
def sweeps(recipes):
    """The sweep files the app offers: one 2 x 3 grid over the fixture dates recipe."""
    base = recipes["dates-en-fr"]
    return {SWEEP_NAME: write_sweep_file(base.parent, base.name)}


@pytest.fixture
def sweep_runs(runs_dir, sweeps):
    """The fixture sweep queued in the runs folder, its runs in every state (fixture_runs.SWEEP_RESULTS)."""
    return write_sweep(runs_dir, sweeps[SWEEP_NAME])


@pytest.fixture
def recipes(tmp_path):
    folder = tmp_path / "recipes"
    folder.mkdir()
    out = {}
    for name, model in (("dates-en-fr", {}), ("dates-lstm", {"cell": "lstm", "attention": "general"})):
        path = folder / f"{name}.toml"
        path.write_text(recipe_from_dict(recipe_dict(name, **model)).to_toml())
        out[name] = path
    return out


@pytest.fixture
def make_app(runs_dir, recipes, sweeps, launcher, sweep_launcher):
    def make(**kwargs) -> S2SBenchApp:
        kwargs.setdefault("translator_factory", fake_factory)
        return S2SBenchApp(
            runs_dir,
            recipes=recipes,
            sweeps=sweeps,
            launcher=launcher,
            sweep_launcher=sweep_launcher,
            **kwargs,
        )

    return make


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A small real run of the dates recipe, trained once per test session (about 25 s on 2 idle cores)."""
    runs_dir = tmp_path_factory.mktemp("trained") / "runs"
    script = Path(sys.executable).with_name("s2s-bench")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "workbench"]
    overrides = [
        "model.hidden_size=64",
        "model.embedding_size=32",
        "data.train_size=4000",
        "data.valid_size=100",
        "training.valid_every=100",
        "training.threads=1",
    ]
    command += [
        "train",
        "dates-en-fr",
        "--headless",
        "--runs-dir",
        str(runs_dir),
        "--name",
        "small",
        "--max-steps",
        "300",
    ]
    for override in overrides:
        command += ["--set", override]
    subprocess.run(command, check=True, capture_output=True, timeout=1800)
    return runs_dir / "small"
