"""Sweep files: expansion to named points, validation before anything starts, the queue in the runs folder."""

import json
import math
import os
import subprocess
import sys

import pytest

from workbench.engine.run_folder import RunFolder
from workbench.jobs.sweep import SweepError, builtin_sweeps, load_sweep
from workbench.jobs.sweep_queue import SweepQueue, SweepQueueError, list_sweeps, queue_sweep


def sweep_file(tmp_path, text, name="grid.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


GRID = """
base = "reverse"
[set]
"training.max_steps" = 30
[axes]
"model.cell" = ["gru", "lstm"]
"training.lr" = [3e-4, 1e-3, 3e-3]
"""


def s2s(*args, cwd=None):
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "workbench", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


def test_a_grid_is_every_combination_in_order_named_from_the_sweep_and_its_values(tmp_path):
    sweep = load_sweep(sweep_file(tmp_path, GRID))
    points = sweep.points()
    assert sweep.name == "grid" and len(points) == 6
    assert [p.values for p in points[:2]] == [
        {"model.cell": "gru", "training.lr": 3e-4},
        {"model.cell": "gru", "training.lr": 1e-3},
    ]
    assert [p.run_name for p in points[:3]] == [
        "grid-gru-lr=0.0003",
        "grid-gru-lr=0.001",
        "grid-gru-lr=0.003",
    ]
    last = points[-1].recipe
    assert (last.model.cell, last.training.lr, last.training.max_steps) == ("lstm", 3e-3, 30)
    assert sweep.base_recipe.training.max_steps == 30 and sweep.base_recipe.model.cell == "lstm"


def test_set_overrides_apply_to_every_run_and_may_not_touch_an_axis(tmp_path):
    path = sweep_file(tmp_path, GRID)
    sweep = load_sweep(path, ["model.hidden_size=24"])
    assert {p.recipe.model.hidden_size for p in sweep.points()} == {24}
    with pytest.raises(SweepError, match="varies 'model.cell'"):
        load_sweep(path, ["model.cell=rnn"])


def test_random_points_are_seeded_distinct_and_drawn_within_a_continuous_axis(tmp_path):
    text = """
base = "reverse"
samples = 5
seed = 7
[axes]
"model.cell" = ["gru", "lstm"]
"training.lr" = { log_uniform = [1e-4, 3e-3] }
"""
    path = sweep_file(tmp_path, text)
    first, again = load_sweep(path).points(), load_sweep(path).points()
    assert [p.values for p in first] == [p.values for p in again]
    lrs = [p.values["training.lr"] for p in first]
    assert len(first) == 5 and len(set(lrs)) == 5 and all(1e-4 <= lr <= 3e-3 for lr in lrs)
    assert len({p.run_name for p in first}) == 5
    grid = load_sweep(sweep_file(tmp_path, GRID.replace('base = "reverse"', 'base = "reverse"\nsamples = 4')))
    assert len({tuple(p.values.values()) for p in grid.points()}) == 4  # four distinct points of six


@pytest.mark.parametrize(
    "text, message",
    [
        (
            'base = "reverse"\n[axes]\n"model.cel" = ["gru"]',
            "unknown key 'model.cel' (did you mean 'model.cell'?)",
        ),
        ('base = "reverse"\n[axes]\n"model.cell" = []', "axes 'model.cell' is empty"),
        ('base = "reverse"\n[axes]\n"training.lr" = ["fast"]', "'training.lr' must be float, got 'fast'"),
        ('base = "reverse"\n[axes]\n"model.cell" = ["gru", "transformer"]', "'model.cell' must be one of"),
        ('base = "no-such-recipe"\n[axes]\n"model.cell" = ["gru"]', "'base' = 'no-such-recipe'"),
        ('base = "../missing.toml"\n[axes]\n"model.cell" = ["gru"]', "no such recipe file"),
        ('base = "reverse"\n[axes]\n"training.lr" = { log_uniform = [1e-4, 1e-3] }', "needs random points"),
        ('base = "reverse"\nsamples = 2\n[axes]\n"training.lr" = { log_uniform = [0, 1] }', "0 < lo"),
        ('base = "reverse"\nsamples = 9\n[axes]\n"model.cell" = ["gru", "lstm"]', "only 2 points"),
        ('base = "reverse"\n[axes]', "[axes] is empty"),
        ('[axes]\n"model.cell" = ["gru"]', "'base' is required"),
        ('base = "reverse"\nsample = 3\n[axes]\n"model.cell" = ["gru"]', "unknown key 'sample'"),
        ('base = "reverse"\n[set]\n"model.cell" = "gru"\n[axes]\n"model.cell" = ["gru"]', "both in [set]"),
    ],
)
def test_a_bad_sweep_file_is_one_error_naming_the_file_and_the_key(tmp_path, text, message):
    path = sweep_file(tmp_path, text, "bad.toml")
    with pytest.raises(SweepError) as caught:
        load_sweep(path)
    assert message in str(caught.value) and str(path) in str(caught.value)


def test_a_combination_the_recipe_forbids_is_reported_with_its_run(tmp_path):
    # reverse is unidirectional: dot attention is fine there, not with a bidirectional encoder
    path = sweep_file(tmp_path, 'base = "reverse"\n[axes]\n"model.bidirectional" = [false, true]')
    with pytest.raises(SweepError, match=r"run grid-bidirectional=true.*'model.attention' = 'dot' needs"):
        load_sweep(path)


@pytest.mark.parametrize(
    "text",
    [
        '[axes]\n"model.cel" = ["gru"]',
        '[axes]\n"model.cell" = []',
        '[axes]\n"training.lr" = ["fast"]',
    ],
)
def test_the_cli_exits_2_on_a_bad_sweep_file_and_queues_nothing(tmp_path, text):
    path = sweep_file(tmp_path, 'base = "reverse"\n' + text, "bad.toml")
    done = s2s("sweep", str(path), "--runs-dir", str(tmp_path / "runs"))
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and str(path) in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_the_cli_exits_2_on_a_missing_base_recipe(tmp_path):
    path = sweep_file(tmp_path, 'base = "dates-en-frr"\n[axes]\n"model.cell" = ["gru"]', "bad.toml")
    done = s2s("sweep", str(path), "--runs-dir", str(tmp_path / "runs"))
    assert done.returncode == 2 and "did you mean 'dates-en-fr'?" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stop", "nope"], "no sweep named 'nope'"),
        (["--resume", "nope"], "no sweep named 'nope'"),
        (["--stop", "a", "--resume", "a"], "give one of a sweep file, --resume NAME and --stop NAME"),
    ],
)
def test_stop_and_resume_name_a_queued_sweep_one_at_a_time(tmp_path, args, message):
    done = s2s("sweep", *args, "--runs-dir", str(tmp_path / "runs"))
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_a_sweep_over_a_bad_corpus_exits_2_before_anything_is_queued(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "train.en").write_text("one\ntwo\n")
    (corpus / "train.fr").write_text("un\n")
    (corpus / "valid.en").write_text("one\n")
    (corpus / "valid.fr").write_text("un\n")
    sets = f'[set]\n"data.kind" = "folder"\n"data.dir" = "{corpus}"\n"data.src" = "en"\n"data.tgt" = "fr"\n'
    path = sweep_file(tmp_path, f'base = "reverse"\n{sets}[axes]\n"model.cell" = ["gru", "lstm"]')
    done = s2s("sweep", str(path), "--runs-dir", str(tmp_path / "runs"))
    assert done.returncode == 2 and "has 2 lines but" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists()


