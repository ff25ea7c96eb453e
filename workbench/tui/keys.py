"""Every key binding of the app in one place; the ids let users remap keys (`App.set_keymap`).

A key means one thing on every screen where it is bound (tests/tui/test_keys.py holds the few that
differ), so that a key learnt on one screen does not surprise on the next.

The footer shows the keys with `show` left true; together they fit in 80 columns on every screen
(tests/tui/test_app.py checks it). Every key is in the command palette (ctrl+p) and docs/workbench.md.
"""

from __future__ import annotations

from dataclasses import replace

from textual.binding import Binding

# On the open run's screens, first in the footer; the key of the screen already shown is hidden.
RUN_NAV_BINDINGS = [
    Binding(
        "t",
        "app.show('dashboard')",
        "Dashboard",
        id="app.dashboard",
        tooltip="Training dashboard of the open run",
    ),
    Binding(
        "d",
        "app.show('decode')",
        "Decode",
        id="app.decode",
        tooltip="Translate as you type with the open run",
    ),
    Binding(
        "a",
        "app.show('attention')",
        "Attention",
        id="app.attention",
        tooltip="Attention grid of a translation",
    ),
    Binding("r", "app.show('runs')", "Runs", id="app.runs", tooltip="Recipes and runs"),
    Binding(
        "l",
        "app.show('log')",
        "Log",
        id="app.log",
        tooltip="The open run's train.log and console output, and its sweep's runner log, followed",
    ),
    Binding(  # not in the footer, which 80 columns fill: in the command palette and docs/workbench.md
        "g",
        "app.show('system')",
        "System",
        show=False,
        id="app.system",
        tooltip="GPUs, CPUs and memory of this machine, and each trainer's share",
    ),
    Binding("q", "app.quit", "Quit", id="app.quit", tooltip="Quit (training goes on in its own process)"),
]

# On the runs screen and the compare table over it: the same keys, those of the open run's screens (t, d, a)
# in the palette only; the footer's room goes to what acts on runs.
NAV_BINDINGS = [
    replace(b, show=False) if b.id in ("app.dashboard", "app.decode", "app.attention") else b
    for b in RUN_NAV_BINDINGS
]

APP_BINDINGS = [
    Binding("ctrl+c", "quit", "Quit", show=False, id="app.ctrl_c", tooltip="Quit"),
]

RUNS_BINDINGS = [
    Binding(
        "n", "new_run", "New", id="runs.new", tooltip="Start a run, or a sweep, from the highlighted recipe"
    ),
    Binding("o", "open_run", "Open", id="runs.open", tooltip="Open the highlighted run's dashboard"),
    Binding("R", "replay_run", "Replay", show=False, id="runs.replay", tooltip="Replay the highlighted run"),
    Binding("u", "resume_run", "Resume", id="runs.resume", tooltip="Resume a stopped or failed run"),
    Binding("m", "mark_run", "Mark", id="runs.mark", tooltip="Mark or unmark a run to compare (any number)"),
    Binding(
        "C",
        "clone_run",
        "Clone",
        id="runs.clone",
        tooltip="Start a run from the highlighted run's recipe, with the keys you change",
    ),
    Binding(
        "c",
        "compare_runs",
        "Compare",
        id="runs.compare",
        tooltip="Compare the marked runs, or the runs of the highlighted sweep",
    ),
    Binding(
        "k",
        "cancel_run",
        "Cancel",
        show=False,
        id="runs.cancel",
        tooltip="Take a sweep's queued run out of its queue",
    ),
    Binding(
        "space",
        "fold_sweep",
        "Fold",
        show=False,
        id="runs.fold",
        tooltip="Show the highlighted sweep as one row, or unfold it",
    ),
    Binding(
        "delete",
        "delete_run",
        "Delete",
        key_display="del",
        show=False,
        id="runs.delete",
        tooltip="Delete the highlighted run",
    ),
    Binding("slash", "focus_filter", "Filter", id="runs.filter", tooltip="Filter recipes and runs by name"),
    # NAV_BINDINGS' l, for the highlighted run or sweep rather than the open run
    Binding("l", "show_log", "Log", id="app.log", tooltip="The highlighted run's logs, or its sweep's"),
]

