"""A run's translator that follows the trainer: it reloads when a newer checkpoint lands.

Loading and decoding block (torch), so every method here runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from workbench.engine.atomic_files import read_json
from workbench.engine.run_folder import RunFolder


class TranslationLike(Protocol):
    text: str
    score: float
    src_pieces: list[str]
    tgt_pieces: list[str]
    attention: list[list[float]] | None
    dropped_pieces: int  # source pieces past the recipe's decoding.max_input_pieces


class TranslatorLike(Protocol):
    checkpoint_stamp: float | None

    def translate(
        self, sentences: list[str], beam_size: int = 1, n_best: int = 1, attention: bool = False
    ) -> list[list[Any]]: ...


# (run, checkpoint tag, device) -> translator; tests pass a fake one instead of loading torch.
TranslatorFactory = Callable[[RunFolder, str, str], TranslatorLike]


def engine_translator(
    run: RunFolder, checkpoint: str, device: str, precision: str | None = None
) -> TranslatorLike:
    import torch  # imported here, in a worker thread: importing torch takes a second

    from workbench.engine.translator import Translator

    # One sentence at a time decodes fastest on one thread, and a trainer on the same cores makes
    # several threads 10-20x slower (measured on 2 cores: 13 ms on one thread, 220 ms on two).
    torch.set_num_threads(1)
    return Translator.from_run(run, checkpoint=checkpoint, device=device, precision=precision)


@dataclass
class Decoded:
    """One decode of one sentence."""

    text: str
    translations: list[TranslationLike]
    checkpoint: str  # the tag actually used (best falls back to last)
    step: int | None  # the training step of that checkpoint
    seconds: float


class LiveTranslator:
    """Holds one translator for a run and a checkpoint choice, reloading it when the file changes."""

    def __init__(self, run: RunFolder, factory: TranslatorFactory | None = None, device: str = "cpu"):
        self.run = run
        self.factory = factory or engine_translator
        self.device = device
        self._lock = threading.Lock()
        self._translator: TranslatorLike | None = None
        self._loaded: tuple[str, float | None] | None = None  # (tag, checkpoint mtime)
        self._step: int | None = None

    @property
    def loaded(self) -> bool:
        """Whether a model is loaded (the decode screen preloads one when it opens)."""
        return self._translator is not None

    def resolve_tag(self, wanted: str) -> str | None:
        """The checkpoint that `wanted` means right now: best falls back to last; None when neither exists."""
        for tag in (wanted, "last") if wanted == "best" else (wanted, "best"):
            if self.run.has_checkpoint(tag):
                return tag
        return None

    def translator(self, wanted: str = "best") -> tuple[TranslatorLike, str, int | None]:
        """The translator for `wanted`, (re)loaded if the checkpoint changed since the last load."""
        with self._lock:
            tag = self.resolve_tag(wanted)
            if tag is None:
                raise FileNotFoundError("no checkpoint yet: the first one is saved at the first validation")
            stamp = _mtime(self.run.checkpoints_dir / f"{tag}.safetensors")
            if self._translator is None or self._loaded != (tag, stamp):
                try:
                    self._translator = self.factory(self.run, tag, self.device)
                except Exception:
                    if self._translator is None or self._loaded is None or self._loaded[0] != tag:
                        raise
                    # The trainer is mid-save: keep decoding with the previous weights; retry next time.
                    return self._translator, tag, self._step
                self._loaded = (tag, getattr(self._translator, "checkpoint_stamp", None) or stamp)
                self._step = _checkpoint_step(self.run, tag)
            return self._translator, tag, self._step

    def decode(self, text: str, beam_size: int, n_best: int, checkpoint: str = "best") -> Decoded:
        translator, tag, step = self.translator(checkpoint)
        start = time.perf_counter()
        results = translator.translate([text], beam_size=beam_size, n_best=n_best, attention=True)
        return Decoded(text, list(results[0]) if results else [], tag, step, time.perf_counter() - start)


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None


def _checkpoint_step(run: RunFolder, tag: str) -> int | None:
    try:
        meta = read_json(run.checkpoints_dir / f"{tag}.json")
    except (OSError, ValueError):
        return None
    step = meta.get("state", {}).get("step") if isinstance(meta, dict) else None
    return step if isinstance(step, int) else None
