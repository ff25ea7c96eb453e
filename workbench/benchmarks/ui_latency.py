"""The `ui` benchmark: how the TUI responds while a trainer runs beside it.

The app runs headless in this process on a copy of a trained run; the copy's trainer runs in its own
process, as in real use, so training competes for the cores while sentences are typed into the decode
panel. Measured:

- event-loop lag: a probe task sleeps 10 ms again and again; how much later than asked it wakes;
- keystroke-to-translation: from the last keystroke of a sentence to its translation being put on the
  decode screen (the debounce, the decode in its thread, and the hand-back to the event loop);
- decode: the model call alone, in its thread.

A keystroke is `Input.insert_text_at_cursor`, what the input does with a key, minus the terminal.
A benchmark, not a test: it reports numbers and asserts none (CI runs a seconds-long smoke).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input

from workbench.engine.errors import UserError
from workbench.engine.run_folder import RunFolder, RunFolderError
from workbench.tui.app import SYSTEM_INTERVAL_S, S2SBenchApp
from workbench.tui.live_translator import Decoded
from workbench.tui.screens.decode import DecodeScreen

MONTHS = ("January February March April May June July August September October November December").split()
DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
LAG_PROBE_S = 0.01
START_TIMEOUT_S = 180.0  # the trainer's first step, or the model's first load, on busy cores
TRANSLATION_TIMEOUT_S = 10.0  # after the last keystroke: a sentence past this counts as missed
STOP_TIMEOUT_S = 60.0
TRAIN_ON_STEPS = 1_000_000  # the bench stops the copy's trainer itself when typing is done

Progress = Callable[[str], None] | None


def bench_ui(
    run: Path,
    sentences: int = 20,
    key_interval_s: float = 0.08,
    train: bool = True,
    *,
    device: str = "cpu",
    system: bool = True,
    progress: Progress = None,
) -> dict[str, Any]:
    """Type `sentences` sentences into the decode panel of a copy of `run` (which needs a checkpoint),
    one key every `key_interval_s`, while the copy trains on (`train`); JSON-able numbers back.
    `system`: the app reads the machine (the system view's sampling) as it does in use; off, it does not.

    The copy lives in a temporary folder removed at the end; its trainer is stopped (then killed).
    """
    source = RunFolder.open(run)
    if not (source.has_checkpoint("best") or source.has_checkpoint("last")):
        raise RunFolderError(f"{source.path}: no checkpoint yet (train the run to its first validation)")
    log = progress or (lambda message: None)
    with tempfile.TemporaryDirectory(prefix="s2s-ui-bench-") as tmp:
        copy = source.copy_to(Path(tmp) / "runs" / source.name)
        trainer = None
        try:
            start_step = int(source.read_status_file().get("step") or 0)
            if train:
                log(f"starting a trainer on a copy of {source.name}")
                # Past the run's own step limit: a finished run's copy trains on instead of stopping at once.
                trainer = start_trainer(copy, device, max_steps=start_step + TRAIN_ON_STEPS)
            texts = typed_sentences(copy, sentences)
            app = S2SBenchApp(
                copy.path.parent, run=copy.path, system_interval=SYSTEM_INTERVAL_S if system else 0
            )
            probe = _Probe(app, copy, texts, key_interval_s, trainer, log)
            probe.start_step = start_step
            asyncio.run(probe.drive())
        finally:
            if trainer is not None:
                log("stopping the trainer")
                stop_trainer(copy, trainer)
    return probe.result(train, key_interval_s)


def start_trainer(run: RunFolder, device: str, max_steps: int | None = None) -> subprocess.Popen:
    from workbench.jobs.launch import start_training

    return start_training(run, device=device, max_steps=max_steps)


def stop_trainer(run: RunFolder, trainer: subprocess.Popen, timeout: float = STOP_TIMEOUT_S) -> None:
    """Ask the trainer to stop through the run folder; kill its process group if it does not."""
    if trainer.poll() is None:
        try:
            run.send_control("stop")
            trainer.wait(timeout=timeout)
        except (OSError, subprocess.TimeoutExpired):
            pass
    if trainer.poll() is None:
        try:
            os.killpg(trainer.pid, signal.SIGKILL)  # it runs in its own session (start_training)
        except ProcessLookupError:
            pass
        trainer.wait(timeout=30)


def typed_sentences(run: RunFolder, count: int) -> list[str]:
    """Distinct sources of the run's validation samples (its own kind of input), topped up with dates."""
    seen: dict[str, None] = {}
    try:
        validations, _ = run.read_samples()
    except OSError:
        validations = []
    for validation in reversed(validations):
        for sample in validation.get("samples") or []:
            text = str(sample.get("src") or "").strip()
            if text and len(seen) < count:
                seen.setdefault(text, None)
    rng = random.Random(0)
    while len(seen) < count:
        date = f"{rng.choice(DAYS)}, {rng.choice(MONTHS)} {rng.randint(1, 28)}, {rng.randint(1950, 2049)}"
        seen.setdefault(date, None)
    return list(seen)


class _Probe:
    """Drives the app and collects the samples."""

    def __init__(
        self,
        app: S2SBenchApp,
        run: RunFolder,
        texts: list[str],
        key_interval_s: float,
        trainer: subprocess.Popen | None,
        log: Callable[[str], None],
    ) -> None:
        self.app, self.run, self.texts, self.key_interval_s = app, run, texts, key_interval_s
        self.trainer, self.log = trainer, log
        self.start_step = 0  # where the trainer resumes: typing begins once it has trained past it
        self.latencies: list[float] = []
        self.lags: list[float] = []
        self.decode_times: list[float] = []
        self.keystrokes = 0
        self.missed = 0
        self.trainer_running = {"start": False, "end": False}
        self.trainer_steps = 0
        self.trainer_tokens_per_s: float | None = None
        self.beam_size: int | None = None
        self.checkpoint: str | None = None
        self.seconds = 0.0

    async def drive(self) -> None:
        async with self.app.run_test(size=(100, 30)) as pilot:
            await self._scenario(pilot)

    def _trainer_alive(self) -> bool:
        return self.trainer is not None and self.trainer.poll() is None and self.run.trainer_alive()

    async def _wait(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready():
            if time.monotonic() > deadline:
                raise UserError(f"ui bench: timed out after {START_TIMEOUT_S:.0f} s waiting for {what}")
            if self.trainer is not None and self.trainer.poll() is not None:
                raise UserError(
                    f"ui bench: the trainer exited ({self.trainer.returncode}) before typing began; "
                    f"see {self.run.path / 'console.log'}"
                )
            await asyncio.sleep(0.1)

    def _last_step(self) -> int:
        history = self.app.history
        return history.train[-1].get("step", 0) if history and history.train else 0

    async def _scenario(self, pilot: Pilot) -> None:
        app = self.app
        if self.trainer is not None:
            self.log("waiting for the trainer's first steps")
            await self._wait(
                lambda: app.history is not None and app.history.live and self._last_step() > self.start_step,
                "the trainer's first steps",
            )
        else:
            await self._wait(lambda: app.history is not None and app.history.recipe is not None, "the run")
        await pilot.press("d")
        screen = app.screen
        assert isinstance(screen, DecodeScreen)
        self.log("loading the model")
        await self._wait(lambda: app.live_translator is not None and app.live_translator.loaded, "the model")
        shown: dict[str, float] = {}
        original = screen._decoded

        def record(request: tuple, decoded: Decoded | str) -> None:
            original(request, decoded)
            if not isinstance(decoded, str) and request == screen._request:
                shown[decoded.text] = time.perf_counter()
                self.decode_times.append(decoded.seconds)
                self.checkpoint = decoded.checkpoint

        screen._decoded = record  # type: ignore[method-assign]
        stop = asyncio.Event()

        async def lag_probe() -> None:
            while not stop.is_set():
                start = time.perf_counter()
                await asyncio.sleep(LAG_PROBE_S)
                self.lags.append(max(0.0, time.perf_counter() - start - LAG_PROBE_S))

        source = screen.query_one(Input)
        self.trainer_running["start"] = self._trainer_alive()
        first_step = self._last_step()
        began = time.perf_counter()
        probe = asyncio.create_task(lag_probe())
        try:
            for n, sentence in enumerate(self.texts):
                self.log(f"typing sentence {n + 1}/{len(self.texts)}")
                source.value = ""
                await asyncio.sleep(0.3)
                for char in sentence:
                    source.insert_text_at_cursor(char)
                    last_key = time.perf_counter()
                    self.keystrokes += 1
                    await asyncio.sleep(self.key_interval_s)
                while sentence not in shown and time.perf_counter() - last_key < TRANSLATION_TIMEOUT_S:
                    await asyncio.sleep(0.002)
                if sentence in shown:
                    self.latencies.append(shown[sentence] - last_key)
                else:
                    self.missed += 1
        finally:
            stop.set()
            await probe
        self.seconds = time.perf_counter() - began
        self.beam_size = screen.beam_size
        self.trainer_running["end"] = self._trainer_alive()
        # The app polls the run folder every half second: give it one more look at the trainer's steps.
        await asyncio.sleep(2 * app.poll_interval)
        self.trainer_steps = self._last_step() - first_step
        history = app.history
        speeds = [
            entry["tgt_tokens_per_s"]
            for entry in (history.train if history else [])
            if entry.get("step", 0) > first_step and "tgt_tokens_per_s" in entry
        ]
        self.trainer_tokens_per_s = round(sum(speeds) / len(speeds), 1) if speeds else None

    def result(self, train: bool, key_interval_s: float) -> dict[str, Any]:
        from workbench.benchmarks.decode_bench import percentile

        def ms(values: list[float], q: float) -> float | None:
            return round(percentile(values, q) * 1000, 2) if values else None

        return {
            "event_loop_lag_ms_p50": ms(self.lags, 50),
            "event_loop_lag_ms_p99": ms(self.lags, 99),
            "event_loop_lag_ms_max": ms(self.lags, 100),
            "keystroke_to_translation_ms_p50": ms(self.latencies, 50),
            "keystroke_to_translation_ms_p95": ms(self.latencies, 95),
            "keystroke_to_translation_ms_max": ms(self.latencies, 100),
            "decode_ms_p50": ms(self.decode_times, 50),
            "decode_ms_p95": ms(self.decode_times, 95),
            "sentences": len(self.texts),
            "translations": len(self.latencies),
            "missed": self.missed,
            "keystrokes": self.keystrokes,
            "decodes": len(self.decode_times),
            "lag_samples": len(self.lags),
            "key_interval_ms": round(key_interval_s * 1000, 1),
            "beam_size": self.beam_size,
            "checkpoint": self.checkpoint,
            "train": train,
            "trainer_running": self.trainer_running["start"] and self.trainer_running["end"],
            "trainer_steps_while_typing": self.trainer_steps,
            "trainer_tgt_tokens_per_s": self.trainer_tokens_per_s,
            "system_sampling": self.app.system_interval > 0,
            "typing_s": round(self.seconds, 2),
            "cpus": os.cpu_count(),
        }
