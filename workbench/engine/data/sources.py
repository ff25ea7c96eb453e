"""Where a split's pairs come from, read as a stream: line-aligned text files, TSV, generated pairs, or
a Hugging Face dataset (`hf.py`).

Text files are UTF-8, plain or compressed with gzip, bzip2, xz or zstd (told by their first bytes, not
their names). Lines are stripped of surrounding whitespace (and a "\\r" from Windows line ends). A source
can be read again (preparing a corpus reads it more than once), names itself for messages, says who it
is for the cache key (`identity`) and how far the current read has come (`fraction`).
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import lzma
import os
import re
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from workbench.engine.data import CorpusError, Pair

# The first bytes of each compressed format. bzip2's "BZh" and block size are printable, so its first block
# (or end-of-stream mark) is matched too: a text file may well begin "BZh9".
MAGIC = re.compile(
    rb"(?P<gzip>\x1f\x8b)|(?P<bzip2>BZh[1-9](?:1AY&SY|\x17rE8P\x90))"
    rb"|(?P<xz>\xfd7zXZ\x00)|(?P<zstd>\x28\xb5\x2f\xfd)"
)
# The suffixes a folder corpus also looks for.
SUFFIXES = (".gz", ".xz", ".bz2", ".zst")
BLOCK_BYTES = 8 << 20  # decoded and split a block at a time: fast, and memory bounded whatever the file


class PairSource:
    """One split's pairs, unfiltered, in blocks; `CorpusError` names the file and line of bad content."""

    name = ""

    def identity(self) -> list[Any]:
        """What tells this source's content apart from another's (files: path, size, modification time)."""
        raise NotImplementedError

    def blocks(self) -> Iterator[list[Pair]]:
        """The stripped pairs, a block at a time, from the start."""
        raise NotImplementedError

    def fraction(self) -> float:
        """How much of the source the current read has passed, 0 to 1."""
        return 0.0


class LineReader:
    """The lines of one text file (without their "\\n"), decoded a block at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path.expanduser()
        self.size = check_file(self.path)
        self.raw: BinaryIO | None = None
        self.lines_read = 0

    def fraction(self) -> float:
        raw = self.raw
        try:
            return min(1.0, raw.tell() / self.size) if raw is not None and self.size else 0.0
        except (OSError, ValueError):  # closed between the check and the call
            return 1.0

    def blocks(self) -> Iterator[list[str]]:
        path = self.path
        self.lines_read = 0
        with open_raw(path) as raw:
            self.raw = raw
            kind = compression(raw.read(10))
            raw.seek(0)
            stream = decompressed(raw, kind)
            decoder = codecs.getincrementaldecoder("utf-8-sig")()  # drops a byte-order mark
            tail, has_text = "", False
            while True:
                data = read_block(stream, path, kind, self.lines_read)
                try:
                    text = tail + decoder.decode(data, final=not data)
                except UnicodeDecodeError as exc:
                    error = not_utf8(path, self.lines_read, tail, exc)
                    raise self.content_error(stream, kind, error) from None
                nul = text.find("\0")
                if nul >= 0:  # valid UTF-8, but no sentence holds one: a binary file, or UTF-16 text
                    raise self.content_error(stream, kind, nul_character(path, self.lines_read, text, nul))
                # split("\n"), not splitlines(): that also breaks on U+2028 and friends and would misalign
                # the two sides of a corpus.
                lines = text.split("\n")
                tail = lines.pop()  # the line the next block finishes ("" after a final newline)
                if not data and tail:
                    lines.append(tail)  # the last line, without a newline
                if lines:
                    has_text = has_text or any(not line.isspace() and line for line in lines)
                    self.lines_read += len(lines)
                    yield lines
                if not data:
                    break
        self.raw = None
        if not has_text:
            raise CorpusError(f"{path}: the file is empty")

    def content_error(self, stream: BinaryIO, kind: str, message: str) -> CorpusError:
        """`message`, unless a compressed file is damaged just beyond: a damaged block decompresses to
        garbage before its checksum is read, and the damage, not the garbage, is what to report."""
        if kind:
            read_block(stream, self.path, kind, self.lines_read)  # raises the damage's own error
        return CorpusError(message)


class ParallelText(PairSource):
    """Two line-aligned files, one sentence a line: the source side and the target side."""

    def __init__(self, src_path: Path, tgt_path: Path) -> None:
        self.src, self.tgt = LineReader(Path(src_path)), LineReader(Path(tgt_path))
        self.name = str(self.src.path)

    def identity(self) -> list[Any]:
        return [file_identity(self.src.path), file_identity(self.tgt.path)]

    def fraction(self) -> float:
        return self.src.fraction()

    def blocks(self) -> Iterator[list[Pair]]:
        targets = self.tgt.blocks()
        pending: list[str] = []
        for sources in self.src.blocks():
            while len(pending) < len(sources):
                more = next(targets, None)
                if more is None:
                    self._unequal()
                pending += more
            tgt, pending = pending[: len(sources)], pending[len(sources) :]
            yield list(zip(map(str.strip, sources), map(str.strip, tgt), strict=True))
        if pending or next(targets, None) is not None:
            self._unequal()

    def _unequal(self) -> None:
        """Both files' line counts in words (each counted to its end: the numbers make the mistake clear)."""
        counts = [sum(map(len, LineReader(reader.path).blocks())) for reader in (self.src, self.tgt)]
        raise CorpusError(
            f"{self.src.path} has {counts[0]} lines but {self.tgt.path} has {counts[1]}; "
            "the two sides of a parallel corpus need one line per sentence"
        )


