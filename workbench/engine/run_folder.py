"""The run folder: the one reader and writer of `runs/<name>/` (see docs/run-folder.md)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.engine.atomic_files import (
    append_json_line,
    read_json,
    read_json_lines,
    write_atomic,
    write_json_atomic,
)
from workbench.engine.errors import UserError, disk_error
from workbench.engine.recipe import Recipe, RecipeError, load_recipe

CONTROL_COMMANDS = ("pause", "resume", "stop", "checkpoint")
LIVE_STATES = ("running", "paused")
# Set by a sweep's queue: waiting for the queue runner, or taken out of the queue before it started.
WAITING_STATES = ("queued", "cancelled")
PROCESS_DIED = "the training process died"
STOPPED_BY_USER = "stopped from the control channel"


class RunFolderError(UserError):
    """A folder that is not a usable run."""


@dataclass(frozen=True)
class RunFolder:
    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    # Layout -----------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.path.name

    @property
    def recipe_path(self) -> Path:
        return self.path / "recipe.toml"

    @property
    def tokenizer_dir(self) -> Path:
        return self.path / "tokenizer"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def samples_path(self) -> Path:
        return self.path / "samples.jsonl"

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    @property
    def control_dir(self) -> Path:
        return self.path / "control"

    @property
    def log_path(self) -> Path:
        return self.path / "train.log"

    @property
    def sweep_path(self) -> Path:
        return self.path / "sweep.json"

    # Creating and opening ---------------------------------------------------------------------
    @classmethod
    def create(cls, runs_dir: Path, recipe: Recipe, name: str | None = None) -> RunFolder:
        """Make a new run folder named `name` (or the recipe's name plus a date), never reusing one."""
        runs_dir = Path(runs_dir)
        if name is not None and (not name.strip() or name.startswith(".") or "/" in name or "\0" in name):
            raise RunFolderError(f"{name!r}: a run name is a folder name (no '/', not hidden, not empty)")
        base = name or f"{recipe.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        made: Path | None = None
        try:
            runs_dir.mkdir(parents=True, exist_ok=True)
            for i in range(1, 1000):
                path = runs_dir / (base if i == 1 else f"{base}-{i}")
                try:
                    path.mkdir()
                    made = path
                    break
                except FileExistsError:
                    continue
            else:  # pragma: no cover
                raise RunFolderError(f"{runs_dir}: could not find a free name for {base}")
            run = cls(path)
            for folder in (run.tokenizer_dir, run.checkpoints_dir, run.control_dir):
                folder.mkdir()
            write_atomic(run.recipe_path, recipe.with_absolute_paths().to_toml())
        except OSError as exc:  # a full or read-only disk, no permission, a file where a folder should be...
            if made is not None:  # a folder without its recipe is no run: none is left half made
                shutil.rmtree(made, ignore_errors=True)
            disk = disk_error(exc, runs_dir, name_file=False)
            raise disk or RunFolderError(
                f"{runs_dir}: cannot make a run folder there ({exc.strerror or exc})"
            ) from None
        return run

    @classmethod
    def open(cls, path: str | Path) -> RunFolder:
        """An existing run folder; a clear error when `path` is not one."""
        path = Path(path)
        if not path.is_dir():
            raise RunFolderError(f"{path}: no such run folder")
        if not (path / "recipe.toml").is_file():
            raise RunFolderError(f"{path}: not a run folder (no recipe.toml)")
        return cls(path)

    def delete(self) -> None:
        """Remove the run folder and everything in it. A symbolic link is removed, never followed: what it
        points at stays, and a run folder that is itself a link loses only the link."""
        try:
            if self.path.is_symlink():
                self.path.unlink()
            else:  # on Linux rmtree opens each folder without following links (avoids_symlink_attacks)
                shutil.rmtree(self.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise RunFolderError(f"{self.path}: cannot delete it ({exc.strerror or exc})") from None

    def copy_to(self, path: Path) -> RunFolder:
        """A copy at `path` that is a run of its own: without the lock, pending control messages and
        symbolic links (whose targets lie outside the run, and would be read or written through)."""

        def left_out(folder: str, names: list[str]) -> set[str]:
            links = {name for name in names if os.path.islink(os.path.join(folder, name))}
            return links | ({".lock", "control"} & set(names) if Path(folder) == self.path else set())

        shutil.copytree(self.path, path, ignore=left_out)
        RunFolder(path).control_dir.mkdir(exist_ok=True)
        return RunFolder(path)

    def adopt_tokenizer(self, folder: Path) -> None:
        """Copy a prepared tokenizer into the run (its `tokenizer.json` last: there, the copy is whole)."""
        files = sorted(folder.iterdir(), key=lambda path: path.name == "tokenizer.json")
        for path in files:
            write_atomic(self.tokenizer_dir / path.name, path.read_bytes())

    def record_corpus(self, key: str, cache: Path, label: str) -> None:
        """Say in `corpus.json` which entry of which corpus cache the run trains on."""
        write_json_atomic(self.path / "corpus.json", {"key": key, "cache": str(cache), "label": label})

    def recipe(self) -> Recipe:
        try:
            return load_recipe(self.recipe_path)
        except RecipeError as exc:
            raise RunFolderError(str(exc)) from None

    def has_checkpoint(self, tag: str = "last") -> bool:
        return (self.checkpoints_dir / f"{tag}.safetensors").is_file()

    # Ownership ----------------------------------------------------------------------------------
    def lock(self) -> Any:
        """Claim the run for one trainer process; an error when another process is training it.

        The lock is held while the returned file stays open (the kernel drops it when the process
        dies), so readers can tell a live trainer from a crashed one without trusting pids.
        """
        f = open(self.path / ".lock", "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            pid = self.read_status_file().get("pid", "?")
            raise RunFolderError(f"{self.path}: another process (pid {pid}) is training this run") from None
        return f

    def trainer_alive(self) -> bool:
        """Whether a trainer process on this machine holds the run's lock."""
        return lock_held(self.path / ".lock")

    # Status -------------------------------------------------------------------------------------
    def write_status(self, state: str, **fields: Any) -> None:
        """Replace status.json, keeping fields not given (such as `started`)."""
        status = self.read_status_file()
        status.update(fields, state=state, pid=os.getpid(), host=socket.gethostname(), updated=time.time())
        if state not in WAITING_STATES:  # a run starts when it leaves the queue
            status.setdefault("started", status["updated"])
        if state in LIVE_STATES and "reason" not in fields:
            status.pop("reason", None)
        write_json_atomic(self.status_path, status)

    def read_status_file(self) -> dict[str, Any]:
        try:
            status = read_json(self.status_path)
        except (OSError, ValueError):  # none yet, or damaged: readers see a run without a state
            return {}
        return status if isinstance(status, dict) else {}

    def status(self) -> dict[str, Any]:
        """status.json as readers should see it: a live state whose process is gone reads as failed."""
        status = self.read_status_file()
        if not status:
            return {"state": "new"}
        same_host = status.get("host") == socket.gethostname()
        if status.get("state") in LIVE_STATES and same_host and not self.trainer_alive():
            status = {**status, "state": "failed", "reason": PROCESS_DIED}
        return status

    # Sweeps -------------------------------------------------------------------------------------
    def write_sweep_info(self, info: dict[str, Any]) -> None:
        """Record the sweep this run belongs to: `{"sweep", "values", "base", "index"}`."""
        write_json_atomic(self.sweep_path, info)

    def sweep_info(self) -> dict[str, Any] | None:
        """The run's sweep.json; None when the run is not part of a sweep (or the file is unreadable)."""
        try:
            info = json.loads(self.sweep_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        return info if isinstance(info, dict) else None

    # Metrics, samples, log ----------------------------------------------------------------------
    def append_metrics(self, record: dict[str, Any]) -> None:
        append_json_line(self.metrics_path, record)

    def read_metrics(self, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Metric records from byte `offset` on (for live tailing) and the next offset."""
        return read_json_lines(self.metrics_path, offset)

    def append_samples(self, record: dict[str, Any]) -> None:
        append_json_line(self.samples_path, record)

    def read_samples(self, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        return read_json_lines(self.samples_path, offset)

    def forget_after(self, step: int) -> None:
        """Drop metrics and samples past `step`: training a crash lost, about to be redone on resume."""
        for path in (self.metrics_path, self.samples_path):
            records, _ = read_json_lines(path)
            kept = [r for r in records if r.get("step", 0) <= step]
            if len(kept) < len(records):
                lines = "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in kept)
                write_atomic(path, lines)

    def remove_temporaries(self) -> int:
        """Delete the temporary files of writes a crash cut short (`.NAME.*.tmp`); the trainer calls it
        holding the run's lock, so no write of its own is under way. Returns how many there were."""
        found = [p for folder in (self.path, self.checkpoints_dir) for p in folder.glob(".*.tmp")]
        for path in found:
            path.unlink(missing_ok=True)
        return len(found)

    def log(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(f"{stamp} {message}\n")

    # Control channel ----------------------------------------------------------------------------
    def send_control(self, command: str) -> Path:
        """Leave a control message for the trainer of this run."""
        if command not in CONTROL_COMMANDS:
            raise ValueError(f"unknown control command {command!r}; one of {', '.join(CONTROL_COMMANDS)}")
        self.control_dir.mkdir(exist_ok=True)
        path = self.control_dir / f"{time.time_ns():020d}-{command}.json"
        write_json_atomic(path, {"command": command, "sent": time.time()})
        return path

    def take_controls(self) -> list[str]:
        """The pending control commands in the order sent, removing them (the trainer's side)."""
        try:
            names = sorted(
                n for n in os.listdir(self.control_dir) if n.endswith(".json") and not n.startswith(".")
            )
        except FileNotFoundError:
            return []
        commands = []
        for name in names:
            command = name.rsplit("-", 1)[-1].removesuffix(".json")
            (self.control_dir / name).unlink(missing_ok=True)
            if command in CONTROL_COMMANDS:
                commands.append(command)
        return commands


def lock_held(path: Path) -> bool:
    """Whether a live process holds the flock on `path` (the kernel drops it when the process dies)."""
    try:
        with open(path) as f:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
    except FileNotFoundError:
        return False
    except BlockingIOError:
        return True


def list_runs(runs_dir: Path) -> list[RunFolder]:
    """The run folders under `runs_dir`, newest first."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    found = []
    for path in runs_dir.iterdir():
        try:  # a run deleted while we look is simply not listed
            found.append((path.joinpath("recipe.toml").stat().st_mtime, RunFolder(path)))
        except (FileNotFoundError, NotADirectoryError):
            continue
    return [run for _, run in sorted(found, key=lambda item: item[0], reverse=True)]


def steps_per_second(train: list[dict[str, Any]], window: int = 10) -> float | None:
    """Recent training speed, from the last `window` train records of metrics.jsonl."""
    recent = train[-window:]
    if len(recent) < 2:
        return None
    steps = recent[-1]["step"] - recent[0]["step"]
    seconds = recent[-1].get("wall", 0) - recent[0].get("wall", 0)
    return steps / seconds if steps > 0 and seconds > 0 else None


def eta_seconds(status: dict[str, Any], train: list[dict[str, Any]]) -> float | None:
    """Time left until the trainer's step or time limit (status.json's `max_steps`, `max_minutes`, counted
    from `wall_at_start`), at the recent speed; None without a limit or a record."""
    if not train:
        return None
    last, candidates = train[-1], []
    speed = steps_per_second(train)
    if status.get("max_steps") and speed:
        candidates.append((status["max_steps"] - last["step"]) / speed)
    if status.get("max_minutes"):
        elapsed = last.get("wall", 0) - status.get("wall_at_start", 0)
        candidates.append(status["max_minutes"] * 60 - elapsed)
    return max(min(candidates), 0.0) if candidates else None
