"""The command lines the job system starts, and the `train` line the workbench shows, are ones the CLI and
torchrun read back to the same values."""

import shlex
import sys
from pathlib import Path

import pytest
import typer

from workbench.cli.main import app
from workbench.engine.run_folder import RunFolder
from workbench.jobs.commands import Rendezvous, TrainCommand, TrainerCommand, runner_argv


def parsed(arguments: list[str]) -> tuple[str, dict]:
    """`-m workbench COMMAND ARGS...` as the CLI reads it: the command's name and its parameters."""
    assert arguments[:2] == ["-m", "workbench"]
    group = typer.main.get_command(app)
    name, *rest = arguments[2:]
    return name, group.commands[name].make_context(name, rest).params


RUN = RunFolder(Path("/runs/r1"))


@pytest.mark.parametrize(
    "command",
    [
        TrainerCommand(RUN),
        TrainerCommand(RUN, "cuda:1", max_steps=700, max_minutes=2.5, threads=3, nproc=4, quiet=True),
    ],
    ids=["defaults", "every option"],
)
def test_a_trainer_command_line_is_a_resume_the_cli_reads_back_to_the_same_values(command):
    name, params = parsed(command.argv()[1:])
    assert command.argv()[0] == sys.executable
    assert name == "resume" and params["headless"] is True
    assert Path(params["run"]) == RUN.path
    for key in ("device", "max_steps", "max_minutes", "threads", "nproc", "quiet"):
        assert params[key] == getattr(command, key), key
    assert (params["nnodes"], params["node_rank"], params["master_addr"]) == (1, 0, None)


def test_the_runner_command_line_is_a_sweep_runner_the_cli_reads_back():
    argv = runner_argv(Path("/runs"), "grid")
    name, params = parsed(argv[1:])
    assert (name, params["name"], Path(params["runs_dir"])) == ("sweep-runner", "grid", Path("/runs"))


@pytest.mark.parametrize(
    "rendezvous, expected",
    [
        (Rendezvous(), {"nnodes": "1", "node_rank": 0, "standalone": True}),
        (
            Rendezvous(2, 1, "box1", 29501),
            {"nnodes": "2", "node_rank": 1, "master_addr": "box1", "master_port": 29501, "standalone": False},
        ),
        (
            Rendezvous(2, 0, rdzv_endpoint="box2:29400"),
            {"rdzv_backend": "c10d", "rdzv_endpoint": "box2:29400", "rdzv_id": "r1", "standalone": False},
        ),
        (Rendezvous(3), {"nnodes": "3", "master_addr": "127.0.0.1", "master_port": 29500}),
    ],
    ids=["one machine", "master address", "c10d endpoint", "several nodes, no address"],
)
def test_torchrun_reads_its_options_and_each_process_runs_the_trainer_command_without_nproc(
    rendezvous, expected
):
    from torch.distributed.run import parse_args

    command = TrainerCommand(RUN, "cpu", max_steps=50, threads=2, nproc=2, quiet=True)
    args = parse_args(command.torchrun_arguments(rendezvous))
    assert (args.nproc_per_node, args.max_restarts, args.module) == ("2", 0, True)
    assert {key: getattr(args, key) for key in expected} == expected
    name, params = parsed(["-m", args.training_script, *args.training_script_args])
    assert name == "resume" and params["nproc"] is None
    assert (params["device"], params["max_steps"], params["threads"], params["quiet"]) == ("cpu", 50, 2, True)


@pytest.mark.parametrize(
    "command",
    [
        TrainCommand("dates-en-fr"),
        TrainCommand(
            "runs/old run/recipe.toml",
            ("model.cell=lstm", 'data.src="en us"'),
            "my-run",
            "/data/runs",
            "cuda",
            max_steps=300,
            max_minutes=1.5,
            threads=2,
            nproc=2,
        ),
    ],
    ids=["defaults", "every option"],
)
def test_a_train_command_line_is_one_the_cli_reads_back_to_the_same_values(command):
    words = shlex.split(command.shell_line())
    assert words[0] == "s2s-bench" and words[1:] == command.arguments()
    name, params = parsed(["-m", "workbench", *words[1:]])
    assert name == "train" and params["recipe"] == command.recipe
    assert tuple(params["overrides"]) == command.overrides
    assert params["runs_dir"] == (None if command.runs_dir == "runs" else Path(command.runs_dir))
    for key in ("name", "device", "max_steps", "max_minutes", "threads", "nproc"):
        assert params[key] == getattr(command, key), key


def test_the_trainer_of_a_train_command_trains_its_run_with_its_device_processes_and_limits():
    command = TrainCommand("dates-en-fr", device="cpu", max_steps=300, max_minutes=1.5, threads=2, nproc=2)
    assert command.trainer(RUN) == TrainerCommand(RUN, "cpu", 300, 1.5, threads=2, nproc=2)


def test_train_and_resume_take_the_trainer_options_and_hand_the_node_options_over_as_one_rendezvous(
    tmp_path, monkeypatch
):
    from typer.testing import CliRunner

    import workbench.cli.main as main
    from workbench.engine.recipe import load_recipe

    run = RunFolder.create(tmp_path, load_recipe("reverse"), "r")
    seen = {}
    monkeypatch.setattr(
        main, "_train", lambda command, rendezvous, headless: seen.update(c=command, r=rendezvous)
    )
    node = ["--nnodes", "2", "--node-rank", "1", "--master-addr", "box1", "--master-port", "29501"]
    result = CliRunner().invoke(app, ["resume", str(run.path), "--threads", "2", "--nproc", "3", *node])
    assert result.exit_code == 0, result.output
    assert seen["r"] == Rendezvous(2, 1, "box1", 29501) and (seen["c"].threads, seen["c"].nproc) == (2, 3)
    group = typer.main.get_command(app)
    train, resume = ({p.name for p in group.commands[name].params} for name in ("train", "resume"))
    torchrun = {"threads", "nproc", "nnodes", "node_rank", "master_addr", "master_port", "rdzv_endpoint"}
    assert torchrun <= train & resume
