"""The corpus cache under faults: a damaged or half-built entry (a truncated array, a changed byte, a build
cut short or killed with kill -9) is rebuilt, never trained on; a full disk or an unwritable cache location
is one line and leaves nothing behind; preparations of one entry that start together build it once."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time

import pytest
from test_corpus_cache import Phases, cli, corpus, tiny

from workbench.engine.data.cache import CorpusCache
from workbench.engine.data.prepare import prepare
from workbench.engine.data.store import StoreWriter
from workbench.engine.recipe import load_recipe


@pytest.mark.parametrize("damage", ["truncated", "one byte changed", "manifest gone"])
def test_a_damaged_entry_is_rebuilt_not_trained_on(tmp_path, damage, record_property):
    recipe, cache = tiny(corpus(tmp_path / "c", 200)), CorpusCache(tmp_path / "cache")
    good = prepare(recipe, cache)
    expected = [good.train.sentence("tgt", i) for i in range(200)]
    ids = good.folder / "train.tgt.ids"
    if damage == "truncated":
        os.truncate(ids, ids.stat().st_size // 2)
    elif damage == "one byte changed":
        data = bytearray(ids.read_bytes())
        data[10] ^= 0xFF
        ids.write_bytes(bytes(data))
    else:
        (good.folder / "entry.json").unlink()
    assert cache.check(good.key) is None
    phases = Phases()
    rebuilt = prepare(recipe, cache, report=phases)
    assert "reading" in phases.seen and rebuilt.key == good.key
    assert [rebuilt.train.sentence("tgt", i) for i in range(200)] == expected
    record_property("inputs", 1)
    record_property("shows", "nothing: the entry is found damaged and prepared again")


def test_a_build_cut_short_leaves_nothing_that_is_used_and_the_next_one_completes(
    tmp_path, monkeypatch, record_property
):
    recipe, cache = tiny(corpus(tmp_path / "c", 200)), CorpusCache(tmp_path / "cache")

    def killed(self, src, tgt):
        raise KeyboardInterrupt  # as a Ctrl-C mid-build

    with monkeypatch.context() as patch:
        patch.setattr(StoreWriter, "add", killed)
        with pytest.raises(KeyboardInterrupt):
            prepare(recipe, cache)
    assert not (tmp_path / "cache").exists()  # made for the build, and gone with it
    key = prepare(recipe, CorpusCache(tmp_path / "elsewhere")).key  # an entry's name is its key's
    stale = tmp_path / "cache" / f"{key}.partial-1"  # what a kill -9 leaves: never read, removed
    (stale / "tokenizer").mkdir(parents=True)
    (stale / "train.src.ids").write_bytes(b"\0" * 10)
    data = prepare(recipe, cache)
    assert len(data.train) == 200 and cache.check(data.key) is not None and not stale.exists()
    record_property("inputs", 2)
    record_property("shows", "nothing: the cut build leaves nothing; a kill -9's folder is removed")


def test_a_full_disk_while_preparing_is_one_line_and_keeps_nothing_half_built(
    tmp_path, monkeypatch, capsys, record_property
):
    folder = corpus(tmp_path / "c", 100)
    toml = tmp_path / "r.toml"
    toml.write_text(tiny(folder).to_toml())

    def full(self, src, tgt):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(StoreWriter, "add", full)
    code, _, err = cli(
        monkeypatch, capsys, "train", str(toml), "--headless", "--runs-dir", str(tmp_path / "r")
    )
    assert code == 2 and err.startswith("error: ") and err.count("error:") == 1, err
    assert "no space left on the disk while preparing the corpus; nothing half-built was kept" in err
    assert not (tmp_path / "r").exists()  # no run folder, no cache entry, no lock: nothing half-built
    record_property("inputs", 1)
    record_property("shows", err.removeprefix("error: ").replace(str(tmp_path / "r"), "RUNS"))


def test_an_unwritable_cache_location_is_one_line(tmp_path, monkeypatch, capsys, record_property):
    folder = corpus(tmp_path / "c", 50)
    toml = tmp_path / "r.toml"
    toml.write_text(tiny(folder).to_toml())
    (tmp_path / "a-file").write_text("")
    env = {"S2S_CORPUS_CACHE": str(tmp_path / "a-file" / "cache")}
    code, _, err = cli(monkeypatch, capsys, "prepare", str(toml), env=env)
    assert code == 2 and err.startswith("error: ") and "cannot write the corpus cache here" in err, err
    assert str(tmp_path / "a-file" / "cache") in err
    record_property("inputs", 1)
    record_property("shows", err.removeprefix("error: ").replace(str(tmp_path), "TMP"))


def test_a_preparation_that_finds_another_building_the_same_entry_waits_says_so_and_builds_nothing(
    tmp_path, record_property
):
    """This process builds; a `s2s-bench prepare` of the same corpus started meanwhile must wait for it,
    say so, and then find the entry built instead of building it again."""
    toml = tmp_path / "r.toml"
    toml.write_text(tiny(corpus(tmp_path / "c", 300)).to_toml())
    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "workbench", "prepare", str(toml), "--runs-dir", str(runs)]
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "300"}
    other: list[subprocess.Popen] = []

    def start_the_other_while_building(phase: str, *progress) -> None:
        if not other:  # the first report: this process holds the entry's lock and is building
            other.append(
                subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            )
            said = other[0].stderr.readline()  # returns once the other process has said why it waits
            assert f"waiting for process {os.getpid()}, which is preparing the same corpus" in said, said

    built = prepare(load_recipe(toml), CorpusCache(runs / ".corpora"), report=start_the_other_while_building)
    out, err = other[0].communicate(timeout=300)
    assert other[0].returncode == 0, err
    assert built.built and f"{built.key}  " in out and "(found in the cache)" in out  # it built nothing
    assert len(CorpusCache(runs / ".corpora").entries()) == 1
    record_property("inputs", 2)
    record_property("shows", "waiting for process PID, which is preparing the same corpus")


@pytest.mark.slow
def test_kill_9_in_the_middle_of_a_build_and_the_next_preparation_rebuilds(tmp_path, record_property):
    folder = corpus(tmp_path / "c", 60_000)
    recipe = tiny(folder)
    toml = tmp_path / "r.toml"
    toml.write_text(recipe.to_toml())
    command = [sys.executable, "-m", "workbench", "prepare", str(toml), "--runs-dir", str(tmp_path / "runs")]
    victim = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cache = tmp_path / "runs" / ".corpora"
    deadline = time.monotonic() + 60
    while not list(cache.glob("*.partial-*/train.src.ids")) and time.monotonic() < deadline:
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert list(cache.glob("*.partial-*")), "the build was killed before it wrote anything"
    assert CorpusCache(cache).entries() == []  # a partial folder is never an entry
    data = prepare(load_recipe(toml), CorpusCache(cache))
    assert len(data.train) == 60_000 and not list(cache.glob("*.partial-*"))
    record_property("inputs", 1)
    record_property("shows", "nothing: the next preparation removes the half-built folder and rebuilds")
