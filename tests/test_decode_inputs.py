"""Whatever text reaches `s2s-bench decode`, it answers one line per input line, in bounded time, and only a
line longer than decoding.max_input_pieces draws a note (on standard error); nothing raises."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time

import pytest
from test_input_cap import LONG_LINE, TINY

from workbench.cli.main import main
from workbench.engine.recipe import load_recipe
from workbench.engine.run_folder import RunFolder
from workbench.engine.session import TrainingSession

CONTROLS = "".join(chr(c) for c in (*range(1, 10), 11, 12, *range(14, 32), 127))
# One line each (no "\n" or "\r" inside: those end a line, as on every other tool's input).
CASES = {
    "empty line": "",
    "whitespace only": " \t  \u00a0\u3000 ",
    "control characters": f"Jan{CONTROLS}3",
    "ANSI escapes": "\x1b[31mJan 3\x1b[0m \x1b]0;title\x07 \x1b[2J\x1b[H",
    "right-to-left text and overrides": "مرحبا بالعالم \u202eJan 3\u202c שלום",
    "emoji and ZWJ sequences": "👍🏽 👨\u200d👩\u200d👧 🇫🇷 Jan 3",
    "zero-width characters": "Jan\u200b 3,\u200d 1999\ufeff\u2060",
    "combining marks": "e\u0301\u0301\u0301\u0301 Jan 3",
    "Unicode line and paragraph separators": "Jan\u2028 3\u2029 1999\x85",
    "private use and noncharacters": "\ue000\uffff\U0010ffff\U000e0001",
    "a 100,000-character line": LONG_LINE,
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = RunFolder.create(tmp_path_factory.mktemp("runs"), load_recipe("dates-en-fr", TINY), "tiny")
    TrainingSession(folder, "cpu").train(max_steps=1)  # near-random weights: outputs run to the length bound
    return folder.path


def decode(monkeypatch, capsys, run, data: bytes, *args: str) -> tuple[int, str, str]:
    """`s2s-bench decode RUN` in this process (its real entry point) on `data` as standard input."""
    monkeypatch.setattr(sys, "argv", ["s2s-bench", "decode", str(run), "--checkpoint", "last", *args])
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("case", CASES)
def test_decode_answers_one_line_for_each_hostile_input_line(case, run, monkeypatch, capsys, record_property):
    text = CASES[case]
    code, out, err = decode(monkeypatch, capsys, run, f"Jan 3, 1999\n{text}\nMay 1, 2000\n".encode())
    assert code == 0, err
    lines = out.split("\n")
    assert lines.pop() == "" and len(lines) == 3, out
    assert "\x1b" not in out  # no escape sequence reaches the terminal
    if text is LONG_LINE:
        (note,) = err.splitlines()
        assert note.startswith("note: line 2: ") and note.endswith("(decoding.max_input_pieces)")
    else:
        assert err == ""
    if not text.strip():
        assert lines[1] == ""  # nothing to translate: an empty line
    record_property("inputs", 1)
    record_property("shows", err.strip() or "one line out")


@pytest.mark.slow
def test_10000_lines_on_standard_input_give_10000_lines_in_bounded_time(run, record_property):
    lines = [*CASES.values()] * 10
    lines += [f"Monday, May {1 + i % 28}, {1900 + i % 200}" for i in range(10_000 - len(lines))]
    # One thread: tiny models gain nothing from a second, and on a busy machine it costs several times over.
    env = {**os.environ, "NO_COLOR": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "workbench", "decode", str(run), "--checkpoint", "last"]
    start = time.perf_counter()
    done = subprocess.run(
        command, input="\n".join(lines).encode() + b"\n", capture_output=True, env=env, timeout=300
    )
    seconds = time.perf_counter() - start
    assert done.returncode == 0, done.stderr.decode()
    out = done.stdout.decode().split("\n")
    assert out.pop() == "" and len(out) == len(lines) == 10_000
    notes = done.stderr.decode().splitlines()
    long_lines = [n for n, line in enumerate(lines, 1) if line is LONG_LINE]
    assert [int(note.split()[2].rstrip(":")) for note in notes] == long_lines
    assert seconds < 120, f"{seconds:.1f} s"
    record_property("inputs", len(lines))
    record_property("seconds", round(seconds, 1))
    record_property("shows", f"10,000 lines out in {seconds:.0f} s; a note per over-long line")
