"""The fused training paths (fast_paths/packed_gru.py, decoder_loop.py) compute what torch's GRU and the
decoder's step loop compute (the reference, under `reference_maths()`), for GRU and LSTM cells and every
attention: the same outputs, attention, dropout masks and gradients, in float64, and training takes them
only where they apply."""

import os
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from workbench.engine import decoders, encoders
from workbench.engine.fast_paths import reference_maths
from workbench.engine.fast_paths.packed_gru import _PackedGRU, packed_gru
from workbench.engine.model import build_model
from workbench.engine.recipe import ModelConfig
from workbench.engine.special_tokens import BOS, PAD

pytestmark = pytest.mark.usefixtures("one_thread")

SRC_V, TGT_V = 23, 19
CONFIG = ModelConfig(embedding_size=8, hidden_size=12, dropout=0.0)


def grads(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("lengths", [(6, 2, 5, 6, 1), (4, 4, 4)])
def test_the_packed_gru_equals_torch_gru(bidirectional, lengths):
    torch.manual_seed(0)
    rnn = torch.nn.GRU(5, 7, batch_first=True, bidirectional=bidirectional).double()
    x = torch.randn(len(lengths), max(lengths), 5, dtype=torch.float64, requires_grad=True)
    results = []
    for run in (rnn, lambda p: packed_gru(rnn, p)):
        rnn.zero_grad()
        x.grad = None
        packed = pack_padded_sequence(x, torch.tensor(lengths), batch_first=True, enforce_sorted=False)
        out, final = run(packed)
        g = torch.Generator().manual_seed(1)
        loss = (out.data * torch.randn(out.data.shape, generator=g, dtype=torch.float64)).sum()
        (loss + (final * torch.randn(final.shape, generator=g, dtype=torch.float64)).sum()).backward()
        results.append((out.data.detach(), final.detach(), x.grad.clone(), grads(rnn)))
    (out_a, final_a, dx_a, dw_a), (out_b, final_b, dx_b, dw_b) = results
    torch.testing.assert_close(out_b, out_a, rtol=0, atol=1e-12)
    torch.testing.assert_close(final_b, final_a, rtol=0, atol=1e-12)
    torch.testing.assert_close(dx_b, dx_a, rtol=0, atol=1e-12)
    assert dw_b.keys() == dw_a.keys() and len(dw_a) == (8 if bidirectional else 4)
    for name in dw_a:
        torch.testing.assert_close(dw_b[name], dw_a[name], rtol=0, atol=1e-11, msg=name)


def test_the_packed_gru_backward_passes_gradcheck():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 4, 3, dtype=torch.float64, generator=g, requires_grad=True)
    shapes = [(24, 3), (24,), (12, 4), (12,), (12, 4), (12,)]  # both directions' input weights stacked
    weights = [torch.randn(s, dtype=torch.float64, generator=g, requires_grad=True) for s in shapes]

    def run(x, *weights):
        packed = pack_padded_sequence(x, torch.tensor([4, 2, 3]), batch_first=True, enforce_sorted=False)
        return _PackedGRU.apply(packed.data, packed.batch_sizes, torch.float64, *weights)

    assert torch.autograd.gradcheck(run, (x, *weights))


def model_and_batch(attention: str, dropout: float, seed: int = 0, cell: str = "gru", **options):
    torch.manual_seed(seed)
    cfg = replace(
        CONFIG,
        cell=cell,
        attention=attention,
        dropout=dropout,
        embedding_dropout=dropout,
        bidirectional=attention != "dot",  # dot compares keys and queries of one size
        **options,
    )
    model = build_model(cfg, SRC_V, TGT_V).double().train()
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([7, 3, 5, 7])
    src = torch.randint(4, SRC_V, (4, 7), generator=g)
    src[torch.arange(7).unsqueeze(0) >= lengths.unsqueeze(1)] = PAD
    tgt = torch.randint(4, TGT_V, (4, 6), generator=g)
    tgt[:, 0] = BOS
    tgt[2, 4:] = PAD
    return model, src, lengths, tgt


