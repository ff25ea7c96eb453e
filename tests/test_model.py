"""The seq2seq model: every configuration trains, stepping equals the teacher-forced pass, sizes match
Joey NMT, tying shares one tensor, a tiny model learns to copy, pretrained vectors load."""

import copy
import itertools
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from workbench.engine import loss as loss_module
from workbench.engine.fast_paths import reference_maths
from workbench.engine.fast_paths.search_step import search_step
from workbench.engine.loss import projected_cross_entropy
from workbench.engine.model import Seq2Seq, build_model
from workbench.engine.recipe import ModelConfig, RecipeError, recipe_from_dict
from workbench.engine.search import beam_search, greedy_search, max_lengths
from workbench.engine.special_tokens import BOS, EOS, PAD
from workbench.engine.translator import decoding_model
from workbench.engine.vectors import load_vectors

TINY = ModelConfig(embedding_size=8, hidden_size=12, dropout=0.0)
SRC_V, TGT_V = 13, 11
CELLS = ["gru", "lstm", "rnn"]
ATTENTIONS = ["none", "bahdanau", "dot", "general", "concat", "cosine"]
SEARCH_STEP_ATTENTIONS = ["bahdanau", "dot", "general", "concat"]  # the scores fast_paths/search_step.py has
INITS = ["bridge", "final", "zeros"]


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_config(cell, attention, init, feeding, layers=1, **extra) -> ModelConfig:
    return replace(
        TINY,
        cell=cell,
        attention=attention,
        decoder_init=init,
        input_feeding=feeding,
        # dot attention compares keys and queries directly, so they must be of one size.
        bidirectional=attention != "dot",
        encoder_layers=layers,
        decoder_layers=layers,
        **extra,
    )


def batch(seed=0, lengths=(5, 3, 4), tgt_len=6):
    g = torch.Generator().manual_seed(seed)
    src_lengths = torch.tensor(lengths)
    src = torch.randint(4, SRC_V, (len(lengths), max(lengths)), generator=g)
    src[torch.arange(max(lengths)).unsqueeze(0) >= src_lengths.unsqueeze(1)] = PAD
    tgt = torch.randint(4, TGT_V, (len(lengths), tgt_len), generator=g)
    tgt[:, 0] = BOS
    tgt[1, 4:] = PAD
    return src, src_lengths, tgt


COMBOS = [
    (cell, attention, init, feeding, 1)
    for cell, attention, init, feeding in itertools.product(CELLS, ATTENTIONS, INITS, [True, False])
    if attention != "none" or (not feeding and init != "zeros")
] + [  # stacked layers: the nn.GRU/LSTM path with input feeding, and 'final' per layer
    (cell, "bahdanau", init, feeding, 2)
    for cell, init, feeding in itertools.product(CELLS, ["bridge", "final"], [True, False])
]


@pytest.mark.parametrize("cell,attention,init,feeding,layers", COMBOS)
def test_every_configuration_runs_forward_and_backward(cell, attention, init, feeding, layers):
    torch.manual_seed(0)
    model = build_model(tiny_config(cell, attention, init, feeding, layers), SRC_V, TGT_V)
    src, src_lengths, tgt = batch()
    logits, attn = model(src, src_lengths, tgt[:, :-1], return_attention=True)
    assert logits.shape == (3, 5, TGT_V)
    if attention == "none":
        assert attn is None
    else:
        assert attn.shape == (3, 5, 5)
        assert torch.all(attn[1, :, 3:] == 0)  # sentence 1 has 3 source tokens
    assert int((tgt[:, 1:] != PAD).sum()) == 3 * 5 - 2
    model.loss(src, src_lengths, tgt[:, :-1], tgt[:, 1:]).backward()
    unused = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert unused == []


@pytest.mark.parametrize(
    "bad",
    [
        {"attention": "none", "input_feeding": True},
        {"attention": "none", "input_feeding": False, "decoder_init": "zeros"},
        {"attention": "dot", "bidirectional": True},
        {"decoder_init": "final", "encoder_layers": 2, "decoder_layers": 1},
        {"one_hot": True, "tie_embeddings": True},
        {"context_every_step": True},
        {"decoder_order": "bahdanau", "input_feeding": True},
    ],
)
def test_the_model_refuses_what_a_recipe_refuses_with_the_same_message(bad):
    with pytest.raises(RecipeError) as from_recipe:
        recipe_from_dict({"name": "bad", "data": {"kind": "reverse"}, "model": bad}, source="bad.toml")
    with pytest.raises(RecipeError) as from_model:
        build_model(replace(ModelConfig(), **bad), SRC_V, TGT_V)
    assert str(from_recipe.value).removeprefix("bad.toml: ") == str(from_model.value).removeprefix("model: ")