class TsvText(PairSource):
    """Tab-separated `source<TAB>target[<TAB>...]` lines; extra columns are ignored."""

    def __init__(self, path: Path) -> None:
        self.reader = LineReader(Path(path))
        self.name = str(self.reader.path)

    def identity(self) -> list[Any]:
        return [file_identity(self.reader.path)]

    def fraction(self) -> float:
        return self.reader.fraction()

    def blocks(self) -> Iterator[list[Pair]]:
        number = 0
        for lines in self.reader.blocks():
            pairs = []
            for line in lines:
                number += 1
                if not line.strip():
                    pairs.append(("", ""))  # a blank line is an empty pair: counted, not an error
                    continue
                columns = line.split("\t", 2)
                if len(columns) < 2:
                    raise CorpusError(f"{self.name}:{number}: no tab; each line must be 'source<TAB>target'")
                pairs.append((columns[0].strip(), columns[1].strip()))
            yield pairs


class PairList(PairSource):
    """Pairs made in memory when first read (a generated task's split)."""

    def __init__(self, make: Callable[[], list[Pair]], name: str, identity: list[Any]) -> None:
        self.make, self.name, self._identity = make, name, identity
        self.done = 0.0

    def identity(self) -> list[Any]:
        return self._identity

    def fraction(self) -> float:
        return self.done

    def blocks(self) -> Iterator[list[Pair]]:
        pairs, step = self.make(), 100_000
        for start in range(0, len(pairs), step):
            self.done = start / max(1, len(pairs))
            yield pairs[start : start + step]
        self.done = 1.0


def find_file(path: Path) -> Path:
    """`path`, or the compressed file beside it (`train.de.gz` for `train.de`) when it is absent. Two of
    them is an error: they may hold different versions of the corpus, and reading either could be wrong."""
    candidates = [path, *(path.with_name(path.name + suffix) for suffix in SUFFIXES)]
    found = [candidate for candidate in candidates if candidate.exists()]
    if len(found) > 1:
        raise CorpusError(f"{found[0]} and {found[1]} both exist; keep one of them")
    return found[0] if found else path


