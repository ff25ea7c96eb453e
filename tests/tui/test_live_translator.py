import os

import pytest

from workbench.engine.run_folder import RunFolder
from workbench.tui.live_translator import LiveTranslator

from .fake_translator import FakeTranslator
from .fixture_runs import write_run


class CountingFactory:
    def __init__(self):
        self.loads: list[str] = []

    def __call__(self, run, checkpoint, device):
        self.loads.append(checkpoint)
        return FakeTranslator(checkpoint)


def test_decode_returns_translations_with_attention_and_the_checkpoint_step(finished_run):
    live = LiveTranslator(RunFolder.open(finished_run), CountingFactory())
    decoded = live.decode("Saturday, November 21, 2026", beam_size=5, n_best=3)
    assert decoded.checkpoint == "best" and decoded.step == 1000
    assert [t.text for t in decoded.translations][0] == "samedi 21 novembre 2026"
    assert len(decoded.translations) == 3
    best = decoded.translations[0]
    assert len(best.attention) == len(best.tgt_pieces) + 1


def test_the_translator_is_reloaded_only_when_its_checkpoint_file_changes(finished_run):
    factory = CountingFactory()
    run = RunFolder.open(finished_run)
    live = LiveTranslator(run, factory)
    live.decode("Monday, March 3, 2025", 1, 1)
    live.decode("Monday, March 3, 2025", 1, 1)
    assert factory.loads == ["best"]
    weights = run.checkpoints_dir / "best.safetensors"
    stat = weights.stat()
    os.utime(weights, (stat.st_atime, stat.st_mtime + 10))  # the trainer saved a new best
    live.decode("Monday, March 3, 2025", 1, 1)
    assert factory.loads == ["best", "best"]
    live.decode("Monday, March 3, 2025", 1, 1, checkpoint="last")
    assert factory.loads == ["best", "best", "last"]


def test_best_falls_back_to_last_and_no_checkpoint_is_a_clear_error(runs_dir):
    path = write_run(runs_dir, name="young", checkpoint=False)
    run = RunFolder.open(path)
    live = LiveTranslator(run, CountingFactory())
    with pytest.raises(FileNotFoundError, match="no checkpoint yet"):
        live.decode("Monday, March 3, 2025", 1, 1)
    (run.checkpoints_dir / "last.safetensors").write_bytes(b"x")
    assert live.decode("Monday, March 3, 2025", 1, 1).checkpoint == "last"


def test_a_failed_reload_keeps_the_previous_model(finished_run):
    run = RunFolder.open(finished_run)
    calls = []

    def flaky(run, checkpoint, device):
        calls.append(checkpoint)
        if len(calls) == 2:
            raise ValueError("incomplete checkpoint")
        return FakeTranslator(checkpoint)

    live = LiveTranslator(run, flaky)
    first = live.translator("best")[0]
    weights = run.checkpoints_dir / "best.safetensors"
    os.utime(weights, (weights.stat().st_atime, weights.stat().st_mtime + 10))
    assert live.translator("best")[0] is first  # mid-save: keep decoding with the old weights
    assert live.translator("best")[0] is not first  # and retry on the next call
