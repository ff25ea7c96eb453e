"""The line at the top of every screen: which screen, which run, and what the run is doing."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from ..display_format import state_badge
from ..run_watcher import RunHistory


class RunBar(Static):
    """`s2s-bench › Dashboard │ dates-en-fr-… ● running · step 1,200 (why it stopped)`: the facts first,
    so that 80 columns cut (with an ellipsis) only the end of the reason."""

    def show(self, screen_title: str, history: RunHistory | None, replay: bool = False) -> None:
        text = Text.assemble(("s2s-bench", "bold"), " › ", (screen_title, "bold"))
        if history is None:
            text.append(" │ no run open", style="dim")
        else:
            text.append(" │ ")
            text.append(history.run.name, style="bold")
            text.append(" ")
            text.append_text(state_badge(history.state))
            step = history.status.get("step")
            if isinstance(step, int):
                text.append(f" · step {step:,}")
            if replay:
                text.append(" ⏵ replay", style="italic")
            reason = history.status.get("reason")
            if reason and (not history.live or history.status.get("preparing")):
                text.append(f" ({reason})", style="dim")
        self.update(text)