# The charts of the dashboard and the compare screen: the x window (steps or minutes), a cursor, smoothing.
CHART_BINDINGS = [
    Binding(
        "tilde",
        "cycle_smoothing",
        "Smooth",
        key_display="~",
        show=False,
        id="chart.smoothing",
        tooltip="Cycle the loss smoothing (an EMA, as TensorBoard's)",
    ),
    Binding(
        "e", "toggle_raw", "Raw", show=False, id="chart.raw", tooltip="The loss as logged, or smoothed again"
    ),
    Binding(
        "plus,equals_sign",
        "zoom(0.5)",
        "Zoom in",
        key_display="+",
        show=False,
        id="chart.zoom_in",
        tooltip="Show half the steps (about the middle; the latest stay in view)",
    ),
    Binding(
        "minus",
        "zoom(2)",
        "Zoom out",
        key_display="-",
        show=False,
        id="chart.zoom_out",
        tooltip="Show twice the steps",
    ),
    Binding(
        "left_square_bracket",
        "pan(-1)",
        "Earlier",
        key_display="[",
        show=False,
        id="chart.earlier",
        tooltip="Move a zoomed chart half its width to earlier steps",
    ),
    Binding(
        "right_square_bracket",
        "pan(1)",
        "Later",
        key_display="]",
        show=False,
        id="chart.later",
        tooltip="Move a zoomed chart half its width to later steps",
    ),
    Binding(
        "less_than_sign",
        "move_cursor(-1)",
        "Cursor left",
        key_display="<",
        show=False,
        id="chart.cursor_left",
        tooltip="A cursor on the charts (their values at it under them), moved to earlier steps",
    ),
    Binding(
        "greater_than_sign",
        "move_cursor(1)",
        "Cursor right",
        key_display=">",
        show=False,
        id="chart.cursor_right",
        tooltip="A cursor on the charts (their values at it under them), moved to later steps",
    ),
    Binding(
        "0",
        "reset_view",
        "Whole run",
        show=False,
        id="chart.reset",
        tooltip="Every step again, and no cursor",
    ),
    Binding(
        "y", "toggle_log", "Log y", show=False, id="chart.log_scale", tooltip="Y axis: loss on a log10 scale"
    ),
]

DASHBOARD_BINDINGS = [
    Binding("p", "toggle_pause", "Pause", id="dashboard.pause", tooltip="Pause or resume training"),
    Binding(
        "s",
        "stop",
        "Stop",
        id="dashboard.stop",
        tooltip="Stop training, after asking (it can be resumed later)",
    ),
    Binding(
        "w", "checkpoint", "Save", show=False, id="dashboard.checkpoint", tooltip="Write a checkpoint now"
    ),
    Binding(
        "h",
        "next_chart",
        "Chart",
        id="dashboard.chart",
        tooltip="The right chart: the scores, the gradient norm, the learning rate or tokens/s",
    ),
    Binding(
        "x",
        "toggle_x_axis",
        "Step/time",
        show=False,
        id="dashboard.x_axis",
        tooltip="X axis: steps or minutes",
    ),
    *CHART_BINDINGS,
]

DECODE_BINDINGS = [
    Binding(
        "escape",
        "leave_input",
        "Leave input",
        id="decode.leave",
        tooltip="Leave the input line, so that keys work",
    ),
    Binding("i", "focus_input", "Type", show=False, id="decode.input", tooltip="Back to the input line"),
    Binding("b", "cycle_beam", "Beam", id="decode.beam", tooltip="Greedy search or beam search of width 2-8"),
    Binding(
        "n", "cycle_n_best", "N-best", show=False, id="decode.n_best", tooltip="How many translations to show"
    ),
    Binding(
        "k",
        "toggle_checkpoint",
        "Checkpoint",
        show=False,
        id="decode.checkpoint",
        tooltip="Decode with best or last",
    ),
]