def check_file(path: Path) -> int:
    """The size of a readable regular file; CorpusError naming it otherwise."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise CorpusError(f"{path}: no such file") from None
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read it ({exc.strerror})") from None
    if path.is_dir():
        raise CorpusError(f"{path}: cannot read it (Is a directory)")
    if not path.is_file():  # reading a pipe would wait for ever
        raise CorpusError(f"{path}: not a regular file (a pipe or a device); write the corpus to a file")
    if not os.access(path, os.R_OK):
        raise CorpusError(f"{path}: cannot read it (Permission denied)")
    return stat.st_size


def file_identity(path: Path) -> list[Any]:
    """Path, size and modification time: what changes when the file is replaced or edited."""
    stat = path.stat()
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


def open_raw(path: Path) -> BinaryIO:
    try:
        return open(path, "rb")  # noqa: SIM115 - closed by the caller's with
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read it ({exc.strerror})") from None


def compression(head: bytes) -> str:
    """The compression a file's first bytes show ("" for none)."""
    found = MAGIC.match(head)
    return (found.lastgroup or "") if found else ""


def decompressed(raw: BinaryIO, kind: str) -> BinaryIO:
    """A readable stream of `raw`'s content, decompressed; `raw.tell()` still says how far it has come."""
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if kind == "bzip2":
        return bz2.BZ2File(raw)
    if kind == "xz":
        return lzma.LZMAFile(raw)
    if kind == "zstd":
        return ZstdStream(raw)
    return raw


class ZstdStream:
    """The frames of a zstd file, decompressed one after another. zstandard's own `stream_reader` ends
    quietly where the file does, even inside a frame: a truncated download would pass for a shorter corpus.
    """

    CHUNK = 1 << 16  # compressed bytes taken at a time: what one call may expand is bounded by this

    def __init__(self, raw: BinaryIO) -> None:
        try:
            import zstandard
        except ImportError:
            raise CorpusError(
                f"{raw.name}: a zstd file; reading it needs the zstandard package: pip install zstandard"
            ) from None
        self.raw, self.decompressor = raw, zstandard.ZstdDecompressor()
        self.frame = self.decompressor.decompressobj()
        self.in_frame = False  # whether the current frame has had input: the file may not end there

    def read(self, size: int) -> bytes:
        out, length = [], 0
        while length < size:
            chunk = self.raw.read(self.CHUNK)
            if not chunk:
                if self.in_frame and not self.frame.eof:
                    raise EOFError("Compressed file ended before the end-of-stream marker was reached")
                break
            data = self._decompress(chunk)
            out.append(data)
            length += len(data)
        return b"".join(out)

    def _decompress(self, chunk: bytes) -> bytes:
        """`chunk`'s output, starting a new frame wherever one ends within it."""
        out = []
        while chunk:
            self.in_frame = True
            out.append(self.frame.decompress(chunk))
            chunk = self.frame.unused_data if self.frame.eof else b""
            if self.frame.eof:
                self.frame, self.in_frame = self.decompressor.decompressobj(), False
        return b"".join(out)


def read_block(stream: BinaryIO, path: Path, kind: str, lines: int) -> bytes:
    """The next block of (decompressed) bytes; a damaged compressed file is a CorpusError naming it."""
    try:
        return stream.read(BLOCK_BYTES)
    except (EOFError, OSError, lzma.LZMAError, zlib.error) as exc:
        error: BaseException = exc
    except Exception as exc:  # zstandard.ZstdError, that library's one error type
        if type(exc).__name__ != "ZstdError":
            raise
        error = exc
    after = f" after line {lines:,}" if lines else ""
    why = str(error).rstrip(".") or type(error).__name__
    raise CorpusError(f"{path}: a corrupt or truncated {kind} file ({why}){after}; the corpus cannot be read")


def nul_character(path: Path, lines_before: int, text: str, nul: int) -> str:
    """Where a block holds a NUL character: the line."""
    line = lines_before + text.count("\n", 0, nul) + 1
    return f"{path}:{line}: a NUL character (a binary file, or text in UTF-16?); corpora are UTF-8 text"


def not_utf8(path: Path, lines_before: int, tail: str, exc: UnicodeDecodeError) -> str:
    """Where a block stopped being UTF-8: the line and the byte within it."""
    data = exc.object
    line = lines_before + data.count(b"\n", 0, exc.start) + 1
    start_of_line = data.rfind(b"\n", 0, exc.start)
    column = exc.start - start_of_line if start_of_line >= 0 else exc.start + len(tail.encode()) + 1
    return f"{path}:{line}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at byte {column} of the line)"