def test_a_sweep_of_more_than_64_runs_asks_first(tmp_path):
    path = sweep_file(tmp_path, 'base = "reverse"\n[axes]\n"seed" = [' + ", ".join(map(str, range(65))) + "]")
    done = s2s("sweep", str(path), "--runs-dir", str(tmp_path / "runs"))
    assert done.returncode == 2 and "65 runs; pass --yes" in done.stderr
    assert not (tmp_path / "runs").exists()


def test_queueing_makes_a_run_folder_per_point_recording_its_sweep_and_values(tmp_path):
    sweep = load_sweep(sweep_file(tmp_path, GRID))
    queue = queue_sweep(tmp_path / "runs", sweep, parallel=2)
    runs = queue.runs()
    assert [r.name for r in runs] == [p.run_name for p in sweep.points()]
    assert runs[4].sweep_info() == {
        "sweep": "grid",
        "values": {"model.cell": "lstm", "training.lr": 1e-3},
        "base": "reverse",
        "index": 4,
    }
    assert runs[4].recipe().model.cell == "lstm" and runs[4].status()["state"] == "queued"
    assert "started" not in runs[4].status()  # a run starts when it leaves the queue
    assert queue.varied_keys() == ["model.cell", "training.lr"] and queue.read()["parallel"] == 2
    assert queue.progress().queued == 6 and not queue.runner_alive()
    assert queue.base_recipe().training.max_steps == 30
    assert [q.name for q in list_sweeps(tmp_path / "runs")] == ["grid"]
    assert (
        SweepQueue.open(tmp_path / "runs", "grid").sweep().points()[4].values
        == runs[4].sweep_info()["values"]
    )
    with pytest.raises(SweepQueueError, match="already queued"):
        queue_sweep(tmp_path / "runs", sweep)