STEP_COMBOS = [
    combo for combo in COMBOS if combo[2] != "zeros" and (combo[2] == "bridge" or combo[0] == "lstm")
]


@pytest.mark.parametrize("cell,attention,init,feeding,layers", STEP_COMBOS)
def test_stepping_reproduces_the_teacher_forced_forward(cell, attention, init, feeding, layers):
    torch.manual_seed(1)
    model = build_model(tiny_config(cell, attention, init, feeding, layers), SRC_V, TGT_V).eval()
    src, src_lengths, tgt = batch(seed=1)
    logits, attn = model(src, src_lengths, tgt, return_attention=True)
    enc = model.encode(src, src_lengths)
    state = model.start(enc)
    for t in range(tgt.size(1)):
        log_probs, state, step_attn = model.step(tgt[:, t], state, enc)
        torch.testing.assert_close(log_probs, F.log_softmax(logits[:, t], -1), atol=1e-5, rtol=1e-5)
        if attention != "none":
            torch.testing.assert_close(step_attn, attn[:, t], atol=1e-6, rtol=1e-5)


def assert_search_step_matches(model, src, src_lengths, tgt, same=torch.equal):
    """Run the reference step and the search's step side by side from one encoding over the targets,
    comparing log-probs, attention and every state with `same`; returns the encoding."""
    with torch.inference_mode():
        fast = search_step(model)
        with reference_maths():
            reference = search_step(model)
        assert fast != model.step and reference == model.step  # the search's own step, and the reference
        enc = model.encode(src, src_lengths)
        ref_state = fast_state = model.start(enc)
        for t in range(tgt.size(1)):
            ref_lp, ref_state, ref_attn = reference(tgt[:, t], ref_state, enc)
            got_lp, fast_state, got_attn = fast(tgt[:, t], fast_state, enc)
            assert got_lp.dtype == ref_lp.dtype
            pairs = [(got_lp, ref_lp), (got_attn, ref_attn), (fast_state.hidden, ref_state.hidden)]
            pairs.append((fast_state.feed, ref_state.feed))
            if ref_state.cell is not None:
                pairs.append((fast_state.cell, ref_state.cell))
            for got, ref in pairs:
                assert same(got, ref)
    return enc


@pytest.mark.parametrize("cell,attention", itertools.product(["gru", "lstm"], SEARCH_STEP_ATTENTIONS))
@pytest.mark.parametrize("lengths", [(5, 3, 4), (4, 4)], ids=["padded", "unpadded"])
@pytest.mark.parametrize("tie", [False, True])
def test_the_search_step_computes_exactly_the_reference_step(cell, attention, lengths, tie):
    torch.manual_seed(2)
    model = build_model(tiny_config(cell, attention, "bridge", True, tie_embeddings=tie), SRC_V, TGT_V).eval()
    src, src_lengths, tgt = batch(seed=2, lengths=lengths)
    enc = assert_search_step_matches(model, src, src_lengths, tgt)
    assert enc.unpadded == (min(lengths) == max(lengths))


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_the_search_step_of_a_one_hot_model_computes_exactly_the_reference_step(cell):
    torch.manual_seed(2)
    model = build_model(tiny_config(cell, "bahdanau", "bridge", True, one_hot=True), SRC_V, TGT_V).eval()
    assert_search_step_matches(model, *batch(seed=2))


@pytest.mark.parametrize("precision,cell", [("bf16", "gru"), ("int8", "gru"), ("int8", "lstm")])
def test_the_search_step_of_a_bf16_or_int8_model_computes_exactly_the_reference_step(precision, cell):
    torch.manual_seed(3)
    model = build_model(tiny_config(cell, "bahdanau", "bridge", True), SRC_V, TGT_V)
    assert_search_step_matches(decoding_model(model, precision, torch.device("cpu")), *batch(seed=3))


