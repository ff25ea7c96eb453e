"""Prepared run folders for the TUI tests: what a trainer would have written, made without training."""

from __future__ import annotations

import json
import math
from pathlib import Path

from workbench.engine.recipe import recipe_from_dict

STARTED = 1767225600.0  # 2026-01-01 00:00 UTC: fixed, so that snapshots do not change
PROBE = "Saturday, November 21, 2026"
PROBE_PIECES = ["▁Saturday", ",", "▁November", "▁21", ",", "▁2026"]
PROBE_HYP = ["▁samedi", "▁21", "▁novembre", "▁2026"]
PROBE_ALIGN = [0, 3, 2, 5, 5]  # source piece each target piece (and end of sentence) attends to
VALID = [
    ("Monday, March 3, 2025", "lundi 3 mars 2025"),
    ("Friday, July 14, 1989", "vendredi 14 juillet 1989"),
    ("Sunday, January 1, 2000", "dimanche 1 janvier 2000"),
]


def recipe_dict(name: str = "dates-demo", **model) -> dict:
    return {
        "name": name,
        "description": "A small dates model for the TUI tests.",
        "data": {"kind": "dates", "train_size": 2000, "valid_size": 100, "test_size": 100},
        "tokenizer": {"kind": "sentencepiece", "vocab_size": 200},
        "model": {"cell": "gru", "embedding_size": 64, "hidden_size": 128, **model},
        "training": {
            "max_steps": 1000,
            "valid_every": 100,
            "log_every": 20,
            "early_stopping_metric": "exact",
        },
        "decoding": {"beam_size": 5, "probes": [PROBE]},
    }


def alignment(progress: float, src_len: int, targets: list[int]) -> list[list[float]]:
    """Attention that sharpens from uniform to one source piece per row as `progress` goes 0 -> 1."""
    rows = []
    for target in targets:
        row = [(1 - progress) / src_len + (progress if j == target else 0.0) for j in range(src_len)]
        rows.append([round(w, 4) for w in row])
    return rows


def write_run(
    runs_dir: Path,
    name: str = "dates-demo",
    state: str = "finished",
    steps: int = 1000,
    host: str = "fixture-host",
    pid: int = 1,
    started: float = STARTED,
    checkpoint: bool = True,
    quality: float = 1.0,
    speed: float = 1.0,
    recipe: bool = True,
    **model,
) -> Path:
    """Write a complete run folder: recipe (unless `recipe` is false: one is there already), metrics,
    samples, status and placeholder checkpoints. `quality` scales the scores, `speed` the tokens/s."""
    path = Path(runs_dir) / name
    for folder in ("tokenizer", "checkpoints", "control"):
        (path / folder).mkdir(parents=True, exist_ok=True)
    if recipe:
        resolved = recipe_from_dict(recipe_dict(name, **model))
        (path / "recipe.toml").write_text(resolved.to_toml(), encoding="utf-8")
    metrics, samples = [], []
    for step in range(20, steps + 1, 20):
        loss = 3.0 * math.exp(-step / 250) + 0.05 + 0.04 * math.sin(step / 30) + (1 - quality)
        metrics.append(
            {
                "kind": "train",
                "step": step,
                "epoch": step // 400,
                "loss": round(loss, 5),
                "ppl": round(math.exp(loss), 3),
                "lr": 0.001,
                "grad_norm": round(1.5 - step / 1000, 4),
                "tgt_tokens_per_s": 12500.0 * speed,
                "src_tokens_per_s": 15000.0 * speed,
                "wall": round(step * 0.05 / speed, 3),
            }
        )
        if step % 100 == 0:
            progress = step / 1000
            valid_loss = 3.0 * math.exp(-step / 280) + 0.08 + (1 - quality)
            metrics.append(
                {
                    "kind": "valid",
                    "step": step,
                    "epoch": step // 400,
                    "wall": round(step * 0.05 / speed + 0.5, 3),
                    "loss": round(valid_loss, 5),
                    "ppl": round(math.exp(valid_loss), 3),
                    "bleu": round(95 * progress * quality, 2),
                    "chrf": round(97 * progress * quality**0.5, 2),
                    "exact": round(progress * 0.98 * quality, 4),
                    "accuracy": round((0.4 + 0.59 * progress) * quality, 4),
                }
            )
            sample_rows = [
                {
                    "src": src,
                    "ref": ref,
                    "hyp": ref if progress > 0.5 else ref.rsplit(" ", 1)[0],
                    "src_pieces": ["▁" + w for w in src.split()],
                    "hyp_pieces": ["▁" + w for w in ref.split()],
                    "attention": alignment(progress, len(src.split()), list(range(len(ref.split()) + 1))),
                }
                for src, ref in VALID
            ]
            sample_rows.append(
                {
                    "src": PROBE,
                    "ref": None,
                    "hyp": "samedi 21 novembre 2026",
                    "src_pieces": PROBE_PIECES,
                    "hyp_pieces": PROBE_HYP,
                    "attention": alignment(progress, len(PROBE_PIECES), PROBE_ALIGN),
                }
            )
            samples.append({"step": step, "samples": sample_rows})
    (path / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics), encoding="utf-8")
    (path / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples), encoding="utf-8")
    status = {
        "state": state,
        "pid": pid,
        "host": host,
        "device": "cpu (2 threads)",
        "step": steps,
        "epoch": steps // 400,
        "params": 181000,
        "max_steps": 1000,
        "max_minutes": 0.0,
        "wall_at_start": 0.0,
        "started": started,
        "updated": started + steps * 0.05,
    }
    if state in ("finished", "stopped", "failed"):
        status["reason"] = {
            "finished": f"reached {steps} steps",
            "stopped": "stopped by the user",
            "failed": "RuntimeError: boom",
        }[state]
    (path / "status.json").write_text(json.dumps(status), encoding="utf-8")
    if checkpoint:
        for tag in ("best", "last"):
            (path / "checkpoints" / f"{tag}.safetensors").write_bytes(b"placeholder")
            (path / "checkpoints" / f"{tag}.json").write_text(json.dumps({"state": {"step": steps}}))
    return path


