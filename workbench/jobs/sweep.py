"""Sweeps: a base recipe and axes over recipe keys, expanded to named points (a grid or random draws).

A sweep file (TOML) holds `base` (a built-in recipe name or a path relative to the file), optional
`name`, `description`, `samples` (0: the full grid; N: N random points seeded by `seed`), `[set]`
(fixed keys for every run) and `[axes]` (dotted recipe key -> list of values, or with samples > 0
`{ log_uniform = [lo, hi] }` / `{ uniform = [lo, hi] }`). Instead of `[axes]`, a ladder gives
`[[rungs]]`: each rung a `name` and a `set` table applied on top of the rungs before it, so run i is the
base with the changes of rungs 1..i (one change at a time, from a system as written to a modern recipe).
Every point is validated as a whole recipe when the file is loaded, so a bad key or value is reported
before anything starts.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import math
import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from workbench.engine.errors import UserError
from workbench.engine.recipe import (
    Recipe,
    RecipeError,
    builtin_recipes_dir,
    dotted_keys,
    find_file,
    find_recipe,
    parse_override,
    read_toml,
    recipe_from_dict,
    set_key,
)

SWEEP_KEYS = ("name", "description", "base", "samples", "seed", "set", "axes", "rungs")
RUNG_KEYS = ("name", "description", "set")
DISTRIBUTIONS = ("log_uniform", "uniform")


class SweepError(UserError):
    """A sweep file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class SweepPoint:
    run_name: str
    values: dict[str, Any]
    recipe: Recipe


@dataclass
class Sweep:
    name: str
    description: str
    base: str  # as the file gives it
    base_recipe: Recipe  # the base with [set] and --set applied
    axes: dict[str, Any]  # key -> list of values, or {distribution: [lo, hi]}
    samples: int
    seed: int
    fixed: dict[str, Any]  # [set] and --set, dotted keys
    path: Path
    base_path: Path
    builtin_base: bool
    rungs: list[dict[str, Any]] = field(default_factory=list)  # a ladder: name, description, set (dotted)
    _points: list[SweepPoint] = field(default_factory=list, repr=False)

    def points(self) -> list[SweepPoint]:
        """The runs of the sweep in order, each with its values and its validated recipe."""
        return list(self._points)

    def to_toml(self) -> str:
        """The resolved sweep: --set merged into [set], the base as a built-in name or an absolute path."""
        raw = {
            "name": self.name,
            "description": self.description,
            "base": self.base if self.builtin_base else str(self.base_path.resolve()),
            "samples": self.samples,
            "seed": self.seed,
            "set": self.fixed,
        }
        if self.rungs:
            raw["rungs"] = self.rungs
        else:
            raw["axes"] = self.axes
        return tomli_w.dumps(raw)

    def varied(self) -> list[str]:
        """The keys the runs differ in: the axes, or every key a rung sets."""
        if not self.rungs:
            return list(self.axes)
        return list(dict.fromkeys(key for rung in self.rungs for key in rung["set"]))


def builtin_sweeps() -> dict[str, Path]:
    """Built-in sweep names and their files (recipes/sweeps/*.toml)."""
    return {p.stem: p for p in sorted((builtin_recipes_dir() / "sweeps").glob("*.toml"))}


def find_sweep(name_or_path: str) -> Path:
    """A sweep file from a path or a built-in name."""
    return find_file(name_or_path, builtin_sweeps(), "sweep", SweepError)