def decode(model, src, lengths, tgt):
    """Decoder outputs and attention, and every gradient, from the same dropout draws each time."""
    model.zero_grad()
    torch.manual_seed(5)
    enc = model.encode(src, lengths)
    out, attention = model.decoder(tgt, model.decoder.init_state(enc), enc)
    g = torch.Generator().manual_seed(6)
    weights = torch.randn(out.shape, generator=g, dtype=out.dtype).to(out.device)
    (out * weights).sum().backward()
    return out.detach(), attention.detach(), grads(model)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("attention", ["bahdanau", "concat", "dot", "general"])
@pytest.mark.parametrize("dropout", [0.0, 0.4])
def test_the_fused_training_paths_equal_the_step_loop(cell, attention, dropout):
    model, src, lengths, tgt = model_and_batch(attention, dropout, cell=cell)
    out_f, att_f, grads_f = decode(model, src, lengths, tgt)
    with reference_maths():
        out_s, att_s, grads_s = decode(model, src, lengths, tgt)
    assert out_f.shape == (4, 6, 12) and att_f.shape == (4, 6, 7)
    torch.testing.assert_close(out_f, out_s, rtol=0, atol=1e-12)  # dropout masks included
    torch.testing.assert_close(att_f, att_s, rtol=0, atol=1e-12)
    assert torch.all(att_f[1, :, 3:] == 0)
    assert grads_f.keys() == grads_s.keys()
    for name in grads_s:
        torch.testing.assert_close(grads_f[name], grads_s[name], rtol=0, atol=1e-11, msg=name)
    if attention == "concat":
        assert "decoder.attention.additive.query_layer.bias" in grads_f


@pytest.mark.parametrize(("cell", "attention"), [("gru", "bahdanau"), ("lstm", "dot")])
def test_training_steps_give_the_same_losses_fused_or_not(cell, attention):
    def losses() -> list[float]:
        model, src, lengths, tgt = model_and_batch(attention, 0.3, seed=2, cell=cell)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        torch.manual_seed(7)
        values = []
        for _ in range(5):
            optimizer.zero_grad()
            loss = model.loss(src, lengths, tgt[:, :-1], tgt[:, 1:])
            loss.backward()
            optimizer.step()
            values.append(loss.item())
        return values

    fused = losses()
    with reference_maths():
        stepped = losses()
    assert fused[-1] < fused[0]
    assert fused == pytest.approx(stepped, rel=1e-12)


def test_the_fused_paths_are_taken_only_where_they_apply(monkeypatch):
    calls: list[str] = []
    real_gru, real_loop = encoders.packed_gru, decoders.fused_decoder_loop
    monkeypatch.setattr(encoders, "packed_gru", lambda *a: calls.append("encoder") or real_gru(*a))
    monkeypatch.setattr(decoders, "fused_decoder_loop", lambda *a: calls.append("decoder") or real_loop(*a))

    def taken(cfg: ModelConfig, grad: bool = True, autocast: torch.dtype | None = None) -> list[str]:
        calls.clear()
        model = build_model(cfg, SRC_V, TGT_V)
        _, src, lengths, tgt = model_and_batch("bahdanau", 0.0)
        with torch.set_grad_enabled(grad), torch.autocast("cpu", autocast, enabled=autocast is not None):
            model.loss(src, lengths, tgt[:, :-1], tgt[:, 1:])
        return sorted(calls)

    assert taken(CONFIG) == ["decoder", "encoder"]
    assert taken(replace(CONFIG, attention="concat")) == ["decoder", "encoder"]
    assert taken(CONFIG, grad=False) == []  # validation and search use the step loop
    assert taken(CONFIG, autocast=torch.bfloat16) == ["decoder", "encoder"]  # products in bf16
    assert taken(CONFIG, autocast=torch.float16) == []
    assert taken(replace(CONFIG, attention="general")) == ["decoder", "encoder"]
    assert taken(replace(CONFIG, cell="lstm")) == ["decoder"]  # torch's LSTM encoder is one kernel
    assert taken(replace(CONFIG, cell="rnn")) == []
    assert taken(replace(CONFIG, input_feeding=False)) == ["encoder"]
    assert taken(replace(CONFIG, encoder_layers=2, decoder_layers=2)) == []
    # One-hot inputs and reversed sources change what the RNNs read, not their maths.
    assert taken(replace(CONFIG, one_hot=True, reverse_source=True)) == ["decoder", "encoder"]
    # Other scores, combinations and orders than the decoder loop's run the step loop.
    assert taken(replace(CONFIG, attention="cosine")) == ["encoder"]
    assert taken(replace(CONFIG, attention_combine="add")) == ["encoder"]
    assert taken(replace(CONFIG, decoder_order="bahdanau", input_feeding=False)) == ["encoder"]
    no_attention = replace(CONFIG, attention="none", input_feeding=False)
    assert taken(replace(no_attention, context_every_step=True)) == ["encoder"]
    with reference_maths():
        assert taken(CONFIG) == []


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_the_fused_paths_with_one_hot_inputs_and_reversed_sources_equal_the_reference(cell):
    model, src, lengths, tgt = model_and_batch("bahdanau", 0.3, cell=cell, one_hot=True, reverse_source=True)
    out_f, att_f, grads_f = decode(model, src, lengths, tgt)
    with reference_maths():
        out_s, att_s, grads_s = decode(model, src, lengths, tgt)
    torch.testing.assert_close(out_f, out_s, rtol=0, atol=1e-12)
    torch.testing.assert_close(att_f, att_s, rtol=0, atol=1e-12)
    assert grads_f.keys() == grads_s.keys() and "encoder.rnn.weight_ih_l0" in grads_f
    for name in grads_s:
        torch.testing.assert_close(grads_f[name], grads_s[name], rtol=0, atol=1e-11, msg=name)


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