@pytest.mark.parametrize(
    "cell,attention,feeding,layers,extra",
    [
        ("rnn", "bahdanau", True, 1, {}),
        ("gru", "none", False, 1, {}),
        ("gru", "bahdanau", False, 1, {}),
        ("lstm", "dot", True, 2, {}),
        ("gru", "cosine", True, 1, {}),
        ("lstm", "general", True, 1, {"attention_combine": "add"}),
        ("gru", "bahdanau", False, 1, {"decoder_order": "bahdanau"}),
        ("gru", "none", False, 1, {"context_every_step": True}),
    ],
)
def test_the_search_step_is_the_reference_where_it_does_not_apply(cell, attention, feeding, layers, extra):
    model = build_model(tiny_config(cell, attention, "bridge", feeding, layers, **extra), SRC_V, TGT_V).eval()
    with torch.inference_mode():
        assert search_step(model) == model.step


def test_the_search_step_is_the_reference_when_training_or_differentiating():
    model = build_model(TINY, SRC_V, TGT_V)
    with torch.inference_mode():
        assert search_step(model.train()) == model.step
        assert search_step(model.eval()) != model.step
    assert search_step(model) == model.step  # gradients are on: the modules' own calls


def test_decoder_follows_the_luong_ordering_with_input_feeding():
    # y_{t-1} and a_{t-1} -> RNN -> h_t; attention(query h_t) -> c_t; a_t = tanh(W [h_t; c_t]); logits = U a_t
    torch.manual_seed(4)
    model = build_model(tiny_config("gru", "bahdanau", "bridge", True), SRC_V, TGT_V).eval()
    dec = model.decoder
    src, src_lengths, tgt = batch(seed=4)
    logits, _ = model(src, src_lengths, tgt)
    enc = model.encode(src, src_lengths)
    h = dec.init_state(enc).hidden[0]
    a = torch.zeros_like(h)
    expected = []
    for t in range(tgt.size(1)):
        h = dec.rnn(torch.cat([dec.embedding(tgt[:, t]), a], -1), h)
        c, _ = dec.attention(h, dec.attention.precompute(enc.states), enc.states, enc.mask)
        a = torch.tanh(dec.attentional_layer(torch.cat([h, c], -1)))
        expected.append(dec.output_layer(a))
    torch.testing.assert_close(logits, torch.stack(expected, 1), atol=1e-5, rtol=1e-5)
    # Gradients too: a_{t-1} is fed back without being cut from the graph.
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(logits.square().sum(), params)
    expected_grads = torch.autograd.grad(torch.stack(expected, 1).square().sum(), params)
    for got, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("feeding", [True, False])
def test_sampling_path_takes_gold_tokens_at_probability_zero_and_own_predictions_at_one(feeding):
    torch.manual_seed(2)
    model = build_model(tiny_config("lstm", "bahdanau", "bridge", feeding), SRC_V, TGT_V).eval()
    src, src_lengths, tgt = batch(seed=2)
    teacher, _ = model(src, src_lengths, tgt)
    barely, _ = model(src, src_lengths, tgt, sampling_prob=1e-12)
    torch.testing.assert_close(barely, teacher, atol=1e-5, rtol=1e-5)

    sampled, _ = model(src, src_lengths, tgt, sampling_prob=1.0)
    enc = model.encode(src, src_lengths)
    state, prev = model.start(enc), tgt[:, 0]
    for t in range(tgt.size(1)):
        log_probs, state, _ = model.step(prev, state, enc)
        torch.testing.assert_close(F.log_softmax(sampled[:, t], -1), log_probs, atol=1e-5, rtol=1e-5)
        prev = log_probs.argmax(-1)
    assert not torch.allclose(sampled, teacher)


