"""Checkpoints as safetensors plus JSON: no pickle, so loading someone else's run runs no code."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from workbench.engine.atomic_files import fsync_dir, read_json, write_atomic_with, write_json_atomic
from workbench.engine.errors import UserError


class CheckpointError(UserError):
    """A checkpoint that is missing or does not fit the model."""


def save_checkpoint(
    folder: Path,
    tag: str,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    state: dict[str, Any] | None = None,
    device: torch.device = torch.device("cpu"),
) -> None:
    """Write `tag.safetensors` (weights), `tag.optim.safetensors` (optimizer, RNG) and `tag.json` (the rest).

    The random state saved with the optimizer is the CPU's and, training on a GPU, that GPU's: the
    current CUDA device's may be another (a trainer started with --device cuda:2), and reading it would
    start CUDA in a trainer that runs on the CPU.

    All or nothing, whenever the process dies: each file is first written whole under a pending name
    (`.tag.json.pending` last, the commit record), then the three are renamed into place; `recover`
    finishes the renames of a committed checkpoint and drops the files of one that was not.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # A stamp shared by the three files tells a complete checkpoint from one cut short by a crash.
    stamp = {"stamp": str(time.time_ns())}
    _save_tensors(_pending(folder, f"{tag}.safetensors"), model.state_dict(), stamp)
    meta: dict[str, Any] = {"state": state or {}, **stamp}
    if optimizer is not None:
        tensors, meta["optimizer"] = _flatten_optimizer(optimizer.state_dict())
        tensors["rng.torch"] = torch.get_rng_state()
        if device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
        _save_tensors(_pending(folder, f"{tag}.optim.safetensors"), tensors, stamp)
    write_json_atomic(_pending(folder, f"{tag}.json"), meta)
    _commit(folder, tag)


CHECKPOINT_FILES = ("{tag}.safetensors", "{tag}.optim.safetensors", "{tag}.json")  # the commit record last


def _pending(folder: Path, name: str) -> Path:
    return folder / f".{name}.pending"


def _commit(folder: Path, tag: str) -> None:
    """Rename a checkpoint's pending files into place (again, after a crash: what is left of them)."""
    for pattern in CHECKPOINT_FILES:
        name = pattern.format(tag=tag)
        if _pending(folder, name).is_file():
            os.replace(_pending(folder, name), folder / name)
    fsync_dir(folder)


def recover(folder: Path) -> list[str]:
    """Finish the checkpoints whose writing a crash interrupted after their commit record, and delete the
    pending files of those it interrupted before (their previous versions are whole). Call it holding the
    run's lock; returns the tags finished."""
    folder = Path(folder)
    finished = []
    for record in folder.glob(".*.json.pending"):
        tag = record.name[1 : -len(".json.pending")]
        _commit(folder, tag)
        finished.append(tag)
    for leftover in folder.glob(".*.pending"):
        leftover.unlink(missing_ok=True)
    return sorted(finished)


