"""The command line as a user meets it: real processes, real exit codes, no tracebacks."""

import contextlib
import io
import json
import os
import subprocess
import sys
import threading
import time

import psutil
import pytest

TINY = [
    "--set",
    "data.train_size=300",
    "--set",
    "data.valid_size=30",
    "--set",
    "model.hidden_size=32",
    "--set",
    "model.embedding_size=16",
    "--set",
    "training.valid_every=10",
    "--set",
    "training.threads=1",
    "--set",
    "tokenizer.vocab_size=60",
]


def s2s(*args, stdin=None, cwd=None):
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "workbench", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    done = s2s(
        "train",
        "dates-en-fr",
        "--headless",
        "--runs-dir",
        str(runs),
        "--name",
        "tiny",
        "--max-steps",
        "20",
        *TINY,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(runs / "tiny")
    return runs / "tiny"


def test_headless_train_reports_validation_and_the_run_folder(trained_run):
    status = json.loads((trained_run / "status.json").read_text())
    assert status["state"] == "finished" and status["step"] == 20


def test_headless_progress_shows_the_time_left_of_a_time_limited_run(tmp_path):
    from rich.console import Console

    from workbench.cli.display import TrainingDisplay
    from workbench.engine.recipe import load_recipe
    from workbench.engine.run_folder import RunFolder

    run = RunFolder.create(tmp_path, load_recipe("reverse"), name="timed")
    run.write_status("running", step=0, max_steps=0, max_minutes=1.0, wall_at_start=0.0)
    out = io.StringIO()
    display = TrainingDisplay(Console(file=out, width=200), run)
    display.event("train", {"step": 20, "loss": 1.0, "tgt_tokens_per_s": 100.0, "lr": 1e-3, "wall": 20.0})
    assert out.getvalue().strip().endswith("ETA 0:00:40")


def test_decode_reads_stdin_lines_and_writes_one_line_each(trained_run):
    out = s2s("decode", str(trained_run), "--beam", "2", stdin="Jan 3, 1999\nMonday, May 1, 2000\n\n")
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.splitlines()) == 3  # an empty line gives an empty translation


def test_decode_and_eval_use_the_threads_asked_for_or_one_per_idle_core(trained_run, tmp_path, monkeypatch):
    import torch
    from typer.testing import CliRunner

    from workbench.cli.main import app
    from workbench.engine import devices

    asked = []
    monkeypatch.setattr(devices, "cpu_threads", lambda n: asked.append(n) or (n or 1))
    (tmp_path / "src").write_text("Jan 3, 1999\n")
    (tmp_path / "ref").write_text("3 janvier 1999\n")
    score = ["eval", str(trained_run), "--src", str(tmp_path / "src"), "--ref", str(tmp_path / "ref")]
    before = torch.get_num_threads()
    try:
        for args, threads in (
            (["decode", str(trained_run), "--threads", "3"], 3),
            (["decode", str(trained_run)], 1),  # the stand-in's count of idle cores
            ([*score, "--threads", "2"], 2),
        ):
            torch.set_num_threads(4)
            result = CliRunner().invoke(app, args, input="Jan 3, 1999\n")
            assert result.exit_code == 0, result.output
            assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)
    assert asked == [3, 0, 2]


def s2s_bytes(*args, stdin: bytes):
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "workbench", *args]
    return subprocess.run(cmd, input=stdin, capture_output=True, env=env, timeout=300)


def test_decode_stops_at_a_line_that_is_not_utf8_after_translating_the_lines_before(trained_run):
    out = s2s_bytes("decode", str(trained_run), stdin=b"Jan 3, 1999\nMay 1, 2000\n\xff\xfe bad\nJune 2\n")
    assert out.returncode == 2
    assert b"standard input, line 3: not UTF-8 text (byte 0)" in out.stderr
    assert b"Traceback" not in out.stderr
    assert len(out.stdout.splitlines()) == 2


def test_decode_reads_a_line_per_newline_whatever_the_line_ends_and_the_byte_order_mark(trained_run):
    plain = s2s_bytes("decode", str(trained_run), stdin=b"Jan 3, 1999\nMay 1, 2000\n")
    windows = s2s_bytes("decode", str(trained_run), stdin=b"\xef\xbb\xbfJan 3, 1999\r\nMay 1, 2000\r\n")
    assert windows.returncode == 0 and windows.stdout == plain.stdout
    # A Unicode line separator inside a sentence does not split it: one line in, one line out.
    inside = s2s_bytes("decode", str(trained_run), stdin="Jan 3,\u2028 1999\n".encode())
    assert inside.returncode == 0 and len(inside.stdout.splitlines()) == 1


