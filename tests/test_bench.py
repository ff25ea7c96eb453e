"""Benchmarks: the FLOP count against a hand count and torch's counter, and seconds-long smokes of the
train and decode benches through the CLI (the JSON contract of ../shared/bench/compare). Never timed."""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from typer.testing import CliRunner

from workbench.benchmarks import bench_decode, count_flops, translator_from_run
from workbench.benchmarks import profile_train as prof
from workbench.benchmarks.decode_bench import percentile
from workbench.cli.bench import bench_app
from workbench.engine.devices import fast_bf16_cpu
from workbench.engine.model import build_model
from workbench.engine.recipe import RecipeError, load_recipe
from workbench.engine.run_folder import RunFolder
from workbench.engine.session import TrainingSession

TINY = [
    "data.train_size=300",
    "data.valid_size=30",
    "data.test_size=0",
    "model.embedding_size=16",
    "model.hidden_size=32",
    "training.batch_size=16",
    "training.threads=1",
]
CONTRACT = ("tgt_tokens_per_s", "src_tokens_per_s", "params", "model_flops_per_s", "matmul_peak_flops_per_s")


def small_gru(*extra):
    return load_recipe(
        "reverse",
        [
            "model.cell='gru'",
            "model.embedding_size=4",
            "model.hidden_size=6",
            "model.bidirectional=true",
            "model.attention='bahdanau'",
            "model.input_feeding=true",
            "model.decoder_init='bridge'",
            *extra,
        ],
    ).model


def test_flops_match_a_hand_count_of_a_small_gru_model():
    # E=4, H=6, bi-GRU encoder (K=12), GRU decoder with input feeding, Bahdanau (A=6), 10 target words.
    flops = count_flops(small_gru(), src_vocab=9, tgt_vocab=10)
    encoder = 2 * (2 * 4 * 18 + 2 * 6 * 18)  # two directions, input 4 -> 3 gates x 6, hidden 6 -> 18
    keys = 2 * 12 * 6
    assert flops.per_src_token == encoder + keys == 864
    decoder_rnn = 2 * (4 + 6) * 18 + 2 * 6 * 18  # input: embedding + previous attentional vector
    query, attentional, output = 2 * 6 * 6, 2 * (6 + 12) * 6, 2 * 6 * 10
    assert flops.per_tgt_token == decoder_rnn + query + attentional + output == 984
    assert flops.per_src_tgt_pair == 2 * 6 + 2 * 12  # score v . tanh(.) and the weighted sum of states
    assert flops.per_sentence == 2 * 12 * 6  # bridge
    # Two sentences (source 3 and 2, target 4 and 1): attention scales with source x target length.
    forward = 5 * 864 + 5 * 984 + (3 * 4 + 2 * 1) * 36 + 2 * 144
    assert flops.forward([3, 2], [4, 1]) == forward
    assert flops.training([3, 2], [4, 1]) == 3 * forward
    per_token = flops.training_per_tgt_token(mean_src_len=2.5, mean_tgt_len=2.5)
    assert per_token == pytest.approx(3 * (2.5 * 864 + 2.5 * 984 + 6.25 * 36 + 144) / 2.5)


def test_flops_of_the_reference_model():
    flops = count_flops(load_recipe("recipes/bench-gru512.toml", ["data.dir=x"]).model, 8000, 8000)
    assert flops.parts["output_projection"] == 2 * 512 * 8000
    assert flops.per_tgt_token == 14_221_312 and flops.per_src_token == 5_767_168


