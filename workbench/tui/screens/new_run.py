"""The form that starts a run: a recipe (or a run's own, to clone it with changes), `--set` lines, where and
how long it trains. It shows the `s2s-bench train` line it stands for, and returns that command."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical
from textual.widgets import Button, Input, Label, Select, Static, TextArea

from workbench.engine.errors import UserError
from workbench.engine.recipe import RecipeError, builtin_recipes, load_recipe
from workbench.jobs.commands import TrainCommand

from ..display_format import path_text
from .form import FormScreen

DEVICES = ("auto", "cpu", "cuda")
# form field (the name of the `s2s-bench train` option it sets) -> (label, type, smallest value)
NUMBER_FIELDS = {
    "nproc": ("processes", int, 1),
    "threads": ("threads", int, 1),
    "max_steps": ("max steps", int, 1),
    "max_minutes": ("max minutes", float, 0.01),
}


class NewRunScreen(FormScreen[TrainCommand]):
    """Pick a recipe, set keys, start; returns the `train` command, its recipe and keys checked."""

    def __init__(
        self, recipes: dict[str, Path], recipe_name: str, runs_dir: Path, clone: Path | None = None
    ) -> None:
        """`clone`: a run folder, whose resolved recipe.toml heads the list of recipes, chosen."""
        super().__init__()
        self.clone = clone
        self.recipes = {f"{clone.name} (run)": clone / "recipe.toml", **recipes} if clone else recipes
        self.recipe_name = next(iter(self.recipes), "") if clone else recipe_name
        if self.recipe_name not in self.recipes:
            self.recipe_name = next(iter(self.recipes), "")
        self.runs_dir = runs_dir

    def compose(self) -> ComposeResult:
        title = f"Clone {self.clone.name} with changes" if self.clone else "Start a run"
        with Vertical(classes="dialog", id="new-run"):
            yield Static(Text(title, style="bold"), classes="title")
            with Grid(classes="form"):
                yield Label("recipe")
                yield Select(
                    [(n, n) for n in self.recipes],
                    value=self.recipe_name or Select.BLANK,
                    allow_blank=False,
                    compact=True,
                    id="recipe",
                )
                yield Label("run name")
                yield Input(compact=True, placeholder="the recipe's name and the time", id="name")
                yield Label("device")
                yield Select(
                    [(d, d) for d in DEVICES], value="auto", allow_blank=False, compact=True, id="device"
                )
                for field, (label, kind, _) in NUMBER_FIELDS.items():
                    yield Label(label)
                    value = "1" if field == "nproc" else ""  # the others: the recipe's, shown greyed
                    yield Input(value, compact=True, type="integer" if kind is int else "number", id=field)
            yield Label("--set, one section.key=value a line", classes="set-label")
            yield TextArea(
                compact=True, show_line_numbers=False, placeholder="model.cell=lstm", id="overrides"
            )
            yield Static("", id="command-line")
            yield Static("", id="form-error")
            with Horizontal(classes="buttons"):
                yield Button("Start", variant="primary", compact=True, id="start")
                yield Button("Cancel", compact=True, id="cancel")

    def on_mount(self) -> None:
        self._recipe_chosen()

    @on(Select.Changed, "#recipe")
    def _recipe_changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, str) and event.value != self.recipe_name:
            self.recipe_name = event.value
            self._recipe_chosen()

    def _recipe_chosen(self) -> None:
        """Show the recipe's own limits, greyed, in the fields that override them."""
        try:
            training = load_recipe(self.recipes[self.recipe_name]).training
        except (RecipeError, KeyError) as exc:
            self._say(str(exc))
            return
        self.query_one("#threads", Input).placeholder = f"recipe: {training.threads or 'one per idle core'}"
        self.query_one("#max_steps", Input).placeholder = f"recipe: {training.max_steps or 'none'}"
        minutes = f"{training.max_minutes:g}" if training.max_minutes else "none"
        self.query_one("#max_minutes", Input).placeholder = f"recipe: {minutes}"
        self._show_command()

    @on(Input.Changed)
    @on(Select.Changed)
    @on(TextArea.Changed)
    def _show_command(self) -> None:
        """The `s2s-bench train` line the form stands for, as it is filled in."""
        try:
            line = self.command().shell_line()
        except UserError as exc:
            self._say(str(exc))
            return
        self.query_one("#command-line", Static).update(Text(line))
        self._say("")

    def command(self) -> TrainCommand:
        """The form as a `train` command; a UserError naming the field that is wrong. The recipe and its
        keys are checked by `submit`."""
        numbers: dict[str, int | float | None] = {}
        for field, (label, kind, least) in NUMBER_FIELDS.items():
            text = self.query_one(f"#{field}", Input).value.strip()
            try:
                numbers[field] = kind(text) if text else None
            except ValueError:
                raise UserError(f"{label}: a number, not {text!r}") from None
            if numbers[field] is not None and numbers[field] < least:
                raise UserError(f"{label} must be at least {least:g}; got {text}")
        if numbers["nproc"] == 1:
            numbers["nproc"] = None  # one process: no torchrun
        lines = self.query_one("#overrides", TextArea).text.splitlines()
        return TrainCommand(
            recipe=self._recipe_argument(),
            overrides=tuple(line.strip() for line in lines if line.strip()),
            name=self.query_one("#name", Input).value.strip() or None,
            runs_dir=path_text(self.runs_dir),
            device=str(self.query_one("#device", Select).value),
            **numbers,  # type: ignore[arg-type]
        )

    def _recipe_argument(self) -> str:
        """A built-in recipe by name, any other recipe file (a run's, one given to the app) by path."""
        path = self.recipes.get(self.recipe_name)
        if path is None:
            raise UserError("no recipe to start from")
        try:
            builtin = builtin_recipes().get(self.recipe_name)
        except RecipeError:  # no built-in recipes in this installation
            builtin = None
        return self.recipe_name if builtin == path else path_text(path)

    def submit(self) -> None:
        try:
            command = self.command()
            load_recipe(command.recipe, command.overrides)  # a bad key or value: said here, nothing starts
        except UserError as exc:
            self._say(str(exc))
            return
        self.dismiss(command)

    def _say(self, problem: str) -> None:
        self.query_one("#form-error", Static).update(Text(problem, style="red"))
