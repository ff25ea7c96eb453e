import json
import shutil
import socket

from workbench.engine.run_folder import RunFolder
from workbench.tui.run_watcher import RunHistory, RunWatcher
from workbench.tui.runs_index import RunsIndex

from .fixture_runs import write_run


def test_first_poll_reads_everything_and_the_next_only_what_was_appended(finished_run):
    run = RunFolder.open(finished_run)
    watcher, history = RunWatcher(run), RunHistory(run)
    assert history.apply(watcher.poll())
    assert history.recipe.name == "dates-demo"
    assert len(history.train) == 50 and len(history.valid) == 10 and len(history.validations) == 10
    assert history.state == "finished"
    assert not history.apply(watcher.poll())  # nothing new
    run.append_metrics({"kind": "train", "step": 1020, "loss": 0.1, "wall": 51.0})
    update = watcher.poll()
    assert [r["step"] for r in update.train] == [1020] and update.status is None and update.recipe is None


def test_a_line_still_being_written_is_read_once_complete(finished_run):
    run = RunFolder.open(finished_run)
    watcher = RunWatcher(run)
    watcher.poll()
    with open(run.metrics_path, "a") as f:
        f.write('{"kind": "train", "step": 1020, "lo')
    assert watcher.poll().train == []
    with open(run.metrics_path, "a") as f:
        f.write('ss": 0.1}\n')
    assert [r["step"] for r in watcher.poll().train] == [1020]


def test_status_changes_are_reported_once(live_run):
    run = RunFolder.open(live_run)
    watcher = RunWatcher(run)
    assert watcher.poll().status["state"] == "running"
    assert watcher.poll().status is None
    status = json.loads(run.status_path.read_text())
    run.status_path.write_text(json.dumps({**status, "state": "paused"}))
    assert watcher.poll().status["state"] == "paused"


def test_a_live_run_reports_its_trainers_memory(live_run):
    update = RunWatcher(RunFolder.open(live_run)).poll()
    assert update.memory_mb is not None and update.memory_mb > 1


def test_a_running_run_whose_process_died_reads_as_failed(runs_dir):
    path = write_run(runs_dir, name="dead", state="running", host=socket.gethostname(), pid=2**22 + 12345)
    history = RunHistory(RunFolder.open(path))
    history.apply(RunWatcher(history.run).poll())
    assert history.state == "failed" and not history.live


def test_best_and_eta(live_run):
    history = RunHistory(RunFolder.open(live_run))
    history.apply(RunWatcher(history.run).poll())
    assert history.metric == "exact"
    assert history.best() == (0.392, 400)
    # 20 steps per second (one record per second of wall time), 600 steps left
    assert abs(history.eta_seconds() - 30.0) < 1e-6


def test_the_eta_counts_to_the_limits_the_trainer_runs_to_not_the_recipes(live_run):
    """`--max-steps 410` on a recipe of 1000 steps: 10 steps left; `--max-minutes 1` from wall 5 s."""
    run = RunFolder.open(live_run)
    status = json.loads(run.status_path.read_text())
    run.status_path.write_text(json.dumps({**status, "max_steps": 410}))
    history = RunHistory(run)
    history.apply(RunWatcher(run).poll())
    assert history.recipe.training.max_steps == 1000
    assert abs(history.eta_seconds() - 0.5) < 1e-6
    run.status_path.write_text(json.dumps({**status, "max_steps": 0, "max_minutes": 1, "wall_at_start": 5.0}))
    history.apply(RunWatcher(run).poll())
    assert abs(history.eta_seconds() - 45.0) < 1e-6  # the last record is at wall 20 s


def test_runs_index_summarises_runs_newest_first_and_forgets_deleted_ones(runs_dir, finished_run, live_run):
    index = RunsIndex(runs_dir)
    summaries = index.refresh()
    assert [s.name for s in summaries] == ["dates-live", "dates-demo"]
    live, finished = summaries
    assert (live.state, live.step, live.live) == ("running", 400, True)
    assert (finished.state, finished.best, finished.metric, finished.recipe) == (
        "finished",
        0.98,
        "exact",
        "dates-demo",
    )
    shutil.rmtree(finished_run)
    assert [s.name for s in index.refresh()] == ["dates-live"]