def load_weights(folder: Path, tag: str, model: torch.nn.Module) -> dict[str, Any]:
    """Load a checkpoint's weights into `model`; returns the checkpoint's JSON state."""
    folder = Path(folder)
    weights = folder / f"{tag}.safetensors"
    if not weights.is_file():
        raise CheckpointError(f"{weights}: no such checkpoint")
    tensors = _read_tensors(weights)
    mismatch = _mismatch(tensors, model.state_dict())
    if mismatch:
        raise CheckpointError(f"{weights}: does not fit this run's model: {mismatch}")
    try:
        model.load_state_dict(tensors)
    except (RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{weights}: does not fit this run's model ({_first_line(exc)})") from None
    return read_state(folder, tag)


def _mismatch(tensors: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> str:
    """The first way a file's tensors differ from the model's, in words ("" when they fit)."""
    for name, want in expected.items():
        got = tensors.get(name)
        if got is None:
            return f"tensor {name!r} is missing"
        if got.shape != want.shape:
            return f"tensor {name!r} has shape {list(got.shape)}, the model's is {list(want.shape)}"
        if got.dtype != want.dtype:
            return f"tensor {name!r} is {str(got.dtype).removeprefix('torch.')}, the model's is " + str(
                want.dtype
            ).removeprefix("torch.")
    extra = sorted(set(tensors) - set(expected))
    return f"tensor {extra[0]!r} is not one of the model's" if extra else ""


def save_average(folder: Path, tag: str, sources: list[str], state: dict[str, Any]) -> None:
    """Write `tag` as the element-wise mean of the weights of the checkpoints `sources`.

    Averaging the last few checkpoints of a run smooths out the noise of the final updates and usually
    scores a little better than any one of them (Junczys-Dowmunt et al. 2016; Vaswani et al. 2017).
    """
    folder = Path(folder)
    total: dict[str, torch.Tensor] = {}
    for source in sources:
        for name, tensor in _read_tensors(folder / f"{source}.safetensors").items():
            if name in total:
                total[name] += tensor.double()
            else:
                total[name] = tensor.double()
    stamp = {"stamp": str(time.time_ns())}
    averaged = {name: (t / len(sources)).float() for name, t in total.items()}
    _save_tensors(_pending(folder, f"{tag}.safetensors"), averaged, stamp)
    write_json_atomic(_pending(folder, f"{tag}.json"), {"state": {**state, "averaged": sources}, **stamp})
    _commit(folder, tag)


def read_state(folder: Path, tag: str) -> dict[str, Any]:
    """The JSON state of a checkpoint ({} when it has none)."""
    path = Path(folder) / f"{tag}.json"
    return _read_meta(path).get("state", {}) if path.is_file() else {}


def load_checkpoint(
    folder: Path,
    tag: str,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device = torch.device("cpu"),
) -> dict:
    """Restore weights, optimizer and RNG states (a GPU's into `device`, where the run now trains);
    returns the checkpoint's JSON state."""
    folder = Path(folder)
    state = load_weights(folder, tag, model)
    meta = _read_meta(folder / f"{tag}.json")
    for name in (f"{tag}.safetensors", f"{tag}.optim.safetensors"):
        if _stamp(folder / name) != meta.get("stamp"):
            raise CheckpointError(
                f"{folder / tag}: incomplete checkpoint (its files are from different saves)"
            )
    tensors = _read_tensors(folder / f"{tag}.optim.safetensors")
    torch.set_rng_state(tensors.pop("rng.torch"))
    cuda_rng = tensors.pop("rng.cuda", None)
    if cuda_rng is not None and device.type == "cuda":
        torch.cuda.set_rng_state(cuda_rng, device)
    optimizer.load_state_dict(_unflatten_optimizer(tensors, meta["optimizer"]))
    return state


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors; a clear error for a file that is missing, damaged or cut short (a copy
    of a run folder that did not finish, say)."""
    try:
        return load_file(path)
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint file ({_first_line(exc)})") from None


def _stamp(path: Path) -> str | None:
    """The save stamp in a safetensors file's header."""
    try:
        with safe_open(path, framework="pt") as f:
            return (f.metadata() or {}).get("stamp")
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint file ({_first_line(exc)})") from None


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        meta = read_json(path)
    except (OSError, ValueError) as exc:  # missing, unreadable, not UTF-8, not JSON
        raise CheckpointError(f"{path}: not a readable checkpoint file ({_first_line(exc)})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: not a readable checkpoint file (not a JSON object)")
    return meta


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    # safetensors refuses tensors that share memory (tied embeddings): give each name its own copy.
    seen: set[int] = set()
    plain = {}
    for name, tensor in tensors.items():
        tensor = tensor.detach().to("cpu").contiguous()
        ptr = tensor.data_ptr()
        plain[name] = tensor.clone() if ptr in seen else tensor
        seen.add(ptr)
    write_atomic_with(path, lambda tmp: save_file(plain, tmp, metadata=metadata))


def _flatten_optimizer(sd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for param_id, values in sd["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{param_id}.{key}"] = value
            else:
                scalars.setdefault(str(param_id), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in tensors.items():
        _, param_id, key = name.split(".", 2)
        state.setdefault(int(param_id), {})[key] = tensor
    for param_id, values in meta["scalars"].items():
        state.setdefault(int(param_id), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


def step_tag(step: int) -> str:
    """The tag of the weights kept at validation step `step` for averaging."""
    return f"step-{step}"


def saved_steps(folder: Path) -> list[int]:
    """The steps of the `step-N` checkpoints in `folder`, in order."""
    return sorted(int(f.stem.removeprefix("step-")) for f in Path(folder).glob("step-*.json"))


def average_last(folder: Path, step: int, n: int, tag: str = "averaged") -> None:
    """Write `tag` as the mean of the last n `step-N` checkpoints up to `step`, deleting the others.

    Checkpoints past `step` are left over from before a resume: not part of the run's history.
    """
    folder = Path(folder)
    steps = saved_steps(folder)
    kept = [s for s in steps if s <= step][-n:]
    for old in set(steps) - set(kept):
        for path in folder.glob(f"{step_tag(old)}.*"):
            path.unlink(missing_ok=True)
    save_average(folder, tag, [step_tag(s) for s in kept], {"step": step})
