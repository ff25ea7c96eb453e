"""Crash-safe file writes: a reader sees the old file or the new one, never half of either."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write `data` to a temporary file beside `path`, fsync it and rename it over `path`."""
    write_atomic_with(
        path, lambda tmp: Path(tmp).write_bytes(data.encode() if isinstance(data, str) else data)
    )


def write_atomic_with(path: Path, writer: Callable[[str], Any]) -> None:
    """Let `writer` fill a temporary file beside `path`, then fsync it and rename it over `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write `obj` as indented JSON, atomically."""
    write_atomic(path, json.dumps(obj, indent=1, ensure_ascii=False) + "\n")


def append_json_line(path: Path, obj: Any) -> None:
    """Append one JSON object as one whole line with a single write, then flush it to disk."""
    line = (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    size = os.fstat(fd).st_size
    try:
        if os.write(fd, line) != len(line):  # a full disk: a short write, or an error (below)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        os.fsync(fd)
    except OSError:
        os.ftruncate(fd, size)  # no torn line for the next append to be glued to
        raise
    finally:
        os.close(fd)


# status.json, checkpoint metadata, vocabularies: all far smaller. A larger file is not one of ours.
MAX_JSON_BYTES = 16 * 2**20


def read_json(path: Path, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """A JSON file's value; ValueError for a file too large, not UTF-8, not JSON or nested too deeply (a run
    folder from elsewhere may hold anything), OSError for one that cannot be read."""
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"larger than {max_bytes:,} bytes")
    try:
        return json.loads(data.decode("utf-8"))
    except RecursionError:
        raise ValueError("nested too deeply") from None


def read_json_lines(path: Path, offset: int = 0) -> tuple[list[Any], int]:
    """Complete JSON lines from byte `offset` on, and the offset after the last complete line."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1  # a last line without its newline is still being written
    records = []
    for line in data[:end].splitlines():
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a torn line from a crash mid-write: skip it rather than lose the rest
    return records, offset + end


def fsync_dir(folder: Path) -> None:
    """Make the renames in a folder durable (best effort: some file systems cannot)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