def test_decode_n_best_prints_scores_in_order(trained_run):
    out = s2s("decode", str(trained_run), "--beam", "3", "--n-best", "3", stdin="Jan 3, 1999\n")
    scores = [float(line.split("\t")[0]) for line in out.stdout.splitlines()]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_decode_in_bf16_or_int8_translates_each_line_quietly(trained_run, precision):
    out = s2s(
        "decode", str(trained_run), "--precision", precision, stdin="Jan 3, 1999\nMonday, May 1, 2000\n"
    )
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.splitlines()) == 2
    assert out.stderr == ""  # torch's deprecation warnings about its quantization API stay hidden


def test_a_wrong_precision_is_a_clear_error(trained_run):
    for command in (["replay", str(trained_run)], ["--runs-dir", str(trained_run.parent)]):
        wrong = s2s(*command, "--precision", "int4")
        assert (
            wrong.returncode == 2 and "precision must be one of fp32, bf16, int8; got 'int4'" in wrong.stderr
        )
    bad = s2s("decode", str(trained_run), "--precision", "fp16", stdin="Jan 3, 1999\n")
    assert bad.returncode == 2
    assert "precision must be one of fp32, bf16, int8; got 'fp16'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_the_workbench_without_a_terminal_says_so_instead_of_painting_into_a_pipe(trained_run):
    for command in (["--runs-dir", str(trained_run.parent)], ["replay", str(trained_run)]):
        out = s2s(*command, stdin="")
        assert out.returncode == 2 and "the workbench needs a terminal" in out.stderr
        assert "\x1b[" not in out.stdout  # no screen painted


def test_decode_cuts_a_100000_character_line_to_the_input_cap_says_so_and_stays_small(trained_run):
    long_line = ("Saturday, November 21, 2026 " * 4000)[:100_000]
    start = time.perf_counter()
    process = psutil.Popen(
        [sys.executable, "-m", "workbench", "decode", str(trained_run), "--beam", "5"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1"},
    )
    peak = [0]

    def watch():  # the resident memory of the decode process, sampled until it exits
        while process.poll() is None:
            with contextlib.suppress(psutil.Error):
                peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    out, err = process.communicate(f"Jan 3, 1999\n{long_line}\nMay 1, 2000\n".encode(), timeout=120)
    watcher.join()
    seconds = time.perf_counter() - start
    assert process.returncode == 0, err.decode()
    assert len(out.decode().splitlines()) == 3
    (note,) = err.decode().splitlines()
    assert note.startswith("note: line 2: ") and note.endswith(
        "pieces long: translated its first 256 (decoding.max_input_pieces)"
    )
    assert seconds < 30, f"{seconds:.1f} s"
    assert peak[0] < 1.5e9, f"{peak[0] / 1e6:.0f} MB"


def test_decode_attention_prints_a_grid_with_the_source_pieces(trained_run):
    out = s2s("decode", str(trained_run), "--attention", stdin="Jan 3, 1999\n")
    assert out.returncode == 0
    assert "</s>" in out.stdout and "Jan" in out.stdout


def test_eval_prints_sacrebleu_scores_and_signatures(trained_run, tmp_path):
    (tmp_path / "src").write_text("Jan 3, 1999\nMonday, May 1, 2000\n")
    (tmp_path / "ref").write_text("3 janv. 1999\nlundi 1 mai 2000\n")
    out = s2s(
        "eval", str(trained_run), "--src", str(tmp_path / "src"), "--ref", str(tmp_path / "ref"), "--json"
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert {"bleu", "chrf", "exact", "bleu_signature", "chrf_signature"} <= set(result)
    assert "tok:13a" in result["bleu_signature"]


def test_resume_continues_to_a_later_step(trained_run):
    out = s2s("resume", str(trained_run), "--max-steps", "25")
    assert out.returncode == 0, out.stderr
    assert json.loads((trained_run / "status.json").read_text())["step"] == 25


def test_runs_and_recipes_list(trained_run):
    assert "tiny" in s2s("runs", "--runs-dir", str(trained_run.parent)).stdout
    assert "dates-en-zh" in s2s("recipes").stdout


def test_options_given_before_the_command_apply_to_it(trained_run, tmp_path):
    """`s2s-bench --runs-dir X runs` lists X, as `s2s-bench runs --runs-dir X` does (it listed ./runs)."""
    assert "tiny" in s2s("--runs-dir", str(trained_run.parent), "runs", cwd=tmp_path).stdout
    assert "no runs in" in s2s("runs", cwd=tmp_path).stdout
    wrong = s2s("--precision", "int4", "decode", str(trained_run), stdin="Jan 3, 1999\n")
    assert wrong.returncode == 2 and "got 'int4'" in wrong.stderr
    both = s2s(
        "--precision", "int4", "decode", str(trained_run), "--precision", "fp32", stdin="Jan 3, 1999\n"
    )
    assert both.returncode == 0, both.stderr  # the command's own option wins


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "no-such-recipe", "--headless"], "no such recipe"),
        (
            ["train", "dates-en-fr", "--headless", "--set", "model.cell=transformer"],
            "'model.cell' must be one of",
        ),
        (["train", "dates-en-fr", "--headless", "--set", "model.hiden=3"], "unknown key 'model.hiden'"),
        (["train", "multi30k-de-en", "--headless", "--set", "data.dir=/nonexistent"], "/nonexistent"),
        (["train", "dates-en-fr", "--headless", "--set", "data.tgt=xx-nowhere"], "xx"),
        (["train", "dates-en-fr", "--headless", "--device", "cuda"], "no CUDA"),
        (["decode", "/nonexistent/run"], "no such run folder"),
        (["resume", "/nonexistent/run"], "no such run folder"),
        (["control", "/nonexistent/run", "stop"], "no such run folder"),
    ],
)
def test_bad_input_gets_one_line_and_exit_code_2(tmp_path, args, message):
    out = s2s(*args, *(["--runs-dir", str(tmp_path)] if args[0] == "train" else []), cwd=tmp_path)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    assert message in out.stderr
    assert not list(tmp_path.iterdir())  # no half-made run folder left behind