def test_a_queued_run_can_be_cancelled_and_a_started_one_cannot(tmp_path):
    queue = queue_sweep(tmp_path / "runs", load_sweep(sweep_file(tmp_path, GRID)))
    first, second = queue.runs()[:2]
    done = s2s("control", str(first.path), "cancel")
    assert done.returncode == 0, done.stderr
    assert first.status()["state"] == "cancelled" and queue.read()["cancelled"] == [first.name]
    assert queue.progress().cancelled == 1 and queue.progress().queued == 5
    second.write_status("finished", reason="reached 30 steps")
    with pytest.raises(SweepQueueError, match="only a queued run can be cancelled; it is finished"):
        queue.cancel(second.name)
    stopped = s2s("control", str(queue.runs()[2].path), "stop")
    assert stopped.returncode == 2 and "cancel it with" in stopped.stderr


def test_cancel_is_for_the_runs_of_a_sweep(tmp_path):
    run = RunFolder.create(tmp_path / "runs", load_sweep(sweep_file(tmp_path, GRID)).base_recipe, "solo")
    done = s2s("control", str(run.path), "cancel")
    assert done.returncode == 2 and "not a run of a sweep" in done.stderr


def test_the_shipped_sweep_is_dates_en_fr_over_cell_and_attention():
    sweep = load_sweep(builtin_sweeps()["dates-cell-attention"])
    assert sweep.name == "dates-cell-attention" and sweep.base == "dates-en-fr"
    assert len(sweep.points()) == 6 and list(sweep.axes) == ["model.cell", "model.attention"]
    assert math.prod(len(v) for v in sweep.axes.values()) == 6


def test_the_stored_sweep_loads_back_to_the_same_points(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "mine.toml").write_text(
        (builtin_sweeps()["dates-cell-attention"].parent.parent / "reverse.toml").read_text()
    )
    path = sweep_file(tmp_path / "sub", GRID.replace('"reverse"', '"mine.toml"'), "relative.toml")
    sweep = load_sweep(path, ["seed=3"])
    queue = queue_sweep(tmp_path / "runs", sweep)
    stored = json.loads(json.dumps([p.values for p in queue.sweep().points()]))
    assert stored == [p.values for p in sweep.points()]
    assert queue.base_recipe().seed == 3 and queue.sweep().base_path.is_absolute()


