"""What the run screens share: they draw the app's open run and redraw only when it changed."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.screen import Screen

from ..components.run_bar import RunBar
from ..keys import RUN_NAV_BINDINGS
from ..run_watcher import RunHistory

if TYPE_CHECKING:
    from ..app import S2SBenchApp


class RunScreen(Screen):
    """Subclasses implement `draw(history)`; the app calls `sync()` after each poll that found news."""

    SCREEN_TITLE = ""
    BINDINGS = RUN_NAV_BINDINGS

    def __init__(self) -> None:
        super().__init__()
        self._drawn: tuple[int, int] | None = None

    @property
    def workbench(self) -> S2SBenchApp:
        """The app, typed: the workbench this screen belongs to."""
        return cast("S2SBenchApp", self.app)

    def sync(self, force: bool = False) -> None:
        """Redraw from the app's open run if it changed since the last draw."""
        if not self.is_mounted:
            return  # drawn when mounted (on_screen_resume)
        history = self.workbench.history
        key = (id(history), history.version if history else -1)
        if force or key != self._drawn:
            self._drawn = key
            self.query_one(RunBar).show(self.SCREEN_TITLE, history, self.workbench.replay)
            self.draw(history)

    def on_screen_resume(self) -> None:
        self.sync()

    def draw(self, history: RunHistory | None) -> None:  # pragma: no cover - abstract
        raise NotImplementedError