def test_eval_with_mismatched_files_is_a_clear_error(trained_run, tmp_path):
    (tmp_path / "src").write_text("a\nb\n")
    (tmp_path / "ref").write_text("a\n")
    out = s2s("eval", str(trained_run), "--src", str(tmp_path / "src"), "--ref", str(tmp_path / "ref"))
    assert out.returncode == 2 and "2 lines" in out.stderr and "Traceback" not in out.stderr
    (tmp_path / "empty").write_text("")
    out = s2s("eval", str(trained_run), "--src", str(tmp_path / "empty"), "--ref", str(tmp_path / "empty"))
    assert out.returncode == 2 and "no sentences to score" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("content", [b"\xff\xfe bad\n", None])
def test_eval_of_a_file_that_is_not_utf8_text_or_a_folder_is_a_clear_error(trained_run, tmp_path, content):
    src = tmp_path / "src"
    if content is None:
        src.mkdir()
    else:
        src.write_bytes(content)
    (tmp_path / "ref").write_text("a\n")
    out = s2s("eval", str(trained_run), "--src", str(src), "--ref", str(tmp_path / "ref"))
    message = "line 1: not UTF-8 text (byte 0)" if content else "cannot read it (Is a directory)"
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize(
    "damaged, command",
    [
        ("best.safetensors", "decode"),
        ("best.json", "decode"),
        ("last.json", "resume"),
        ("last.safetensors", "resume"),
        ("last.optim.safetensors", "resume"),
    ],
)
def test_a_checkpoint_cut_short_is_a_clear_error(trained_run, tmp_path, damaged, command):
    """A run folder whose copy did not finish: one line naming the file, exit code 2, no traceback."""
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(trained_run, run)
    path = run / "checkpoints" / damaged
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    args = ["decode", str(run)] if command == "decode" else ["resume", str(run), "--max-steps", "30"]
    out = s2s(*args, stdin="Jan 3, 1999\n")
    assert out.returncode == 2, out.stderr
    assert f"{damaged}: not a readable checkpoint file" in " ".join(out.stderr.split())
    assert "Traceback" not in out.stderr


def test_a_model_too_large_for_memory_is_a_clear_error_in_the_terminal_and_the_run_status(tmp_path):
    """torch's allocator error (here raised in place of a 149 GiB allocation, which a machine that
    overcommits memory would grant) becomes one line naming the recipe keys to lower, exit code 2."""
    message = "DefaultCPUAllocator: can't allocate memory: you tried to allocate 160000000000 bytes."
    script = "\n".join(
        [
            "import sys, workbench.engine.setup as t",
            "def build(*a, **k):",
            f"    raise RuntimeError({message!r})",
            "t.build_model = build",
            "from workbench.cli.main import main",
            "sys.argv = ['s2s-bench', 'train', 'reverse', '--headless', '--runs-dir', sys.argv[1]]",
            "sys.argv += ['--name', 'big']",
            "main()",
        ]
    )
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "300"}
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 2, out.stderr
    assert (
        "out of memory (it tried to allocate 149.0 GiB)" in out.stderr and "model.hidden_size" in out.stderr
    )
    assert "Traceback" not in out.stderr
    status = json.loads((tmp_path / "big" / "status.json").read_text())
    assert status["state"] == "failed" and status["reason"].startswith("out of memory (it tried")


def test_decode_from_a_run_without_checkpoints_is_a_clear_error(tmp_path):
    from workbench.engine.recipe import load_recipe
    from workbench.engine.run_folder import RunFolder

    run = RunFolder.create(tmp_path, load_recipe("reverse"), name="empty")
    out = s2s("decode", str(run.path), stdin="a b\n")
    assert out.returncode == 2 and "no 'last' checkpoint" in out.stderr
