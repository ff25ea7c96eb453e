"""The base of every error a user can cause (bad recipe, corpus, run folder...): shown as one line, exit 2."""

import errno
import re
from pathlib import Path


class UserError(ValueError):
    """Input that cannot be used; the message names the file, key or value at fault."""


def error_message(exc: BaseException) -> str:
    """One line for a person: a user error's own message (it names what is at fault), else the error's
    type and message (a bug or a system error, where the type is the clue)."""
    if isinstance(exc, (UserError, FileNotFoundError)):
        return str(exc)
    if out_of_memory(exc):
        return out_of_memory_message(exc)
    return f"{type(exc).__name__}: {exc}"


def out_of_memory(exc: BaseException) -> bool:
    """Whether an error is the machine running out of memory (host or GPU), as torch reports it."""
    if isinstance(exc, MemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text)


def out_of_memory_message(exc: BaseException) -> str:
    """What to tell a person whose model or batch did not fit in memory."""
    found = re.search(r"tried to allocate ([\d.]+) ?(bytes|[KMGT]i?B)", str(exc), re.IGNORECASE)
    if found and found.group(2) == "bytes":
        size = f" (it tried to allocate {int(found.group(1)) / 2**30:.1f} GiB)"
    elif found:
        size = f" (it tried to allocate {found.group(1)} {found.group(2)})"
    else:
        size = ""
    return (
        f"out of memory{size}: the model or a batch is too large for this machine; lower "
        "model.hidden_size, model.embedding_size, tokenizer.vocab_size or training.batch_size"
    )


DISK_ERRORS = {
    errno.ENOSPC: "no space left on the disk of {where}: free space or move the runs folder (--runs-dir)",
    errno.EDQUOT: "the disk quota is used up on {where}: free space or move the runs folder (--runs-dir)",
    errno.EROFS: "{where} is on a read-only file system: move the runs folder (--runs-dir)",
    errno.EACCES: "no permission to write in {where}: fix its permissions or move the runs folder",
    errno.EPERM: "no permission to write in {where}: fix its permissions or move the runs folder",
}


def disk_error(exc: BaseException, where: Path, name_file: bool = True) -> UserError | None:
    """A write that the disk refused (full, quota, read-only, permission), as a user error naming the
    file it was writing (with `name_file`) or else the folder `where`; None for any other error."""
    if isinstance(exc, OSError):
        code, filename = exc.errno, exc.filename if name_file else None
    else:  # a library's own error around the system's (safetensors: "... (os error 28)")
        found = re.search(r"\(os error (\d+)\)", str(exc))
        code, filename = (int(found[1]) if found else None), None
    if code not in DISK_ERRORS:
        return None
    return UserError(DISK_ERRORS[code].format(where=filename or where))