def load_sweep(name_or_path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Sweep:
    """Load a sweep, apply `--set` overrides to every run and validate every point."""
    path = find_sweep(str(name_or_path))
    raw = read_toml(path, SweepError)
    for key in raw:
        if key not in SWEEP_KEYS:
            hint = difflib.get_close_matches(key, SWEEP_KEYS, n=1)
            raise SweepError(
                f"{path}: unknown key '{key}'" + (f" (did you mean '{hint[0]}'?)" if hint else "")
            )
    name = _typed(raw, "name", str, path.stem, path)
    if not re.fullmatch(r"[\w-][\w.-]*", name):
        raise SweepError(f"{path}: 'name' may hold only letters, digits, '.', '_' and '-'; got {name!r}")
    samples = _typed(raw, "samples", int, 0, path)
    if samples < 0:
        raise SweepError(f"{path}: 'samples' must be >= 0; got {samples}")
    seed = _typed(raw, "seed", int, 1, path)
    base = _typed(raw, "base", str, None, path)
    base_path, builtin = _find_base(base, path)
    base_raw = read_toml(base_path, RecipeError)
    base_raw.setdefault("name", base_path.stem)
    recipe_from_dict(copy.deepcopy(base_raw), source=str(base_path))  # errors of the base name its file

    fixed = _flatten(_typed(raw, "set", dict, {}, path))
    rungs = _read_rungs(raw, path, samples)
    axes = {} if rungs else _read_axes(raw, path, samples)
    varied = axes or {key: None for rung in rungs for key in rung["set"]}
    for override in overrides:
        key, value = parse_override(override)
        if key in varied:
            what = "a rung sets it" if rungs else "it is an axis"
            raise SweepError(f"--set {override}: {path} varies '{key}' ({what})")
        fixed[key] = value
    for key in fixed:
        if key in varied:
            raise SweepError(f"{path}: '{key}' is both in [set] and in " + ("a rung" if rungs else "[axes]"))

    base_recipe = _recipe(base_raw, fixed, path, "[set]")
    sweep = Sweep(
        name,
        _typed(raw, "description", str, "", path),
        base,
        base_recipe,
        axes,
        samples,
        seed,
        fixed,
        path,
        base_path,
        builtin,
        rungs,
    )
    sweep._points = _points(sweep, base_raw)
    return sweep


def _typed(raw: dict[str, Any], key: str, kind: type, default: Any, path: Path) -> Any:
    if key not in raw:
        if default is None:
            raise SweepError(f"{path}: '{key}' is required")
        return default
    value = raw[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        what = {dict: "a table", int: "an integer", str: "a string"}[kind]
        raise SweepError(f"{path}: '{key}' must be {what}; got {value!r}")
    return value


def _find_base(base: str, path: Path) -> tuple[Path, bool]:
    """The base recipe's file: a path is taken from the sweep file's folder, else a built-in name."""
    is_path = base.endswith(".toml") or "/" in base or os.sep in base
    try:
        if is_path:
            return find_recipe(str(path.parent / os.path.expanduser(base))), False
        return find_recipe(base), True
    except RecipeError as exc:
        raise SweepError(f"{path}: 'base' = {base!r}: {exc}") from None


def _flatten(table: dict[str, Any]) -> dict[str, Any]:
    """`{"training": {"lr": 1}}` and `{"training.lr": 1}` alike as dotted keys; a distribution
    (`{ log_uniform = [lo, hi] }`) is a value."""
    return dotted_keys(table, is_value=lambda value: bool(value) and set(value) <= set(DISTRIBUTIONS))


def _read_rungs(raw: dict[str, Any], path: Path, samples: int) -> list[dict[str, Any]]:
    """A ladder's rungs, each {name, description, set (dotted keys)}; [] when the file has [axes]."""
    if "rungs" not in raw:
        return []
    rungs = raw["rungs"]
    if "axes" in raw:
        raise SweepError(f"{path}: give [axes] (a grid) or [[rungs]] (a ladder), not both")
    if samples:
        raise SweepError(f"{path}: 'samples' draws points of [axes]; a ladder of [[rungs]] takes none")
    if not isinstance(rungs, list) or not rungs or not all(isinstance(r, dict) for r in rungs):
        raise SweepError(f"{path}: 'rungs' must be one or more [[rungs]] tables, each with a name and a set")
    out, names = [], set()
    for i, rung in enumerate(rungs, 1):
        where = f"{path}: rung {i}"
        for key in rung:
            if key not in RUNG_KEYS:
                raise SweepError(f"{where}: unknown key '{key}' (a rung takes {', '.join(RUNG_KEYS)})")
        name = rung.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[\w][\w.-]*", name):
            raise SweepError(f"{where}: 'name' must be letters, digits, '.', '_' or '-'; got {name!r}")
        if name in names:
            raise SweepError(f"{where}: the name {name!r} is taken by an earlier rung")
        names.add(name)
        changes = rung.get("set", {})
        if not isinstance(changes, dict) or (i > 1 and not changes):
            raise SweepError(f"{where} ({name}): 'set' must be a table of the keys this rung changes")
        description = rung.get("description", "")
        if not isinstance(description, str):
            raise SweepError(f"{where} ({name}): 'description' must be a string")
        out.append({"name": name, "description": description, "set": _flatten(changes)})
    return out


def _read_axes(raw: dict[str, Any], path: Path, samples: int) -> dict[str, Any]:
    axes = _flatten(_typed(raw, "axes", dict, None, path))
    if not axes:
        raise SweepError(f"{path}: [axes] is empty: name at least one recipe key and its values")
    for key, values in axes.items():
        where = f"{path}: axes '{key}'"
        if isinstance(values, list):
            if not values:
                raise SweepError(f"{where} is empty: give it at least one value")
            continue
        if not isinstance(values, dict) or len(values) != 1:
            raise SweepError(
                f"{where} must be a list of values or {{ log_uniform = [lo, hi] }}; got {values!r}"
            )
        ((kind, bounds),) = values.items()
        if samples == 0:
            raise SweepError(f"{where}: a {kind} axis needs random points (samples = N), not the grid")
        numbers = isinstance(bounds, list) and len(bounds) == 2
        numbers = numbers and all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)
        if not numbers or not bounds[0] < bounds[1] or (kind == "log_uniform" and bounds[0] <= 0):
            low = " with 0 < lo" if kind == "log_uniform" else ""
            raise SweepError(f"{where}: {kind} takes [lo, hi] with lo < hi{low}; got {bounds!r}")
    return axes


def _recipe(base_raw: dict[str, Any], values: dict[str, Any], path: Path, where: str) -> Recipe:
    raw = copy.deepcopy(base_raw)
    for key, value in values.items():
        try:
            set_key(raw, key, value, f"{path}: {where} '{key}'")
        except RecipeError as exc:
            raise SweepError(str(exc)) from None
    try:
        return recipe_from_dict(raw, source=f"{path} ({where})")
    except RecipeError as exc:
        raise SweepError(str(exc)) from None


def _points(sweep: Sweep, base_raw: dict[str, Any]) -> list[SweepPoint]:
    if sweep.rungs:
        return _ladder(sweep, base_raw)
    if sweep.samples:
        chosen = _draws(sweep)
    else:
        chosen = [dict(zip(sweep.axes, combo)) for combo in itertools.product(*sweep.axes.values())]
    points, seen = [], set()
    for values in chosen:
        name = run_name(sweep.name, values)
        if name in seen:
            name = f"{name}-{len(points) + 1}"
        seen.add(name)
        recipe = _recipe(base_raw, {**sweep.fixed, **values}, sweep.path, f"run {name}")
        points.append(SweepPoint(name, values, recipe))
    return points


def _ladder(sweep: Sweep, base_raw: dict[str, Any]) -> list[SweepPoint]:
    """Run i: the base with the changes of rungs 1..i; named `<sweep>-<i>-<rung>`."""
    points, values = [], {}
    for i, rung in enumerate(sweep.rungs, 1):
        values = {**values, **rung["set"]}
        name = f"{sweep.name}-{i}-{rung['name']}"
        recipe = _recipe(base_raw, {**sweep.fixed, **values}, sweep.path, f"run {name}")
        points.append(SweepPoint(name, dict(values), recipe))
    return points


def _draws(sweep: Sweep) -> list[dict[str, Any]]:
    """`samples` random points: distinct grid points when every axis is a list, else independent draws."""
    rng = random.Random(sweep.seed)
    lists = {k: v for k, v in sweep.axes.items() if isinstance(v, list)}
    if len(lists) == len(sweep.axes):
        size = math.prod(len(v) for v in lists.values())
        if sweep.samples > size:
            raise SweepError(f"{sweep.path}: 'samples' = {sweep.samples} but the grid has only {size} points")
        grid = list(itertools.product(*lists.values()))
        return [dict(zip(lists, grid[i])) for i in sorted(rng.sample(range(size), sweep.samples))]
    draws = []
    for _ in range(sweep.samples):
        values = {}
        for key, axis in sweep.axes.items():
            if isinstance(axis, list):
                values[key] = rng.choice(axis)
                continue
            ((kind, (lo, hi)),) = axis.items()
            if kind == "log_uniform":
                values[key] = float(f"{math.exp(rng.uniform(math.log(lo), math.log(hi))):.4g}")
            else:
                values[key] = float(f"{rng.uniform(lo, hi):.4g}")
        draws.append(values)
    return draws


def run_name(sweep_name: str, values: dict[str, Any]) -> str:
    """`<sweep>-<value>-...`: a string value as itself, any other as `key=value` (its last key part)."""
    parts = []
    for key, value in values.items():
        if isinstance(value, str):
            parts.append(value)
            continue
        if isinstance(value, bool):
            text = str(value).lower()
        elif isinstance(value, float):
            text = f"{value:.3g}"
        elif isinstance(value, list):
            text = "+".join(str(v) for v in value)[:24]
        else:
            text = str(value)
        parts.append(f"{key.rsplit('.', 1)[-1]}={text}")
    return re.sub(r"[^\w.=+-]", "_", "-".join([sweep_name, *parts]))[:200]