# The fixture sweep's runs: (cell, attention) -> (state, steps, quality, speed), fixed for the snapshots.
SWEEP_NAME = "dates-grid"
SWEEP_RESULTS = {
    ("gru", "bahdanau"): ("finished", 1000, 0.93, 1.0),
    ("gru", "general"): ("finished", 1000, 0.88, 1.2),
    ("gru", "concat"): ("running", 400, 0.9, 1.1),
    ("lstm", "bahdanau"): ("finished", 1000, 0.97, 0.8),
    ("lstm", "general"): ("failed", 200, 0.7, 0.9),
    ("lstm", "concat"): (None, 0, 0.0, 0.0),  # still queued
}


def write_sweep_file(folder: Path, base: Path, name: str = SWEEP_NAME, extra: str = "") -> Path:
    """A sweep file over the cell and the attention of the recipe file `base` (2 x 3 runs)."""
    path = Path(folder) / f"{name}.toml"
    path.write_text(
        f'description = "The TUI tests\' grid over cell and attention."\nbase = "{base}"\n{extra}\n'
        "[axes]\n"
        '"model.cell" = ["gru", "lstm"]\n'
        '"model.attention" = ["bahdanau", "general", "concat"]\n',
        encoding="utf-8",
    )
    return path


def write_sweep(runs_dir: Path, sweep_file: Path) -> list[Path]:
    """Queue the sweep as the engine does, then give its runs the fixed histories of SWEEP_RESULTS."""
    from workbench.jobs.sweep import load_sweep
    from workbench.jobs.sweep_queue import queue_sweep

    queue = queue_sweep(runs_dir, load_sweep(sweep_file), parallel=2)
    queued = json.loads(queue.queue_path.read_text())
    queue.queue_path.write_text(json.dumps({**queued, "created": STARTED + 3600}))  # fixed, for snapshots
    paths = []
    for index, run in enumerate(queue.runs()):
        info = run.sweep_info()
        state, steps, quality, speed = SWEEP_RESULTS[
            (info["values"]["model.cell"], info["values"]["model.attention"])
        ]
        if state is not None:
            write_run(
                runs_dir,
                run.name,
                state=state,
                steps=steps,
                quality=quality,
                speed=speed,
                recipe=False,
                started=STARTED + 3600 + 60 * index,
            )
        paths.append(run.path)
    return paths