def test_runs_go_one_per_gpu_by_default_and_share_the_cores():
    from workbench.engine.devices import usable_cpus
    from workbench.jobs.sweep_runner import plan_slots

    cores = len(usable_cpus())
    gpus = plan_slots(None, ["cuda:0", "cuda:2"])
    assert (gpus.parallel, gpus.threads) == (2, max(1, cores // 2))
    assert plan_slots(4, ["cuda:0", "cuda:2"]).parallel == 4
    assert plan_slots(2, ["cpu"]).threads == max(1, cores // 2)
    assert plan_slots(cores + 5, ["cpu"]).threads == 1


def test_a_new_runner_places_runs_on_the_gpus_that_a_dead_runners_live_trainers_leave_free(
    tmp_path, monkeypatch
):
    from workbench.jobs import sweep_runner

    queue = queue_sweep(tmp_path / "runs", load_sweep(sweep_file(tmp_path, GRID)))
    orphan, *rest = queue.runs()
    held = orphan.lock()  # a trainer a killed runner started, still training on cuda:1
    orphan.write_status("running", device="cuda (GPU)", torch_device="cuda:1")
    started = []

    class Trainer:
        def poll(self):
            return None

    def start_training(run, device, threads=None):
        started.append((run.name, device))
        return Trainer()

    monkeypatch.setattr(sweep_runner, "start_training", start_training)
    monkeypatch.setattr(sweep_runner, "_wait_until_held", lambda runs, children: None)
    runner = sweep_runner.QueueRunner(queue, sweep_runner.Slots(["cuda:0", "cuda:1", "cuda:2"], 3, None))
    try:
        assert runner.step()
    finally:
        held.close()
    assert started == [(rest[0].name, "cuda:0"), (rest[1].name, "cuda:2")]  # cuda:1 is taken


def test_a_runner_counts_the_gpus_of_trainers_outside_its_sweep_and_caps_every_trainers_threads(
    tmp_path, monkeypatch
):
    from workbench.engine.recipe import load_recipe
    from workbench.jobs import sweep_runner

    monkeypatch.setattr(sweep_runner, "usable_cpus", lambda: list(range(8)))
    queue = queue_sweep(tmp_path / "runs", load_sweep(sweep_file(tmp_path, GRID)))
    plain = RunFolder.create(tmp_path / "runs", load_recipe("reverse"), name="plain")  # `s2s-bench train`
    held = plain.lock()
    plain.write_status("running", device="cuda (GPU)", torch_device="cuda:0")
    started = []

    class Trainer:
        def poll(self):
            return None

    def start_training(run, device, threads=None):
        started.append((device, threads))
        return Trainer()

    monkeypatch.setattr(sweep_runner, "start_training", start_training)
    monkeypatch.setattr(sweep_runner, "_wait_until_held", lambda runs, children: None)
    runner = sweep_runner.QueueRunner(queue, sweep_runner.plan_slots(None, ["cuda:0", "cuda:1"]))
    try:
        assert runner.step()
    finally:
        held.close()
    assert started == [("cuda:1", 4), ("cuda:0", 4)]  # cuda:0 is taken: the second run shares it


def test_devices_this_machine_lacks_are_refused_before_anything_is_queued(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    path = sweep_file(tmp_path, GRID)
    done = s2s("sweep", str(path), "--devices", "0,2", "--runs-dir", str(tmp_path / "runs"))
    assert done.returncode == 2 and "no CUDA GPU" in done.stderr and not (tmp_path / "runs").exists()


LADDER = """
base = "reverse"
[set]
"training.max_steps" = 30
[[rungs]]
name = "as-written"
[[rungs]]
name = "lstm"
description = "an LSTM instead of a GRU"
set = { "model.cell" = "lstm" }
[[rungs]]
name = "wider"
[rungs.set.model]
hidden_size = 48
"""


def test_a_ladder_applies_each_rung_on_top_of_the_rungs_before_it(tmp_path):
    sweep = load_sweep(sweep_file(tmp_path, LADDER, "ladder.toml"))
    points = sweep.points()
    assert [p.run_name for p in points] == ["ladder-1-as-written", "ladder-2-lstm", "ladder-3-wider"]
    assert [p.values for p in points] == [
        {},
        {"model.cell": "lstm"},
        {"model.cell": "lstm", "model.hidden_size": 48},
    ]
    base = points[0].recipe
    assert (points[2].recipe.model.cell, points[2].recipe.model.hidden_size) == ("lstm", 48)
    assert (base.model.cell, base.model.hidden_size) != ("lstm", 48)
    assert {p.recipe.training.max_steps for p in points} == {30}
    assert sweep.varied() == ["model.cell", "model.hidden_size"]
    with pytest.raises(SweepError, match="varies 'model.cell' \\(a rung sets it\\)"):
        load_sweep(sweep.path, ["model.cell=gru"])


def test_a_stored_ladder_loads_back_to_the_same_points(tmp_path):
    sweep = load_sweep(sweep_file(tmp_path, LADDER, "ladder.toml"))
    queue = queue_sweep(tmp_path / "runs", sweep)
    assert [p.values for p in queue.sweep().points()] == [p.values for p in sweep.points()]
    assert json.loads(queue.queue_path.read_text())["varied"] == ["model.cell", "model.hidden_size"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[rungs]]\nname = "a"\n[axes]\n"model.cell" = ["gru"]', "not both"),
        ('samples = 2\n[[rungs]]\nname = "a"', "takes none"),
        ('[[rungs]]\nname = "a"\n[[rungs]]\nname = "a"\nset = { "model.cell" = "lstm" }', "taken by"),
        ('[[rungs]]\nname = "a"\n[[rungs]]\nname = "b"', "rung 2 (b): 'set' must be a table"),
        ('[[rungs]]\nname = "a"\nsets = {}', "unknown key 'sets'"),
        ('[[rungs]]\nname = "a b"', "'name' must be"),
        ('[[rungs]]\nname = "a"\n[[rungs]]\nname = "b"\nset = { "model.cel" = "lstm" }', "model.cel"),
    ],
)
def test_a_bad_ladder_is_one_error_naming_the_file_and_the_rung(tmp_path, text, message):
    path = sweep_file(tmp_path, 'base = "reverse"\n' + text, "bad.toml")
    with pytest.raises(SweepError) as caught:
        load_sweep(path)
    assert message in str(caught.value) and str(path) in str(caught.value)