ATTENTION_BINDINGS = [
    Binding(
        "left_square_bracket",
        "step(-1)",
        "Earlier",
        id="attention.earlier",
        key_display="[",
        tooltip="The previous validation's alignment",
    ),
    Binding(
        "right_square_bracket",
        "step(1)",
        "Later",
        id="attention.later",
        key_display="]",
        tooltip="The next validation's alignment",
    ),
    Binding(
        "space",
        "toggle_play",
        "Play",
        show=False,
        id="attention.play",
        tooltip="Step through the validations over time",
    ),
    Binding(
        "comma",
        "sentence(-1)",
        "Prev",
        show=False,
        id="attention.prev_sentence",
        key_display=",",
        tooltip="The previous validation sentence",
    ),
    Binding(
        "full_stop",
        "sentence(1)",
        "Next",
        show=False,
        id="attention.next_sentence",
        key_display=".",
        tooltip="The next validation sentence",
    ),
    Binding(
        "v",
        "toggle_source",
        "Source",
        show=False,
        id="attention.source",
        tooltip="Show the decode panel's translation or the validation sentences",
    ),
    Binding(
        "number_sign",
        "toggle_numbers",
        "Weights",
        key_display="#",
        show=False,
        id="attention.numbers",
        tooltip="Show weights as numbers",
    ),
]

GRID_BINDINGS = [
    Binding("up", "move(-1, 0)", "Up", show=False),
    Binding("down", "move(1, 0)", "Down", show=False),
    Binding("left", "move(0, -1)", "Left", show=False),
    Binding("right", "move(0, 1)", "Right", show=False),
    Binding("home", "move_to_start", "Start", show=False),
    Binding("end", "move_to_end", "End", show=False),
]

MODAL_BINDINGS = [
    Binding("escape", "cancel", "Cancel", id="modal.cancel", tooltip="Close without doing anything"),
]

# The new-run and new-sweep forms. Enter before the focused field's own key: on a closed list too.
FORM_BINDINGS = MODAL_BINDINGS + [
    Binding(
        "enter",
        "submit",
        "Start",
        priority=True,
        id="form.start",
        tooltip="Start, from any field but the --set lines (space or down opens a list)",
    ),
]

# The runs and recipes tables: Home and End move the cursor to the first and last row (DataTable's own
# scroll sideways, which a table that fits its panel never needs).
TABLE_BINDINGS = [
    Binding("home", "scroll_top", "First", show=False, id="table.first", tooltip="The first row"),
    Binding("end", "scroll_bottom", "Last", show=False, id="table.last", tooltip="The last row"),
]

COMPARE_BINDINGS = [
    Binding("escape", "close", "Back", id="compare.close", tooltip="Back to the runs"),
    Binding(
        "space",
        "toggle_overlay",
        "Curves",
        id="compare.overlay",
        tooltip="Overlay the highlighted run's curves, or take them off (at most 8)",
    ),
    Binding(
        "o", "next_sort", "Sort", id="compare.sort", tooltip="Sort by the next column (or click a header)"
    ),
    Binding("O", "reverse_sort", "Reverse", show=False, id="compare.reverse", tooltip="Reverse the order"),
    Binding(
        "slash", "focus_filter", "Filter", id="compare.filter", tooltip="Filter runs by name, value or state"
    ),
    Binding("p", "toggle_pause", "Pause", id="compare.pause", tooltip="Pause or resume the highlighted run"),
    Binding(
        "s",
        "stop",
        "Stop",
        id="compare.stop",
        tooltip="Stop the highlighted run, after asking (it can be resumed)",
    ),
    Binding(
        "k",
        "cancel_run",
        "Cancel",
        show=False,
        id="compare.cancel",
        tooltip="Take the highlighted queued run out of its queue",
    ),
    Binding(
        "S",
        "stop_sweep",
        "Stop sweep",
        show=False,
        id="compare.stop_sweep",
        tooltip="Stop the whole sweep: its running runs (with a checkpoint), and start no more",
    ),
    Binding(
        "U",
        "resume_sweep",
        "Resume sweep",
        show=False,
        id="compare.resume_sweep",
        tooltip="Take the sweep up again: what is left, and the runs its stop interrupted",
    ),
    *CHART_BINDINGS,
]

LOG_BINDINGS = [
    Binding(
        "slash", "focus_search", "Filter", id="log.search", tooltip="Search: show only the lines with a text"
    ),
    Binding(
        "v",
        "next_source",
        "Source",
        id="log.source",
        tooltip="The next log: train.log, the trainer's console, the sweep runner's log",
    ),
    Binding(
        "escape",
        "clear_search",
        "All lines",
        show=False,
        id="log.clear",
        tooltip="Leave the search: every line",
    ),
]