@pytest.mark.parametrize(
    "extra",
    [
        [],
        [
            "model.cell='lstm'",
            "model.attention='general'",
            "model.encoder_layers=2",
            "model.decoder_layers=2",
        ],
        ["model.attention='dot'", "model.bidirectional=false", "model.tie_embeddings=true"],
        ["model.attention='concat'", "model.decoder_init='zeros'", "model.tie_embeddings=true"],
        ["model.attention='none'", "model.input_feeding=false", "model.cell='rnn'"],
        ["model.input_feeding=false"],
        ["model.one_hot=true", "model.reverse_source=true"],
        ["model.attention='cosine'"],
        ["model.attention='cosine'", "model.attention_combine='add'", "model.input_feeding=false"],
        ["model.attention_combine='add'", "model.input_feeding=false"],
        ["model.decoder_order='bahdanau'", "model.input_feeding=false"],
        ["model.decoder_order='bahdanau'", "model.input_feeding=false", "model.one_hot=true"],
        ["model.attention='none'", "model.context_every_step=true", "model.input_feeding=false"],
        ["model.decoder_order='bahdanau'", "model.input_feeding=false", "model.deep_output='maxout'"],
        [
            "model.cell='lstm'",
            "model.attention='cosine'",
            "model.attention_combine='add'",
            "model.input_feeding=false",
            "model.encoder_layers=2",
            "model.decoder_layers=2",
            "model.decoder_init='final'",
        ],
        ["model.cell='lstm'", "model.decoder_order='bahdanau'", "model.input_feeding=false"],
    ],
)
def test_flops_agree_with_torch_flop_counter(extra):
    cfg = small_gru("model.dropout=0.0", *extra)
    model = build_model(cfg, 9, 10)
    batch, src_len, tgt_len = 3, 7, 5
    src = torch.randint(4, 9, (batch, src_len))
    tgt = torch.randint(4, 10, (batch, tgt_len))
    with FlopCounterMode(display=False) as counter:
        model(src, torch.full((batch,), src_len), tgt)
    flops = count_flops(cfg, 9, 10)
    # torch's counter sees GRU and RNN layers as matmuls but not inside the fused CPU LSTM kernel (the
    # encoder, and the decoder when it is not a single cell): add those back from our count.
    unseen = 0
    if cfg.cell == "lstm":
        unseen += batch * src_len * flops.parts["encoder_rnn"]
        if not model.decoder.use_cell:
            unseen += batch * tgt_len * flops.parts["decoder_rnn"]
    assert counter.get_total_flops() + unseen == flops.forward([src_len] * batch, [tgt_len] * batch)


def test_percentile_interpolates_between_order_statistics():
    assert percentile([3.0, 1.0, 2.0, 4.0, 5.0], 50) == 3.0
    assert percentile([1.0, 2.0], 95) == pytest.approx(1.95)
    assert percentile([7.0], 95) == 7.0