@pytest.mark.parametrize(("cell", "attention"), [("gru", "bahdanau"), ("lstm", "dot"), ("gru", "general")])
def test_under_cpu_bf16_autocast_the_fused_paths_multiply_in_bf16_as_close_as_torchs_autocast(
    cell, attention
):
    """The fused paths' bf16 products: as near the fp32 results as torch's own autocast step loop is,
    and not fp32 in disguise (then the error would be ~1e-7)."""
    torch.manual_seed(0)
    cfg = replace(CONFIG, cell=cell, attention=attention, embedding_size=32, hidden_size=64)
    cfg = replace(cfg, bidirectional=attention != "dot")
    model = build_model(cfg, SRC_V, TGT_V).train()
    _, src, lengths, tgt = model_and_batch(attention, 0.0)

    def run(autocast: bool):
        with torch.autocast("cpu", torch.bfloat16, enabled=autocast):
            return decode(model, src, lengths, tgt)

    out_32, _, grads_32 = run(False)
    out_f, att_f, grads_f = run(True)
    with reference_maths():
        out_t, _, grads_t = run(True)
    assert out_f.dtype == torch.float32 and all(g.dtype == torch.float32 for g in grads_f.values())
    assert 1e-4 < relative_error(out_f, out_32) < max(1.5 * relative_error(out_t, out_32), 1e-2)
    for name, reference in grads_32.items():
        fused, torchs = relative_error(grads_f[name], reference), relative_error(grads_t[name], reference)
        assert fused < max(1.5 * torchs, 1e-2), name
    assert torch.allclose(att_f.sum(-1), torch.ones(()))


def test_bf16_autocast_training_follows_the_fp32_loss_curve():
    """Adam on one batch, fp32 against CPU bf16 autocast (fused paths, bf16 products): the same curve to
    a few percent, and both learn."""

    def losses(autocast: bool) -> list[float]:
        torch.manual_seed(3)
        cfg = replace(CONFIG, embedding_size=32, hidden_size=64, dropout=0.2)
        model = build_model(cfg, SRC_V, TGT_V).train()
        _, src, lengths, tgt = model_and_batch("bahdanau", 0.0)
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        values = []
        for _ in range(40):
            with torch.autocast("cpu", torch.bfloat16, enabled=autocast):
                loss = model.loss(src, lengths, tgt[:, :-1], tgt[:, 1:])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            values.append(loss.item())
        return values

    fp32, bf16 = losses(False), losses(True)
    assert fp32[-1] < 0.2 * fp32[0]
    assert bf16 != fp32
    assert bf16 == pytest.approx(fp32, rel=0.03)  # measured: within 1% at every step


def test_s2s_reference_in_the_environment_runs_the_reference_maths_in_every_process():
    code = "from workbench.engine import fast_paths; print(fast_paths.enabled())"
    for value, expected in (("1", "False"), ("0", "True"), ("", "True")):
        env = {**os.environ, "S2S_REFERENCE": value}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert out.stdout.strip() == expected, value
