"""The run folder contract: creation, status, crash-safe metrics, control messages, locking."""

import json
import os
import subprocess
import sys

import pytest

from workbench.engine.atomic_files import append_json_line, read_json_lines
from workbench.engine.recipe import load_recipe
from workbench.engine.run_folder import RunFolder, RunFolderError, list_runs


@pytest.fixture
def run(tmp_path):
    return RunFolder.create(tmp_path / "runs", load_recipe("reverse"), name="r")


def test_create_writes_the_resolved_recipe_and_never_reuses_a_name(tmp_path, run):
    assert run.recipe() == load_recipe("reverse")
    again = RunFolder.create(tmp_path / "runs", load_recipe("reverse"), name="r")
    assert again.path.name == "r-2"
    assert [r.name for r in list_runs(tmp_path / "runs")] == ["r-2", "r"]


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", "..", "", " "])
def test_a_run_name_must_be_a_plain_folder_name(tmp_path, name):
    with pytest.raises(RunFolderError, match="a run name is a folder name"):
        RunFolder.create(tmp_path / "runs", load_recipe("reverse"), name=name)
    assert not (tmp_path / "escape").exists()


def test_create_where_no_folder_can_be_made_is_a_clear_error(tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(RunFolderError, match="cannot make a run folder there"):
        RunFolder.create(tmp_path / "a-file", load_recipe("reverse"), name="r")


def test_the_run_keeps_its_data_paths_absolute_so_it_resumes_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = load_recipe("reverse", ["data.kind=folder", "data.dir=corpus", "data.train_tsv=~/pairs.tsv"])
    run = RunFolder.create(tmp_path / "runs", recipe, name="r")
    monkeypatch.chdir("/")
    stored = run.recipe().data
    assert stored.dir == str(tmp_path / "corpus")
    assert stored.train_tsv == os.path.expanduser("~/pairs.tsv")
    assert stored.valid_tsv == ""  # empty paths stay empty


def test_open_refuses_what_is_not_a_run(tmp_path):
    with pytest.raises(RunFolderError, match="no such run folder"):
        RunFolder.open(tmp_path / "missing")
    with pytest.raises(RunFolderError, match="not a run folder"):
        RunFolder.open(tmp_path)


def test_reader_never_sees_half_a_metrics_line(run):
    append_json_line(run.metrics_path, {"step": 1})
    with open(run.metrics_path, "ab") as f:
        f.write(b'{"step": 2, "lo')  # a writer caught mid-line
    records, offset = run.read_metrics()
    assert records == [{"step": 1}]
    with open(run.metrics_path, "ab") as f:
        f.write(b'ss": 0.5}\n')
    more, _ = run.read_metrics(offset)
    assert more == [{"step": 2, "loss": 0.5}]


def test_torn_line_from_a_crash_is_skipped_not_fatal(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": \n{"c": 3}\n')
    assert read_json_lines(path)[0] == [{"a": 1}, {"c": 3}]


def test_control_messages_arrive_in_order_once(run):
    for command in ("pause", "checkpoint", "resume"):
        run.send_control(command)
    assert run.take_controls() == ["pause", "checkpoint", "resume"]
    assert run.take_controls() == []
    with pytest.raises(ValueError, match="unknown control command"):
        run.send_control("explode")


def test_status_keeps_start_time_and_reads_a_dead_trainer_as_failed(run):
    assert run.status() == {"state": "new"}
    lock = run.lock()
    run.write_status("running", step=3)
    started = run.status()["started"]
    assert run.status()["state"] == "running"
    run.write_status("running", step=4)
    assert run.status()["started"] == started and run.status()["step"] == 4
    lock.close()  # the trainer is gone without saying so
    status = run.status()
    assert status["state"] == "failed" and "died" in status["reason"]


def test_a_second_trainer_is_refused_while_the_first_holds_the_run(run):
    code = (
        "import sys, time; from workbench.engine.run_folder import RunFolder; "
        f"l = RunFolder({str(run.path)!r}).lock(); print('locked', flush=True); time.sleep(30)"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        assert run.trainer_alive()
        with pytest.raises(RunFolderError, match="another process"):
            run.lock()
    finally:
        child.kill()
        child.wait()
    assert not run.trainer_alive()
    run.lock().close()


def test_status_file_is_replaced_atomically(run):
    run.write_status("running")
    names = set(os.listdir(run.path))
    assert not [n for n in names if n.endswith(".tmp")]
    assert json.loads(run.status_path.read_text())["state"] == "running"