def run_bench(*args):
    result = CliRunner().invoke(bench_app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, "--json prints one line"
    return json.loads(lines[0])


def test_bench_train_prints_the_contract_and_leaves_no_files(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    sets = [arg for s in TINY for arg in ("--set", s)]
    out = run_bench(
        "train",
        "reverse",
        *sets,
        "--seconds",
        "1",
        "--warmup-steps",
        "2",
        "--peak-seconds",
        "0.01",
        "--quiet",
    )
    for key in CONTRACT:
        assert out[key] > 0, key
    assert 0 < out["mfu"] <= 1
    assert out["mfu"] == pytest.approx(out["model_flops_per_s"] / out["matmul_peak_flops_per_s"], abs=1e-6)
    assert out["matmul_peak_flops_per_s"] == max(g["flops_per_s"] for g in out["matmul_gemms"].values())
    assert out["params"] == 21_952  # the tiny reverse model (LSTM 16/32, dot attention)
    assert out["steps"] >= 1 and 0 <= out["padding_fraction"] < 1
    assert out["loop_tgt_tokens_per_s"] <= out["tgt_tokens_per_s"]
    assert out["threads"] == 1
    # torch makes its compiler's cache folder in the temporary folder when the first optimizer imports it
    left = [p for p in tmp_path.iterdir() if not p.name.startswith("torchinductor_")]
    assert left == [], "the temporary run folder is removed"


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_bench_decode_with_a_random_model_caps_outputs_at_the_source_length(precision):
    out = run_bench(
        "decode",
        "--recipe",
        "reverse",
        *[a for s in TINY for a in ("--set", s)],
        "--latency-sentences",
        "3",
        "--precision",
        precision,
        "--quiet",
    )
    assert out["weights"] == "random" and out["batch_sentences"] == 30
    assert out["precision"] == precision
    for search in ("greedy", "beam5"):
        assert 0 < out[f"{search}_latency_ms_p50"] <= out[f"{search}_latency_ms_p95"]
        assert out[f"{search}_sentences_per_s"] > 0
        assert out[f"{search}_latency_out_tokens_mean"] <= out["latency_src_tokens_mean"]


def test_bench_decode_of_a_trained_run_uses_its_sentences_nearest_to_20_tokens(tmp_path):
    run = RunFolder.create(tmp_path, load_recipe("reverse", [*TINY, "training.max_steps=3"]), name="r")
    TrainingSession(run, "cpu").train()
    with translator_from_run(run.path, checkpoint="last", precision="bf16") as setup:
        result = bench_decode(setup, beam_size=3, latency_sentences=2, batch_sentences=5)
        lengths = sorted(len(setup.translator.tokenizers.src.encode(s)) for s in setup.sources)
        dtypes = {p.dtype for p in setup.translator.model.parameters()}
    assert result["weights"].startswith("trained")
    assert result["precision"] == "bf16" and dtypes == {torch.bfloat16}
    nearest = sorted(lengths, key=lambda n: abs(n - 20))[:2]
    assert result["latency_src_tokens_mean"] == sum(nearest) / 2
    assert {"greedy_sentences_per_s", "beam3_latency_ms_p95"} <= set(result)
    assert result["batch_sentences"] == 5


@pytest.mark.parametrize("args", [[], ["some-run", "--recipe", "reverse"]])
def test_bench_decode_needs_a_run_or_a_recipe_but_not_both(args):
    with pytest.raises(RecipeError, match="one of the two"):
        CliRunner().invoke(bench_app, ["decode", *args], catch_exceptions=False)


@pytest.mark.parametrize(("cell", "precision"), [("gru", "fp32"), ("lstm", "fp32"), ("gru", "bf16")])
def test_bench_profile_splits_the_step_into_its_parts(cell, precision):
    sets = [*TINY, f"model.cell='{cell}'", f"training.precision='{precision}'"]
    out = run_bench("profile", "reverse", *[a for s in sets for a in ("--set", s)], "--steps", "2")
    parts = out["parts_ms"]
    for name in ("encoder", prof.LOSS, "backward", "optimizer (zero_grad + step)"):
        assert parts[name] > 0, name
    assert sum(ms for name, ms in parts.items() if not name.startswith(" ")) == pytest.approx(
        out["step_ms_profiled"],
        abs=0.01 * len(parts),  # each part rounded to 0.01 ms
    )
    # The named ranges hold most of the forward pass, and none is counted twice.
    named = sum(parts[name] for name in ("encoder", "attention keys + bridge", prof.LOSS))
    named += parts["decoder loop (rnn cell + attention + attentional layer + glue)"]
    assert -0.05 <= parts[prof.REST] < named
    assert "aten::mm" in out["top_ops_self_ms"] or "aten::addmm" in out["top_ops_self_ms"]
    mm = out["matmul"]
    assert 0 < mm["share_of_step"] < 1
    if cell == "gru":
        # Every product counted for MFU is a separate operator, computed on padding too, except the
        # attention's weight-sum gradient (a broadcast multiply, see attention.py): close to the count.
        assert 0.9 * mm["model_flops_per_step"] <= mm["flops_per_step"] <= 2 * mm["model_flops_per_step"]
        assert mm["fused_rnn_ms_per_step"] == 0
    else:  # the encoder's LSTM is one oneDNN kernel: its time counts as product time
        assert mm["fused_rnn_ms_per_step"] > 0
    assert 0 < mm["fraction_of_peak"] and 0 < mm["mfu"] < mm["mfu_ceiling"]
    # MFU against its own peak; a CPU without bf16 instructions trains bf16 recipes in fp32
    bf16 = precision == "bf16" and fast_bf16_cpu()
    assert mm["peak_dtype"] == ("bfloat16" if bf16 else "float32")


@pytest.mark.parametrize(
    ("op", "shapes"),
    [
        ("mm", [(3, 4), (4, 5)]),
        ("addmm", [(5,), (3, 4), (4, 5)]),
        ("addmm_", [(3, 5), (3, 4), (4, 5)]),
        ("bmm", [(2, 3, 4), (2, 4, 5)]),
        ("baddbmm", [(2, 3, 5), (2, 3, 4), (2, 4, 5)]),
        ("addbmm", [(3, 5), (2, 3, 4), (2, 4, 5)]),
    ],
)
def test_the_profile_counts_each_products_flops_as_torch_does(op, shapes):
    tensors = [torch.randn(shape) for shape in shapes]
    with FlopCounterMode(display=False) as counter:
        # torch counts no FLOPs for addmm_ and addbmm: the plain products have the same.
        plain = {"addmm_": "addmm", "addbmm": "baddbmm"}.get(op, op)
        getattr(torch, plain)(*(tensors if op != "addbmm" else [torch.zeros(2, 3, 5), *tensors[1:]]))
    expected = counter.get_total_flops()
    if op == "addbmm":
        assert expected == 2 * 2 * 3 * 4 * 5
    assert prof._gemm_flops(f"aten::{op}", [list(s) for s in shapes]) == expected


def test_the_cuda_ab_script_runs_its_variants_on_the_cpu():
    # scripts/cuda_ab.py is run on GPU machines only (scripts/gpu-check); this smoke keeps it working.
    root = Path(__file__).resolve().parents[1]
    overrides = [arg for o in TINY for arg in ("--set", o)]
    out = subprocess.run(
        [sys.executable, "scripts/cuda_ab.py", "reverse", "--device", "cpu", "--rounds", "1", "--steps", "2",
         "--batch-sizes", "8", *overrides],
        cwd=root, capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    checks = {r["check"]: r for r in records if "check" in r}
    assert checks["fp32 step-loop"]["loss"] == pytest.approx(checks["fp32 fused-decoder"]["loss"], rel=1e-6)
    timed = {r["variant"] for r in records if "variant" in r}
    assert timed == {"fp32 step-loop", "fp32 fused-decoder", "bf16"}
    assert "median target tokens/s" in out
