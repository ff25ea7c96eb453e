"""The short form for starting a run from a recipe with the common overrides."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from workbench.engine.recipe import ATTENTIONS, CELLS, Recipe, RecipeError, load_recipe

from ..keys import MODAL_BINDINGS

DEVICES = ("auto", "cpu", "cuda")
# form field -> (recipe key, type)
NUMBER_FIELDS = {
    "embedding_size": ("model.embedding_size", int),
    "hidden_size": ("model.hidden_size", int),
    "lr": ("training.lr", float),
    "max_steps": ("training.max_steps", int),
}


@dataclass
class NewRunRequest:
    recipe: Recipe
    overrides: list[str] = field(default_factory=list)
    device: str = "auto"
    nproc: int = 1  # training processes (torchrun): one per GPU, or N sharing the CPU's cores


class NewRunScreen(ModalScreen[NewRunRequest | None]):
    """Pick a recipe, change what people usually change, start. Returns the resolved recipe."""

    BINDINGS = MODAL_BINDINGS

    def __init__(self, recipes: dict[str, Path], recipe_name: str) -> None:
        super().__init__()
        self.recipes = recipes
        self.recipe_name = recipe_name if recipe_name in recipes else next(iter(recipes), "")

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="new-run"):
            yield Static("[b]Start a run[/b]", classes="title")
            with Grid(classes="form"):
                yield Label("recipe")
                yield Select(
                    [(n, n) for n in self.recipes],
                    value=self.recipe_name or Select.BLANK,
                    allow_blank=False,
                    compact=True,
                    id="recipe",
                )
                yield Label("cell")
                yield Select([(c, c) for c in CELLS], allow_blank=False, compact=True, id="cell")
                yield Label("attention")
                yield Select([(a, a) for a in ATTENTIONS], allow_blank=False, compact=True, id="attention")
                yield Label("embedding size")
                yield Input(compact=True, type="integer", id="embedding_size")
                yield Label("hidden size")
                yield Input(compact=True, type="integer", id="hidden_size")
                yield Label("learning rate")
                yield Input(compact=True, type="number", id="lr")
                yield Label("max steps (0: none)")
                yield Input(compact=True, type="integer", id="max_steps")
                yield Label("device")
                yield Select(
                    [(d, d) for d in DEVICES], value="auto", allow_blank=False, compact=True, id="device"
                )
                yield Label("processes")
                yield Input("1", compact=True, type="integer", id="nproc")
            yield Static("", id="form-error")
            with Horizontal(classes="buttons"):
                yield Button("Start", variant="primary", id="start")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self._fill(self.recipe_name)
        self.query_one("#start", Button).focus()

    @on(Select.Changed, "#recipe")
    def _recipe_changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, str) and event.value != self.recipe_name:
            self.recipe_name = event.value
            self._fill(event.value)

    def _fill(self, name: str) -> None:
        """Show the recipe's own values, so that only what the user changes becomes an override."""
        try:
            self.base = load_recipe(self.recipes[name])
        except (RecipeError, KeyError) as exc:
            self.query_one("#form-error", Static).update(str(exc))
            return
        self.query_one("#cell", Select).value = self.base.model.cell
        self.query_one("#attention", Select).value = self.base.model.attention
        for name_, (key, _) in NUMBER_FIELDS.items():
            section, attr = key.split(".")
            self.query_one(f"#{name_}", Input).value = str(getattr(getattr(self.base, section), attr))

    def overrides(self) -> list[str]:
        """`section.key=value` for each field that differs from the recipe."""
        out = []
        for name, key in (("cell", "model.cell"), ("attention", "model.attention")):
            value = self.query_one(f"#{name}", Select).value
            if value != getattr(self.base.model, key.split(".")[1]):
                out.append(f'{key}="{value}"')
        if self.query_one("#attention", Select).value == "none" and self.base.model.input_feeding:
            out.append("model.input_feeding=false")  # input feeding needs attention
        for name, (key, kind) in NUMBER_FIELDS.items():
            text = self.query_one(f"#{name}", Input).value.strip()
            section, attr = key.split(".")
            if text and kind(text) != getattr(getattr(self.base, section), attr):
                out.append(f"{key}={kind(text)}")
        return out

    @on(Button.Pressed, "#start")
    def _start(self) -> None:
        error = self.query_one("#form-error", Static)
        try:
            overrides = self.overrides()
            recipe = load_recipe(self.recipes[self.recipe_name], overrides)
            nproc = int(self.query_one("#nproc", Input).value.strip() or "1")
            if nproc < 1:
                raise ValueError(f"processes must be at least 1; got {nproc}")
        except (RecipeError, ValueError, KeyError) as exc:
            error.update(f"[red]{escape(str(exc))}[/red]")
            return
        device = str(self.query_one("#device", Select).value)
        self.dismiss(NewRunRequest(recipe, overrides, device, nproc))

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
