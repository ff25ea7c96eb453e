"""The corpus cache: prepared corpora, one folder an entry, shared by every run, sweep point, resume and
process that trains on the same corpus with the same tokenizer. It lives beside the runs, in
`RUNS/.corpora/` (or where $S2S_CORPUS_CACHE says).

An entry is named by a hash of its key: the corpus's identity (each file's path, size and modification
time) and every recipe key that changes what is prepared. It is built in a `.partial` folder and renamed
into place once its files are on the disk; its manifest (`entry.json`) records each file's size and
checksum, which are checked whenever it is opened, so a damaged or half-written entry is rebuilt, never
trained on. A lock file makes processes that need the same entry at once build it once: the others wait.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.engine.atomic_files import fsync_dir, write_json_atomic
from workbench.engine.data import CorpusError

CACHE_FOLDER = ".corpora"
MANIFEST = "entry.json"
FORMAT = 1  # raised whenever what an entry holds changes, so that old entries are rebuilt, not misread


def cache_folder(runs_dir: Path) -> Path:
    """Where the corpus cache of a runs folder lives."""
    return Path(os.environ.get("S2S_CORPUS_CACHE") or Path(runs_dir) / CACHE_FOLDER).expanduser()


def entry_key(fields: dict[str, Any]) -> str:
    """The name of the entry for these key fields (any JSON value)."""
    text = json.dumps({"format": FORMAT, **fields}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Entry:
    key: str
    path: Path
    manifest: dict[str, Any] | None  # None: damaged or half-built
    bytes: int

    @property
    def label(self) -> str:
        return (self.manifest or {}).get("label", "?")


class CorpusCache:
    """The entries of one cache folder: open, build (once, under a lock), list and remove."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        return self.folder / key

    def check(self, key: str) -> dict[str, Any] | None:
        """The entry's manifest if the entry is whole: every file there, of its size and checksum."""
        path = self.path(key)
        try:
            manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
            for name, (size, checksum) in manifest["files"].items():
                file = path / name
                if file.stat().st_size != size or crc32(file) != checksum:
                    return None
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return manifest if manifest.get("format") == FORMAT else None

    def build(
        self,
        key: str,
        build: Callable[[Path], dict[str, Any]],
        on_wait: Callable[[str], None] = lambda message: None,
    ) -> dict[str, Any]:
        """The manifest of a whole entry for `key`, made by `build(folder)` unless one is there already.

        `build` fills a fresh folder and returns the manifest's fields; the files' sizes and checksums are
        added here. Processes that ask for the same key at once build it once; the others wait, and are
        told why through `on_wait`.
        """
        made = [folder for folder in (self.folder, *self.folder.parents) if not folder.exists()]
        # Nothing of a failed preparation stays: not its lock, nor the folders made for it.
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            lock = _lock(self.folder / f"{key}.lock", on_wait)
        except OSError as exc:
            _remove_empty(made)
            raise self._write_error(exc) or CorpusError(
                f"{self.folder}: cannot write the corpus cache here ({exc.strerror})"
            ) from None
        try:
            manifest = self.check(key)
            if manifest is None:
                manifest = self._build(key, build)
            return manifest
        except BaseException:
            (self.folder / f"{key}.lock").unlink(missing_ok=True)
            _remove_empty(made)
            raise
        finally:
            lock.close()

    def _build(self, key: str, build: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
        for stale in [self.path(key), *self.folder.glob(f"{key}.partial-*")]:
            shutil.rmtree(stale, ignore_errors=True)  # damaged, or cut short by a kill: never used
        partial = self.folder / f"{key}.partial-{os.getpid()}"
        try:
            partial.mkdir()
            manifest = {"format": FORMAT, "key": key, **build(partial)}
            manifest["files"] = {
                str(file.relative_to(partial)): [file.stat().st_size, crc32(file)]
                for file in sorted(partial.rglob("*"))
                if file.is_file()
            }
            manifest["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            write_json_atomic(partial / MANIFEST, manifest)
            partial.rename(self.path(key))
            fsync_dir(self.folder)
        except OSError as exc:
            shutil.rmtree(partial, ignore_errors=True)
            error = self._write_error(exc)
            if error is None:
                raise
            raise error from None
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        return manifest

    def _write_error(self, exc: OSError) -> CorpusError | None:
        """A write the disk refused, in words; None for another error."""
        if exc.errno == errno.ENOSPC:
            return CorpusError(
                f"{self.folder}: no space left on the disk while preparing the corpus; nothing "
                "half-built was kept (free some space, or set $S2S_CORPUS_CACHE to another disk)"
            )
        if exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
            return CorpusError(f"{self.folder}: cannot write the corpus cache here ({exc.strerror})")
        return None

    def entries(self) -> list[Entry]:
        """Every entry, whole or not, largest first (half-built folders of live builds are left out)."""
        if not self.folder.is_dir():
            return []
        found = []
        for path in self.folder.iterdir():
            if not path.is_dir() or ".partial-" in path.name:
                continue
            size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            found.append(Entry(path.name, path, self.check(path.name), size))
        return sorted(found, key=lambda entry: -entry.bytes)

    def remove(self, key: str) -> int:
        """Delete an entry (waiting for a build of it to end); the bytes freed."""
        path = self.path(key)
        if not path.is_dir():
            raise CorpusError(f"{path}: no such entry in the corpus cache")
        with _lock(self.folder / f"{key}.lock", lambda message: None):
            size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            shutil.rmtree(path)
        return size


def crc32(path: Path) -> int:
    checksum = 0
    with open(path, "rb") as file:
        while chunk := file.read(8 << 20):
            checksum = zlib.crc32(chunk, checksum)
    return checksum


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders made for a preparation, innermost first, as far as they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            break  # not empty: another entry, or the runs folder's runs


def _lock(path: Path, on_wait: Callable[[str], None]):
    """The entry's lock file, held: waiting for the process that holds it (and saying so) if need be. A
    lock file removed while waiting (its holder failed) is opened again, so that two never build at once."""
    while True:
        file = open(path, "a+")  # noqa: SIM115 - the caller closes it
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "another process"
            on_wait(f"waiting for process {holder}, which is preparing the same corpus")
            fcntl.flock(file, fcntl.LOCK_EX)
        try:
            same = os.fstat(file.fileno()).st_ino == path.stat().st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        file.close()
    try:  # the holder's pid, for the message of those that wait
        file.seek(0)
        file.truncate()
        file.write(str(os.getpid()))
        file.flush()
    except OSError:  # a full disk: this process holds the lock, so no other is using the file
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # closing flushes the pid again, to the same full disk
            file.close()
        raise
    return file
