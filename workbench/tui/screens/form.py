"""What the forms that start something share: focus on the first field, Enter starts, Escape cancels."""

from __future__ import annotations

from typing import TypeVar

from textual import on
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Select

from ..keys import FORM_BINDINGS

Result = TypeVar("Result")


class FormScreen(ModalScreen[Result | None]):
    """Subclasses compose a Start (`#start`) and a Cancel (`#cancel`) button and implement `submit()`."""

    BINDINGS = FORM_BINDINGS
    AUTO_FOCUS = ".form > *"  # the first field

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Enter starts from a one-line field; in a text area it breaks the line, on a button it presses it,
        # in an open list it picks the item (the list has the focus then, not its Select).
        if action == "submit":
            return isinstance(self.focused, (Input, Select))
        return True

    def action_submit(self) -> None:
        self.submit()

    def submit(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    @on(Button.Pressed, "#start")
    def _start(self) -> None:
        self.submit()

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
