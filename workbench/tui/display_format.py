"""How run states, colours and text read on screen; numbers, durations and metrics read as
`jobs.metric_format` writes them, as in the command line's tables."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from rich.text import Text

from workbench.jobs.metric_format import count as count
from workbench.jobs.metric_format import duration as duration
from workbench.jobs.metric_format import metric as metric
from workbench.jobs.metric_format import metric_label as metric_label
from workbench.jobs.sweep_queue import SweepProgress

STATE_BADGES = {
    "running": ("● running", "bold green"),
    "paused": ("‖ paused", "bold yellow"),
    "finished": ("✓ finished", "bold blue"),
    "stopped": ("■ stopped", "magenta"),
    "failed": ("✗ failed", "bold red"),
    "new": ("○ new", "dim"),
    "queued": ("◌ queued", "cyan"),
    "cancelled": ("⊘ cancelled", "dim"),
}

# A sweep's runs in each state other than finished: field of SweepProgress, mark, style (as STATE_BADGES)
PROGRESS_BADGES = (
    ("running", "●", "bold green"),
    ("queued", "◌", "cyan"),
    ("interrupted", "◐", "yellow"),
    ("failed", "✗", "bold red"),
    ("stopped", "■", "magenta"),
    ("cancelled", "⊘", "dim"),
)

# Curves of compared runs: a run keeps its colour (by its index in the compared set) in every chart.
RUN_COLORS = (
    (86, 182, 255),
    (255, 166, 77),
    (120, 220, 120),
    (235, 110, 200),
    (250, 230, 90),
    (160, 140, 255),
    (80, 220, 210),
    (240, 100, 100),
)


def state_badge(state: str) -> Text:
    label, style = STATE_BADGES.get(state, (state, ""))
    return Text(label, style=style)


def progress_badge(progress: SweepProgress) -> Text:
    """A sweep's progress, `✓2/6 ●1 ◌3`: finished out of all, then the other states that have runs."""
    text = Text(f"✓{progress.done}/{progress.total}", style="bold blue")
    for field, mark, style in PROGRESS_BADGES:
        if n := getattr(progress, field):
            text.append(f" {mark}{n}", style=style)
    return text


def run_color(index: int) -> tuple[int, int, int]:
    return RUN_COLORS[index % len(RUN_COLORS)]


def rgb(color: tuple[int, int, int]) -> str:
    """An (r, g, b) colour as a Rich style."""
    return "rgb({},{},{})".format(*color)


def timestamp(seconds: float | None) -> str:
    """Local date and time, minute resolution."""
    if not seconds:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))


# C0 controls, DEL and C1 controls: written to the terminal they would act (an escape sequence can move
# the cursor, retitle the window or clear the screen), so text from a user or a run shows them as U+FFFD.
_CONTROLS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Text that is safe to draw: a tab is a space, every other control character is U+FFFD."""
    return _CONTROLS.sub("\ufffd", text.replace("\t", " "))


def piece(text: str) -> str:
    """A subword piece for display: sentencepiece's word-start mark dropped, unless it is all there is."""
    shown = printable(text).replace("▁", "")
    return shown if shown.strip() else ("▁" if text else "∅")


def folder_text(path: Path) -> str:
    """A folder as the user would type it: relative to the working folder when inside it, else absolute
    with the home folder as ~; with a trailing slash."""
    absolute = Path(path).resolve()
    for base, prefix in ((Path.cwd(), ""), (Path.home(), "~/")):
        try:
            inside = absolute.relative_to(base)
        except ValueError:
            continue
        return prefix + ("" if inside == Path() else f"{inside}/") or "./"
    return f"{absolute}/"


def path_text(path: Path) -> str:
    """A path as a command line run from the working folder takes it: relative when inside that folder,
    else absolute."""
    absolute = Path(os.path.abspath(path))  # links kept: the path the user gave
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)
