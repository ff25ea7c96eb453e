"""A sweep's queue in the runs folder, `runs/.sweeps/<name>/` (docs/sweeps.md): what to run and where.

`queue.json` lists the runs in order (their folders are made when the sweep is queued, state
`queued`), the parallelism and devices asked for and the cancelled runs; `runner.lock` is held by the
live queue runner. Changes to the queue take a lock on its folder, so that a cancel and a runner
starting that run never both win.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.engine.atomic_files import write_atomic, write_json_atomic
from workbench.engine.errors import UserError
from workbench.engine.recipe import Recipe
from workbench.engine.run_folder import PROCESS_DIED, STOPPED_BY_USER, RunFolder, lock_held
from workbench.jobs.sweep import Sweep, load_sweep

SWEEPS_FOLDER = ".sweeps"


class SweepQueueError(UserError):
    """A sweep queue that does not exist or cannot do what was asked."""


@dataclass(frozen=True)
class SweepProgress:
    """How many runs of a sweep are in each state; `interrupted`: started, then stopped by the sweep's
    stop or a signal, or their process died: the runner resumes them (`queued` ones never started)."""

    total: int
    done: int
    running: int
    queued: int
    failed: int
    stopped: int
    cancelled: int
    interrupted: int = 0

    @property
    def complete(self) -> bool:
        """Nothing left to run: every run finished, failed, was stopped or cancelled."""
        return self.running == 0 and self.queued == 0 and self.interrupted == 0


def outcome(status: dict[str, Any]) -> str:
    """What the queue makes of a run's status: done, running, queued, interrupted, failed, stopped, cancelled.

    Interrupted: its trainer died (a kill, a reboot) or was stopped by a signal rather than by a user's
    stop message; the queue resumes it. A failed run (a real error) is not retried.
    """
    state, reason = status.get("state", "new"), status.get("reason", "")
    if state == "finished":
        return "done"
    if state in ("running", "paused"):
        return "running"
    if state in ("new", "queued"):
        return "queued"
    if (state == "failed" and reason == PROCESS_DIED) or (state == "stopped" and reason != STOPPED_BY_USER):
        return "interrupted"
    return state if state in ("failed", "stopped", "cancelled") else "failed"


@dataclass(frozen=True)
class SweepQueue:
    path: Path  # runs/.sweeps/<name>

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def runs_dir(self) -> Path:
        return self.path.parent.parent

    @property
    def queue_path(self) -> Path:
        return self.path / "queue.json"

    @property
    def sweep_path(self) -> Path:
        return self.path / "sweep.toml"

    @property
    def lock_path(self) -> Path:
        return self.path / "runner.lock"

    @property
    def log_path(self) -> Path:
        return self.path / "runner.log"

    @classmethod
    def open(cls, runs_dir: str | Path, name: str) -> SweepQueue:
        """The queue of sweep `name` in `runs_dir`; a clear error when there is none."""
        path = Path(runs_dir).resolve() / SWEEPS_FOLDER / name
        if "/" in name or name.startswith(".") or not (path / "queue.json").is_file():
            known = ", ".join(q.name for q in list_sweeps(runs_dir)) or "none"
            raise SweepQueueError(f"{runs_dir}: no sweep named {name!r} (sweeps there: {known})")
        return cls(path)

    def read(self) -> dict[str, Any]:
        try:
            return json.loads(self.queue_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise SweepQueueError(f"{self.queue_path}: unreadable sweep queue") from None

    def runs(self) -> list[RunFolder]:
        """The sweep's run folders, in sweep order."""
        return [RunFolder(self.runs_dir / name) for name in self.read()["runs"]]

    def varied_keys(self) -> list[str]:
        return list(self.read()["varied"])

    def base_recipe(self) -> Recipe:
        return self.sweep().base_recipe

    def sweep(self) -> Sweep:
        """The resolved sweep as it was queued."""
        return load_sweep(self.sweep_path)

    def outcomes(self, statuses: dict[str, dict[str, Any]] | None = None) -> dict[str, str]:
        """Each run's `outcome` (from `statuses`, or read now), by name, in sweep order; a run that `stop`
        stopped is interrupted, to be resumed."""
        if statuses is None:
            statuses = {run.name: run.status() for run in self.runs()}
        suspended = set(self.read().get("suspended", []))
        kinds = {name: outcome(status) for name, status in statuses.items()}
        return {
            name: "interrupted" if kind == "stopped" and name in suspended else kind
            for name, kind in kinds.items()
        }

    def progress(self) -> SweepProgress:
        counts = dict.fromkeys(
            ("done", "running", "queued", "failed", "stopped", "cancelled", "interrupted"), 0
        )
        kinds = self.outcomes()
        for kind in kinds.values():
            counts[kind] += 1
        return SweepProgress(total=len(kinds), **counts)

    @property
    def held(self) -> bool:
        """Stopped with `stop`: the runner starts nothing until `sweep --resume`."""
        return bool(self.read().get("held"))

    # The runner -----------------------------------------------------------------------------------
    def runner_alive(self) -> bool:
        """Whether a queue runner process holds this sweep's runner lock."""
        return lock_held(self.lock_path)

    def claim_runner(self) -> Any:
        """Become this sweep's one runner (held while the returned file stays open); else an error."""
        f = open(self.lock_path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise SweepQueueError(f"sweep {self.name}: a queue runner is already running it") from None
        f.truncate(0)
        f.write(f"{os.getpid()}\n")
        f.flush()
        return f

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the queue's change lock (a flock on its folder)."""
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def update(self, **fields: Any) -> None:
        """Change queue.json's fields (parallel, devices...), under the change lock."""
        with self.locked():
            write_json_atomic(self.queue_path, {**self.read(), **fields})

    def log(self, message: str) -> None:
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

    def cancel(self, run_name: str) -> None:
        """Take a queued run out of the queue (state `cancelled`); a started one is stopped instead."""
        with self.locked():
            queue = self.read()
            if run_name not in queue["runs"]:
                raise SweepQueueError(f"{run_name}: not a run of sweep {self.name}")
            run = RunFolder(self.runs_dir / run_name)
            state = run.status()["state"]
            if outcome(run.status()) != "queued":
                hint = " (stop it: s2s-bench control RUN stop)" if state in ("running", "paused") else ""
                raise SweepQueueError(f"{run.path}: only a queued run can be cancelled; it is {state}{hint}")
            run.write_status("cancelled", reason="cancelled before it started")
            run.log("cancelled before it started")
            cancelled = [*queue.get("cancelled", []), run_name]
            write_json_atomic(self.queue_path, {**queue, "cancelled": cancelled})

    def stop(self) -> list[str]:
        """Hold the whole sweep: the runner starts nothing more, and each running run is sent a stop (it
        saves a checkpoint). Queued runs stay queued; `sweep --resume` takes up the sweep again, the
        runs stopped here included. The names of the runs sent a stop."""
        with self.locked():
            queue = self.read()
            running = [run for run in self.runs() if outcome(run.status()) == "running"]
            for run in running:
                run.send_control("stop")
            suspended = sorted({*queue.get("suspended", []), *(run.name for run in running)})
            write_json_atomic(self.queue_path, {**queue, "held": True, "suspended": suspended})
        self.log(f"sweep stopped: {len(running)} running run(s) sent a stop")
        return [run.name for run in running]

    def take_up(self, **changes: Any) -> SweepProgress:
        """Ready the queue for a new runner (`sweep --resume`): refused while one runs; `changes` (parallel,
        devices) are written and a `stop` is lifted. What is left to run."""
        if self.runner_alive():
            raise SweepQueueError(f"sweep {self.name}: its queue runner is running it (log: {self.log_path})")
        self.update(**changes, held=False)
        return self.progress()

    def resumed(self, names: list[str]) -> None:
        """Runs started again after `stop`: a later stop of theirs is a user's own. The caller holds the
        change lock."""
        queue = self.read()
        suspended = [name for name in queue.get("suspended", []) if name not in names]
        if suspended != queue.get("suspended", []):
            write_json_atomic(self.queue_path, {**queue, "suspended": suspended})


def list_sweeps(runs_dir: str | Path) -> list[SweepQueue]:
    """The sweeps queued in a runs folder, by name."""
    folder = Path(runs_dir).resolve() / SWEEPS_FOLDER
    if not folder.is_dir():
        return []
    return [SweepQueue(p) for p in sorted(folder.iterdir()) if (p / "queue.json").is_file()]


def queue_sweep(
    runs_dir: str | Path,
    sweep: Sweep,
    parallel: int | None = None,
    devices: list[str] | None = None,
    prepare: Callable[[Recipe], object] | None = None,
) -> SweepQueue:
    """Make the sweep's queue and a run folder per point (state `queued`); the runner starts them. Each
    distinct corpus of the points is prepared first (`prepare`, into the corpus cache the runs share): bad
    data is reported before anything is queued, and the points find their corpus ready."""
    path = Path(runs_dir).resolve() / SWEEPS_FOLDER / sweep.name
    if (path / "queue.json").is_file():
        raise _already_queued(path, sweep.name)
    if prepare is None:  # imported here: the data layer brings torch, which the workbench loads later
        from workbench.engine.data.cache import CorpusCache, cache_folder
        from workbench.engine.data.prepare import prepare as prepare_corpus
        from workbench.engine.devices import usable_cpus

        cache = CorpusCache(cache_folder(Path(runs_dir)))

        def prepare(recipe: Recipe) -> object:
            return prepare_corpus(recipe, cache, workers=len(usable_cpus()))

    seen = set()
    for point in sweep.points():
        r = point.recipe
        corpus = json.dumps([r.to_dict()["data"], r.to_dict()["tokenizer"], r.seed], sort_keys=True)
        if corpus not in seen:
            seen.add(corpus)
            prepare(r)
    try:
        path.mkdir(parents=True)
    except FileExistsError:
        raise _already_queued(path, sweep.name) from None
    queue = SweepQueue(path)
    write_atomic(queue.sweep_path, sweep.to_toml())
    names = []
    for index, point in enumerate(sweep.points()):
        run = RunFolder.create(path.parent.parent, point.recipe, point.run_name)
        run.write_sweep_info(
            {"sweep": sweep.name, "values": point.values, "base": sweep.base, "index": index}
        )
        run.write_status("queued", queued=time.time())
        names.append(run.name)
    # queue.json last: a queue interrupted while being made is never taken for a whole one
    write_json_atomic(
        queue.queue_path,
        {
            "name": sweep.name,
            "runs": names,
            "varied": sweep.varied(),
            "parallel": parallel,
            "devices": devices,
            "cancelled": [],
            "created": time.time(),
        },
    )
    return queue


def _already_queued(path: Path, name: str) -> SweepQueueError:
    return SweepQueueError(
        f"{path}: a sweep named {name!r} is already queued there; continue it with "
        f"`s2s-bench sweep --resume {name}`, or give this one another `name` in its file"
    )
