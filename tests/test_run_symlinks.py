"""Symbolic links inside a run folder are never followed: deleting a run (the Runs screen's x) removes the
links, not what they point at, and copying a run leaves them out."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from workbench.engine.recipe import load_recipe
from workbench.engine.run_folder import RunFolder
from workbench.tui.app import S2SBenchApp
from workbench.tui.components.runs_table import RunsTable
from workbench.tui.screens.confirm import ConfirmScreen


@pytest.fixture
def outside(tmp_path) -> Path:
    """Files outside the runs folder, which links in a run point at."""
    folder = tmp_path / "outside"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "corpus.txt").write_text("keep me\n")
    (folder / "secret.txt").write_text("keep me too\n")
    return folder


def linked_run(runs: Path, outside: Path, name: str = "linked") -> RunFolder:
    """A finished run whose folder holds links to a file and a folder outside, at its top and deeper."""
    run = RunFolder.create(runs, load_recipe("reverse"), name=name)
    run.write_status("finished", step=10)
    (run.path / "notes.txt").symlink_to(outside / "secret.txt")
    (run.path / "data").symlink_to(outside / "data", target_is_directory=True)
    (run.checkpoints_dir / "best.safetensors").symlink_to(outside / "secret.txt")
    (run.tokenizer_dir / "up").symlink_to(outside, target_is_directory=True)
    return run


def untouched(outside: Path) -> bool:
    return (outside / "data" / "corpus.txt").read_text() == "keep me\n" and (
        outside / "secret.txt"
    ).read_text() == "keep me too\n"


async def delete_on_the_runs_screen(runs: Path) -> list[str]:
    """Highlight the only run, press delete, confirm; the runs listed afterwards."""
    app = S2SBenchApp(runs, recipes={}, sweeps={})
    async with app.run_test() as pilot:
        await pilot.pause()
        await app.screen._read_runs().wait()
        await pilot.pause()
        table = app.screen.query_one(RunsTable)
        table.focus()
        await pilot.press("delete")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.click("#confirm")
        await app.workers.wait_for_complete()
        await pilot.pause()
        await app.screen._read_runs().wait()
        await pilot.pause()
        return [s.name for s in table.summaries]


def test_deleting_a_run_on_the_runs_screen_removes_its_links_not_their_targets(
    tmp_path, outside, record_property
):
    run = linked_run(tmp_path / "runs", outside)
    assert asyncio.run(delete_on_the_runs_screen(tmp_path / "runs")) == []
    assert not run.path.exists() and untouched(outside)
    record_property("inputs", 4)
    record_property("shows", "the run is deleted; what its links point at stays")


def test_a_run_folder_that_is_itself_a_link_loses_only_the_link(tmp_path, outside, record_property):
    real = linked_run(tmp_path / "elsewhere", outside, name="real")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "alias").symlink_to(real.path, target_is_directory=True)
    assert asyncio.run(delete_on_the_runs_screen(tmp_path / "runs")) == []
    assert not (tmp_path / "runs" / "alias").is_symlink()
    assert (real.path / "recipe.toml").is_file() and untouched(outside)
    record_property("inputs", 1)
    record_property("shows", "the link is deleted; the folder it points at stays")


def test_a_copy_of_a_run_leaves_its_links_its_lock_and_its_control_messages_behind(
    tmp_path, outside, record_property
):
    run = linked_run(tmp_path / "runs", outside)
    run.lock().close()
    run.send_control("stop")
    copy = run.copy_to(tmp_path / "copy" / "linked")
    copied = {p.relative_to(copy.path).as_posix() for p in copy.path.rglob("*")}
    assert copied == {"recipe.toml", "status.json", "checkpoints", "tokenizer", "control"}
    assert copy.take_controls() == [] and copy.status()["state"] == "finished"
    assert not any(p.is_symlink() for p in copy.path.rglob("*")) and untouched(outside)
    record_property("inputs", 4)
    record_property("shows", "the copy holds the run's own files only")
