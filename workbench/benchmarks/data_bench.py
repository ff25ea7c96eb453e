"""The cost of a corpus before training: time from `s2s-bench train` to its first step, and the memory it
needs, with nothing cached (the corpus prepared in that run), with the corpus cached (a second run, a
resume), and for `--nproc 2` (the processes' private memory beside one process's).

Every measured command is a real `s2s-bench` process; its process tree's resident memory is sampled
every 50 ms with psutil. The corpus is generated: each line joins two random pairs of the recipe's own
training pairs (Tatoeba en-fr for `tatoeba-en-fr`: about 12 words a side).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from workbench.engine.data import load_corpus
from workbench.engine.data.cache import CorpusCache, cache_folder
from workbench.engine.recipe import Recipe
from workbench.engine.run_folder import RunFolder

Log = Callable[[str], None]


def generate_corpus(recipe: Recipe, pairs: int, folder: Path, seed: int = 0) -> Path:
    """`folder/train.SRC`, `train.TGT` of `pairs` lines, each two random training pairs of the recipe's
    corpus joined, and its valid files; written once (reused when the line count is already there)."""
    data = recipe.data
    marker = folder / f".{pairs}-pairs"
    if marker.is_file():
        return folder
    corpus = load_corpus(data, recipe.seed)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    train = corpus.train
    with open(folder / f"train.{data.src}", "w", encoding="utf-8") as src:
        with open(folder / f"train.{data.tgt}", "w", encoding="utf-8") as tgt:
            for _ in range(pairs):
                (a, x), (b, y) = rng.choice(train), rng.choice(train)
                src.write(f"{a} {b}\n")
                tgt.write(f"{x} {y}\n")
    for side, lang in (("src", data.src), ("tgt", data.tgt)):
        lines = [pair[0 if side == "src" else 1] for pair in corpus.valid]
        (folder / f"valid.{lang}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    marker.write_text("")
    return folder


class TreeMemory:
    """Samples a process tree's resident memory (RSS, summed) until stopped; the peak is kept. With
    `private`, also the private memory (USS) of the tree's training ranks (processes with RANK set)."""

    def __init__(self, pid: int, private: bool = False) -> None:
        self.root = psutil.Process(pid)
        self.private = private
        self.peak_rss = 0
        self.ranks_uss: dict[int, int] = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.done.wait(0.05):
            try:
                tree = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                return
            total = 0
            for process in tree:
                try:
                    total += process.memory_info().rss
                    if self.private and "RANK" in process.environ():
                        uss = process.memory_full_info().uss
                        self.ranks_uss[process.pid] = max(self.ranks_uss.get(process.pid, 0), uss)
                except psutil.Error:
                    continue
            self.peak_rss = max(self.peak_rss, total)

    def stop(self) -> None:
        self.done.set()
        self.thread.join()


def first_step(command: list[str], run: Path, private: bool = False, timeout: float = 1800) -> dict[str, Any]:
    """Start a training command, wait for the run's first training record, stop the run; the seconds to
    that record and the memory it took (the peak of the whole process tree, sampled)."""
    env = {**os.environ, "NO_COLOR": "1"}
    metrics = run / "metrics.jsonl"
    before = metrics.stat().st_size if metrics.is_file() else 0  # a resumed run has records already
    start = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    memory = TreeMemory(process.pid, private)
    seconds = None
    try:
        while time.monotonic() - start < timeout:
            if process.poll() is not None:
                break
            if metrics.is_file() and metrics.stat().st_size > before:
                seconds = time.monotonic() - start
                RunFolder(run).send_control("stop")
                break
            time.sleep(0.05)
        process.wait(timeout=300)
    finally:
        memory.stop()
        if process.poll() is None:
            process.kill()
    if seconds is None:
        raise RuntimeError(f"{' '.join(command)}: no training step ({process.stderr.read()[-2000:]})")
    result = {"seconds_to_first_step": round(seconds, 1), "peak_rss_mb": round(memory.peak_rss / 2**20)}
    if private:
        result["ranks_private_mb"] = [round(uss / 2**20) for uss in memory.ranks_uss.values()]
    return result


def bench_data(
    recipe_name: str,
    recipe: Recipe,
    pairs: int,
    workdir: Path | None = None,
    nproc: bool = True,
    overrides: list[str] | None = None,
    log: Log | None = None,
) -> dict[str, Any]:
    """Cold and cached starts of `train` on a generated corpus of `pairs` pairs, a resume, `prepare` on its
    own and `--nproc 2`; with the cache entry's size per token."""
    say = log or (lambda message: None)
    work = Path(workdir or tempfile.mkdtemp(prefix="s2s-bench-data-"))
    say(f"generating {pairs:,} pairs in {work / 'corpus'} (not timed)")
    folder = generate_corpus(recipe, pairs, work / "corpus")
    runs = work / f"runs-{time.time():.0f}"
    sets = [f"data.dir={folder}", "training.log_every=1", "training.valid_every=100000"]
    for override in overrides or []:
        sets.append(override)
    base = [sys.executable, "-m", "workbench"]

    def train(name: str, *extra: str) -> list[str]:
        command = [*base, "train", recipe_name, "--headless", "--runs-dir", str(runs), "--name", name, *extra]
        return command + [arg for s in sets for arg in ("--set", s)]

    result: dict[str, Any] = {"recipe": recipe_name, "pairs": pairs, "cores": len(os.sched_getaffinity(0))}
    say("train, nothing cached")
    result["cold"] = first_step(train("cold"), runs / "cold")
    say("train again: the corpus cached")
    result["cached"] = first_step(train("cached"), runs / "cached")
    say("resume")
    result["resume"] = first_step([*base, "resume", str(runs / "cold")], runs / "cold")
    (entry,) = CorpusCache(cache_folder(runs)).entries()
    tokens = sum(entry.manifest["tokens"].values()) if entry.manifest else 0
    result["cache_bytes"] = entry.bytes
    result["cache_bytes_per_token"] = round(entry.bytes / max(tokens, 1), 3)
    say("prepare on its own, into an empty cache")
    result["prepare"] = measure_prepare(
        [*base, "prepare", recipe_name, "--runs-dir", str(runs / "prepared")], sets
    )
    if nproc:
        say("train --nproc 2, the corpus cached")
        one = first_step(train("one", "--nproc", "1"), runs / "one", private=True)
        two = first_step(train("two", "--nproc", "2"), runs / "two", private=True)
        result["nproc_1_private_mb"] = sum(one["ranks_private_mb"])
        result["nproc_2_private_mb"] = sum(two["ranks_private_mb"])
        result["nproc_2_over_1"] = round(
            result["nproc_2_private_mb"] / max(result["nproc_1_private_mb"], 1), 2
        )
    return result


def measure_prepare(command: list[str], sets: list[str]) -> dict[str, Any]:
    """Seconds and peak memory (the process tree's) of a `prepare` command."""
    command = command + [arg for s in sets for arg in ("--set", s)]
    start = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    memory = TreeMemory(process.pid)
    _, err = process.communicate()
    memory.stop()
    if process.returncode:
        raise RuntimeError(f"{' '.join(command)}: exit {process.returncode} ({err[-2000:]})")
    return {"seconds": round(time.monotonic() - start, 1), "peak_rss_mb": round(memory.peak_rss / 2**20)}