def test_a_sentence_gets_the_same_logits_alone_and_in_a_padded_batch():
    torch.manual_seed(3)
    model = build_model(tiny_config("gru", "bahdanau", "bridge", True), SRC_V, TGT_V).eval()
    src, src_lengths, tgt = batch(seed=3)
    logits, _ = model(src, src_lengths, tgt)
    alone, _ = model(src[1:2, :3], src_lengths[1:2], tgt[1:2])
    torch.testing.assert_close(alone[0], logits[1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_encoder_final_state_is_each_directions_last_real_step(cell):
    model = build_model(tiny_config(cell, "bahdanau", "bridge", True, layers=2), SRC_V, TGT_V).eval()
    src, src_lengths, _ = batch()
    enc = model.encode(src, src_lengths)
    h = TINY.hidden_size
    assert enc.states.shape == (3, 5, 2 * h) and enc.final.shape == (2, 2, 3, h)
    assert enc.mask.tolist()[1] == [True, True, True, False, False]
    for b, n in enumerate(src_lengths.tolist()):
        torch.testing.assert_close(enc.final[-1, 0, b], enc.states[b, n - 1, :h])  # forward ends at n - 1
        torch.testing.assert_close(enc.final[-1, 1, b], enc.states[b, 0, h:])  # backward ends at 0
        assert torch.all(enc.states[b, n:] == 0)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_an_unpadded_source_is_encoded_as_in_a_padded_batch(cell):
    model = build_model(tiny_config(cell, "bahdanau", "bridge", True, layers=2), SRC_V, TGT_V).eval()
    src, src_lengths, _ = batch()
    enc = model.encode(src, src_lengths)
    for b, n in enumerate(src_lengths.tolist()):
        alone = model.encode(src[b : b + 1, :n], src_lengths[b : b + 1])  # no padding: not packed
        torch.testing.assert_close(alone.states[0], enc.states[b, :n])
        torch.testing.assert_close(alone.final[:, :, 0], enc.final[:, :, b])
        if cell == "lstm":
            torch.testing.assert_close(alone.final_cell[:, :, 0], enc.final_cell[:, :, b])


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_decoder_initial_states(cell):
    src, src_lengths, _ = batch()
    bridge = build_model(tiny_config(cell, "bahdanau", "bridge", True, layers=2), SRC_V, TGT_V)
    enc = bridge.encode(src, src_lengths)
    top = torch.cat([enc.final[-1, 0], enc.final[-1, 1]], dim=-1)  # both directions of the top layer
    expected = torch.tanh(bridge.decoder.bridge(top))
    state = bridge.start(enc)
    for layer in range(2):
        torch.testing.assert_close(state.hidden[layer], expected)
    if cell == "lstm":
        torch.testing.assert_close(state.cell, state.hidden)
    assert torch.all(state.feed == 0)

    final = build_model(tiny_config(cell, "bahdanau", "final", False, layers=2), SRC_V, TGT_V)
    enc = final.encode(src, src_lengths)
    state = final.start(enc)
    torch.testing.assert_close(state.hidden, enc.final[:, 0] + enc.final[:, 1])
    if cell == "lstm":
        torch.testing.assert_close(state.cell, enc.final_cell[:, 0] + enc.final_cell[:, 1])

    zeros = build_model(tiny_config(cell, "bahdanau", "zeros", False), SRC_V, TGT_V)
    assert torch.all(zeros.start(zeros.encode(src, src_lengths)).hidden == 0)


@pytest.mark.parametrize("tie", [False, True])
def test_the_transposed_output_weight_gives_the_same_logits_and_is_never_used_stale(tie):
    torch.manual_seed(4)
    model = build_model(replace(TINY, tie_embeddings=tie), SRC_V, TGT_V).eval()
    src, src_lengths, _ = batch(seed=4)
    limits = max_lengths(src_lengths, 2.0, 3)
    outputs = torch.randn(3, TINY.hidden_size)
    plain = model.decoder.logits(outputs)
    beams = beam_search(model, src, src_lengths, 3, 3, max_lengths=limits, attention=False)

    model.decoder.keep_output_transposed()
    torch.testing.assert_close(model.decoder.logits(outputs), plain, atol=1e-6, rtol=1e-6)
    again = beam_search(model, src, src_lengths, 3, 3, max_lengths=limits, attention=False)
    assert [[h.tokens for h in n] for n in again] == [[h.tokens for h in n] for n in beams]

    # Whatever changes the weight (an optimizer step, new weights loaded), the copy is never used again.
    other = build_model(replace(TINY, tie_embeddings=tie), SRC_V, TGT_V).eval()
    model.load_state_dict(other.state_dict())
    torch.testing.assert_close(model.decoder.logits(outputs), other.decoder.logits(outputs))
    model.decoder.keep_output_transposed()
    with torch.no_grad():
        model.decoder.output_layer.weight.mul_(2.0)
    torch.testing.assert_close(model.decoder.logits(outputs), 2.0 * other.decoder.logits(outputs))


def test_parameter_count_matches_joey_nmt_reference():
    # 8000/8000 vocab, emb 256, bi-GRU 512 per direction, GRU decoder 512, bahdanau, input feeding, bridge.
    model = build_model(ModelConfig(), 8000, 8000)
    assert sum(p.numel() for p in model.parameters()) == 14_625_280
    assert sum(p.numel() for p in model.decoder.attention.parameters()) == 786_944
    assert sum(p.numel() for p in model.decoder.rnn.parameters()) == 1_969_152


@pytest.mark.parametrize("hidden", [8, 12])
def test_tied_embeddings_share_one_tensor_with_the_output_layer(hidden):
    model = build_model(replace(TINY, hidden_size=hidden, tie_embeddings=True), SRC_V, TGT_V)
    assert model.decoder.output_layer.weight is model.decoder.embedding.weight
    untied = build_model(replace(TINY, hidden_size=hidden), SRC_V, TGT_V)
    # The output matrix (hidden x V) goes; a hidden -> embedding projection comes when the sizes differ.
    saved = hidden * TGT_V - (hidden * TINY.embedding_size if hidden != TINY.embedding_size else 0)
    count = sum(p.numel() for p in model.parameters())
    assert count == sum(p.numel() for p in untied.parameters()) - saved
    src, src_lengths, tgt = batch()
    logits, _ = model(src, src_lengths, tgt)
    logits.sum().backward()
    assert model.decoder.embedding.weight.grad is not None


def test_initialisation_follows_joey_nmt():
    model = build_model(ModelConfig(), 8000, 8000)
    for name, p in model.named_parameters():
        if "bias" in name:
            assert torch.all(p == 0), name
    emb = model.decoder.embedding.weight
    assert torch.all(emb[PAD] == 0)
    assert abs(emb[1:].std().item() - 0.1) < 0.005
    w = model.decoder.rnn.weight_hh  # (3 * 512, 512): Xavier bound per gate sqrt(6 / (512 + 512))
    assert w.abs().max().item() <= (6 / 1024) ** 0.5 and w.abs().max().item() > 0.9 * (6 / 1024) ** 0.5


def test_the_loss_sums_over_real_tokens_only():
    hidden, weight = torch.randn(2, 3, 4), torch.randn(5, 4)
    targets = torch.tensor([[4, 3, PAD], [2, PAD, PAD]])
    loss = projected_cross_entropy(hidden, weight, targets)
    logits = hidden @ weight.t()
    expected = -sum(F.log_softmax(logits[b, t], -1)[targets[b, t]] for b, t in [(0, 0), (0, 1), (1, 0)])
    torch.testing.assert_close(loss, expected)
    smoothed = projected_cross_entropy(hidden, weight, targets, label_smoothing=0.1)
    assert smoothed.item() != pytest.approx(loss.item())


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_the_fused_loss_equals_cross_entropy_of_the_logits_in_value_and_gradient(smoothing, monkeypatch):
    monkeypatch.setattr(loss_module, "CHUNK_ROWS", 7)  # several chunks, the last one short
    torch.manual_seed(0)
    hidden = torch.randn(4, 6, 16, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(50, 16, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 50, (4, 6))
    targets[0, 3:] = PAD
    fused = projected_cross_entropy(hidden, weight, targets, smoothing)
    (fused * 0.5).backward()
    fused_grads = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    reference = F.cross_entropy(
        (hidden @ weight.t()).reshape(-1, 50),
        targets.reshape(-1),
        ignore_index=PAD,
        reduction="sum",
        label_smoothing=smoothing,
    )
    (reference * 0.5).backward()
    torch.testing.assert_close(fused.double(), reference, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(fused_grads[0], hidden.grad)
    torch.testing.assert_close(fused_grads[1], weight.grad)
    assert torch.all(fused_grads[0][0, 3:] == 0)  # PAD targets send no gradient
    with torch.no_grad():
        assert projected_cross_entropy(hidden, weight, targets, smoothing).item() == pytest.approx(
            fused.item()
        )


def test_the_fused_loss_under_bf16_autocast_keeps_the_softmax_in_fp32():
    torch.manual_seed(0)
    hidden = torch.randn(12, 16, requires_grad=True)
    weight = torch.randn(50, 16, requires_grad=True)
    targets = torch.randint(1, 50, (12,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = hidden * 1.0  # an autocast region's activations, as the decoder's are
        loss = projected_cross_entropy(h.bfloat16(), weight, targets, 0.1)
    loss.backward()
    reference = F.cross_entropy(hidden @ weight.t(), targets, reduction="sum", label_smoothing=0.1)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, reference, rtol=2e-2, atol=0.5)
    assert hidden.grad.dtype == torch.float32 and weight.grad.dtype == torch.float32
    assert torch.isfinite(weight.grad).all() and weight.grad.abs().sum() > 0


def test_the_model_loss_is_the_cross_entropy_of_its_logits():
    torch.manual_seed(0)
    model = build_model(tiny_config("gru", "bahdanau", "bridge", True), SRC_V, TGT_V).eval()
    src, src_lengths, tgt = batch()
    logits, _ = model(src, src_lengths, tgt[:, :-1])
    expected = F.cross_entropy(
        logits.reshape(-1, TGT_V),
        tgt[:, 1:].reshape(-1),
        ignore_index=PAD,
        reduction="sum",
        label_smoothing=0.1,
    )
    loss = model.loss(src, src_lengths, tgt[:, :-1], tgt[:, 1:], label_smoothing=0.1)
    torch.testing.assert_close(loss, expected)


def copy_batch(g: torch.Generator, size: int, vocab: int):
    lengths = torch.randint(2, 6, (size,), generator=g)
    src = torch.randint(4, vocab, (size, int(lengths.max())), generator=g)
    src[torch.arange(src.size(1)).unsqueeze(0) >= lengths.unsqueeze(1)] = PAD
    tgt = torch.full((size, src.size(1) + 2), PAD)
    tgt[:, 0] = BOS
    tgt[:, 1 : src.size(1) + 1] = src
    tgt[torch.arange(size), lengths + 1] = EOS
    return src, lengths, tgt


def test_a_tiny_model_learns_to_copy():
    torch.manual_seed(0)
    vocab = 10
    cfg = ModelConfig(embedding_size=16, hidden_size=32, dropout=0.0)
    model = build_model(cfg, vocab, vocab)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(0)
    for _ in range(250):
        src, lengths, tgt = copy_batch(g, 32, vocab)
        targets = tgt[:, 1:]
        loss, n = model.loss(src, lengths, tgt[:, :-1], targets), int((targets != PAD).sum())
        optimizer.zero_grad()
        (loss / n).backward()
        optimizer.step()
    src, lengths, _ = copy_batch(torch.Generator().manual_seed(99), 20, vocab)
    expected = [row[:n].tolist() for row, n in zip(src, lengths.tolist(), strict=True)]
    limits = max_lengths(lengths, 1.0, 2)
    greedy = [h[0].tokens for h in greedy_search(model, src, lengths, limits)]
    beam = [h[0].tokens for h in beam_search(model, src, lengths, beam_size=3, max_lengths=limits)]
    assert sum(a == b for a, b in zip(greedy, expected, strict=True)) >= 18
    assert sum(a == b for a, b in zip(beam, expected, strict=True)) >= 18

    # decoding.precision = "bf16": the same model in bfloat16 searches to the same copies, and its
    # step log-probs are fp32 (beam scores sum in fp32) and near the fp32 model's.
    bf16 = copy.deepcopy(model).to(torch.bfloat16)
    beam16 = [h[0].tokens for h in beam_search(bf16, src, lengths, beam_size=3, max_lengths=limits)]
    assert sum(a == b for a, b in zip(beam16, expected, strict=True)) >= 18
    enc, enc16 = model.encode(src, lengths), bf16.encode(src, lengths)
    prev = torch.full((src.size(0),), BOS)
    log_probs, _, _ = model.step(prev, model.start(enc), enc)
    log_probs16, _, _ = bf16.step(prev, bf16.start(enc16), enc16)
    assert log_probs16.dtype == torch.float32
    torch.testing.assert_close(log_probs16, log_probs, atol=0.1, rtol=0.05)

    # decoding.precision = "int8": the linear and recurrent layers hold int8 weights (no float weight
    # is left outside the embeddings and the attention's energy vector), and the searches still copy.
    int8 = decoding_model(copy.deepcopy(model), "int8", torch.device("cpu"))
    assert {name for name, _ in int8.named_parameters()} == {
        "encoder.embedding.weight",
        "decoder.embedding.weight",
        "decoder.attention.energy_layer.weight",
    }
    beam8 = [h[0].tokens for h in beam_search(int8, src, lengths, beam_size=3, max_lengths=limits)]
    assert sum(a == b for a, b in zip(beam8, expected, strict=True)) >= 18
    enc8 = int8.encode(src, lengths)
    log_probs8, _, _ = int8.step(prev, int8.start(enc8), enc8)
    torch.testing.assert_close(log_probs8, log_probs, atol=0.1, rtol=0.05)


def write(tmp_path, text: str):
    path = tmp_path / "vectors.txt"
    path.write_text(text, encoding="utf-8")
    return path


def test_vectors_are_matched_to_pieces_with_or_without_the_word_start_mark(tmp_path):
    path = write(tmp_path, "3 2\nhouse 1 2\n\u2581cat 3 4\ncat 5 6\n")
    pieces = ["<pad>", "\u2581house", "\u2581cat", "dog"]
    matrix, found = load_vectors(path, pieces, 2)
    assert found == 2
    assert matrix[1].tolist() == [1.0, 2.0]
    assert matrix[2].tolist() == [3.0, 4.0]  # the exact piece wins over "cat"
    assert 0 < matrix[3].abs().sum() < 2  # not found: a small normal initialisation


@pytest.mark.parametrize(
    "text,where",
    [
        ("3 5\nhouse 1 2\n", ":1:"),
        ("house 1 2\ncat 1 2 3\n", ":2:"),
        ("house 1 2\ncat 1 x\n", ":2:"),
    ],
)
def test_bad_vectors_files_name_the_line(tmp_path, text, where):
    with pytest.raises(ValueError, match=where):
        load_vectors(write(tmp_path, text), ["house", "cat"], 2)


def test_unreadable_vectors_files_raise_value_error(tmp_path):
    with pytest.raises(ValueError, match="cannot read"):
        load_vectors(tmp_path / "missing.txt", ["a"], 2)
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"a 1 2\n\xe9t\xe9 1 2\n")
    with pytest.raises(ValueError, match=":2: not UTF-8"):
        load_vectors(path, ["a"], 2)


def test_load_pretrained_copies_and_can_freeze(tmp_path):
    model: Seq2Seq = build_model(TINY, SRC_V, TGT_V)
    matrix = torch.randn(SRC_V, TINY.embedding_size)
    model.load_pretrained(src_matrix=matrix, freeze=True)
    assert torch.equal(model.encoder.embedding.weight[1:], matrix[1:])
    assert torch.all(model.encoder.embedding.weight[PAD] == 0)
    assert not model.encoder.embedding.weight.requires_grad
    assert model.decoder.embedding.weight.requires_grad
    with pytest.raises(ValueError, match="target"):
        model.load_pretrained(tgt_matrix=torch.randn(TGT_V, 3))


def test_build_model_hands_every_model_key_to_the_encoder_or_decoder_under_its_own_name(monkeypatch):
    """A grep for a recipe key finds the code it drives: no key is renamed on the way."""
    from dataclasses import fields

    from workbench.engine import model as model_module

    seen: dict[str, dict] = {}
    for name in ("RecurrentEncoder", "RecurrentDecoder"):
        real = getattr(model_module, name)

        def record(*args, _real=real, _name=name, **kwargs):
            seen[_name] = kwargs
            return _real(*args, **kwargs)

        monkeypatch.setattr(model_module, name, record)
    cfg = replace(
        ModelConfig(), cell="lstm", encoder_layers=2, decoder_layers=2, hidden_size=12, embedding_size=6,
        attention="general", decoder_init="zeros", attention_combine="add", dropout=0.1,
    )  # fmt: skip
    build_model(cfg, 9, 9)
    handed = {**seen["RecurrentEncoder"], **seen["RecurrentDecoder"]}
    loaded_later = {"src_vectors", "tgt_vectors", "freeze_vectors"}  # by Seq2Seq.load_pretrained
    for key in {f.name for f in fields(ModelConfig)} - loaded_later:
        assert key in handed and handed[key] == getattr(cfg, key), key
