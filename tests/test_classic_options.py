"""The model options of the classic systems: one-hot inputs, cosine attention, the additive combination,
the context at every step (Cho et al. 2014), Bahdanau's decoder order and reversed sources (Sutskever
et al. 2014): each computes what its article writes, and a tiny model of each trains and decodes."""

import copy
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from test_model import SRC_V, TGT_V, batch

from workbench.engine.attention import CosineAttention
from workbench.engine.data.batching import collate
from workbench.engine.data.generated import TOY_TOKENS, generate_corpus
from workbench.engine.decoders import summary
from workbench.engine.model import build_model
from workbench.engine.recipe import DataConfig, ModelConfig, RecipeError, recipe_from_dict
from workbench.engine.search import beam_search, greedy_search, max_lengths
from workbench.engine.special_tokens import EOS, PAD
from workbench.engine.translator import decoding_model

pytestmark = pytest.mark.usefixtures("one_thread")

E, H = 8, 12
TINY = ModelConfig(embedding_size=E, hidden_size=H, dropout=0.0)
BAHDANAU_ORDER = replace(TINY, decoder_order="bahdanau", input_feeding=False)
CHO = replace(TINY, attention="none", context_every_step=True, input_feeding=False)


def capture_inputs(module: torch.nn.Module) -> list[tuple]:
    """Every call's positional inputs to `module`, from now on."""
    calls: list[tuple] = []
    module.register_forward_pre_hook(lambda _, args: calls.append(tuple(a.detach().clone() for a in args)))
    return calls


# -- one_hot --------------------------------------------------------------------------------------------


def test_one_hot_inputs_replace_the_embeddings_on_both_sides():
    torch.manual_seed(0)
    model = build_model(replace(TINY, one_hot=True), SRC_V, TGT_V)
    assert not any("embedding" in name for name, _ in model.named_parameters())
    assert "embedding" not in " ".join(model.state_dict())
    assert model.encoder.rnn.input_size == SRC_V  # embedding_size is ignored
    assert model.decoder.rnn.weight_ih.shape == (3 * H, TGT_V + H)  # one-hot y_{t-1}, a_{t-1}
    src, lengths, tgt = batch()
    vectors = model.encoder.embedding(src)
    expected = F.one_hot(src, SRC_V).float()
    expected[src == PAD] = 0.0  # padding reads as zeros, as in Keras's character model
    assert torch.equal(vectors, expected)
    inputs = capture_inputs(model.decoder.rnn)
    model.eval()(src, lengths, tgt)
    assert all(
        torch.equal(x[:, :TGT_V], F.one_hot(tgt[:, t], TGT_V).float()) for t, (x, _) in enumerate(inputs)
    )


def test_one_hot_models_decode_in_bf16_and_int8():
    torch.manual_seed(0)
    model = build_model(replace(TINY, one_hot=True), SRC_V, TGT_V).eval()
    src, lengths, _ = batch()
    limits = max_lengths(lengths, 1.0, 2)
    for precision in ("bf16", "int8"):
        fast = decoding_model(copy.deepcopy(model), precision, torch.device("cpu"))
        hyps = beam_search(fast, src, lengths, beam_size=2, max_lengths=limits)
        assert len(hyps) == 3 and all(
            len(h[0].tokens) <= n for h, n in zip(hyps, limits.tolist(), strict=True)
        )


# -- cosine attention -----------------------------------------------------------------------------------


def test_cosine_scores_are_the_cosine_of_the_query_and_the_transformed_states():
    torch.manual_seed(0)
    attention = CosineAttention(key_size=6, query_size=4)
    states = torch.randn(2, 5, 6)
    query = torch.randn(2, 4)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    keys = attention.precompute(states)
    context, weights = attention(query, keys, states, mask)
    w = attention.key_layer.weight
    for b in range(2):
        n = int(mask[b].sum())
        transformed = [w @ states[b, j] for j in range(n)]
        cosines = torch.stack([query[b] @ k / (query[b].norm() * k.norm()) for k in transformed])
        expected = torch.softmax(cosines, dim=0)
        torch.testing.assert_close(weights[b, :n], expected)
        assert torch.all(weights[b, n:] == 0)
        torch.testing.assert_close(context[b], sum(p * k for p, k in zip(expected, transformed, strict=True)))


def test_cosine_attention_feeds_a_context_of_the_hidden_size():
    model = build_model(replace(TINY, attention="cosine"), SRC_V, TGT_V)
    assert model.decoder.attention.key_layer.weight.shape == (H, 2 * H)  # bi-GRU states to the hidden size
    assert model.decoder.attentional_layer.weight.shape == (H, 2 * H)  # [h_t; c_t], c_t of size H


# -- attention_combine = "add" --------------------------------------------------------------------------


@pytest.mark.parametrize("bidirectional", [False, True])
def test_the_add_combination_is_the_state_plus_the_context(bidirectional):
    torch.manual_seed(0)
    cfg = replace(TINY, attention="dot" if not bidirectional else "general", attention_combine="add")
    model = build_model(replace(cfg, bidirectional=bidirectional), SRC_V, TGT_V).eval()
    decoder = model.decoder
    assert decoder.attentional_layer is None
    assert (decoder.context_layer is None) == (not bidirectional)  # a 2H context is projected to H
    src, lengths, tgt = batch()
    enc = model.encode(src, lengths)
    state = model.start(enc)
    out, new_state, weights = decoder.step(decoder.embed(tgt[:, 0]), state, enc)
    h = new_state.hidden[-1]
    context = (weights.unsqueeze(-1) * enc.states).sum(dim=1)
    if bidirectional:
        context = context @ decoder.context_layer.weight.t()
    torch.testing.assert_close(out, h + context)
    torch.testing.assert_close(new_state.feed, out)  # input feeding feeds a_t = h_t + c_t


# -- context_every_step (Cho et al. 2014) ---------------------------------------------------------------


@pytest.mark.parametrize("layers", [1, 2])
def test_the_encoder_summary_joins_every_decoder_input_and_the_output(layers):
    torch.manual_seed(0)
    model = build_model(replace(CHO, encoder_layers=layers, decoder_layers=layers), SRC_V, TGT_V).eval()
    decoder = model.decoder
    assert decoder.rnn.weight_ih_l0.shape == (3 * H, E + 2 * H)  # [E y_{t-1}; c], c both directions
    assert decoder.deep_output.weight.shape == (H, H + 2 * H + E)  # [h_t; c; E y_{t-1}]
    src, lengths, tgt = batch()
    enc = model.encode(src, lengths)
    c = torch.cat([enc.final[-1, 0], enc.final[-1, 1]], dim=-1)
    torch.testing.assert_close(summary(enc), c)
    rnn_inputs, output_inputs = capture_inputs(decoder.rnn), capture_inputs(decoder.deep_output)
    out, _ = decoder(tgt, decoder.init_state(enc), enc)  # all steps in one RNN call
    x, (o,) = rnn_inputs[0][0], output_inputs[0]
    assert torch.equal(x[..., E:], c.unsqueeze(1).expand(-1, tgt.size(1), -1))
    assert torch.equal(o[..., H : 3 * H], x[..., E:]) and torch.equal(o[..., 3 * H :], x[..., :E])
    torch.testing.assert_close(out, torch.tanh(decoder.deep_output(o)))
    # The summary, not only the initial state: the same initial state with another source's summary
    # gives other outputs.
    other = model.encode(torch.flip(src, [0]), lengths.flip(0))
    swapped = replace(enc, final=other.final)
    changed, _ = decoder(tgt, decoder.init_state(enc), swapped)
    assert not torch.allclose(changed, out)


# -- decoder_order = "bahdanau" -------------------------------------------------------------------------


@pytest.mark.parametrize("attention", ["bahdanau", "general", "cosine"])
def test_bahdanau_order_queries_the_previous_state_and_feeds_the_context_to_the_cell(attention):
    torch.manual_seed(0)
    model = build_model(replace(BAHDANAU_ORDER, attention=attention), SRC_V, TGT_V).eval()
    decoder = model.decoder
    assert decoder.attentional_layer is None
    context_size = H if attention == "cosine" else 2 * H
    assert decoder.rnn.weight_ih.shape == (3 * H, E + context_size)
    src, lengths, tgt = batch()
    enc = model.encode(src, lengths)
    state = model.start(enc)
    for t in range(3):
        emb = decoder.embed(tgt[:, t])
        # By hand: c_i = attention(s_{i-1}), s_i = GRU([E y_{i-1}; c_i], s_{i-1}), tanh(W [s_i; c_i; E y])
        s_prev = state.hidden[0]
        context, weights = decoder.attention(s_prev, enc.keys, enc.states, enc.mask)
        s = decoder.rnn(torch.cat([emb, context], dim=-1), s_prev)
        expected = torch.tanh(decoder.deep_output(torch.cat([s, context, emb], dim=-1)))
        out, state, got_weights = decoder.step(emb, state, enc)
        torch.testing.assert_close(out, expected)
        torch.testing.assert_close(got_weights, weights)
        torch.testing.assert_close(state.hidden[0], s)
        assert state.feed is None


@pytest.mark.parametrize("cfg", [BAHDANAU_ORDER, CHO], ids=["bahdanau", "cho"])
def test_a_maxout_deep_output_keeps_the_larger_of_each_pair_of_adjacent_units(cfg):
    torch.manual_seed(0)
    model = build_model(replace(cfg, deep_output="maxout"), SRC_V, TGT_V).eval()
    decoder = model.decoder
    assert decoder.deep_output.out_features == 2 * H
    inputs = capture_inputs(decoder.deep_output)
    src, lengths, tgt = batch()
    enc = model.encode(src, lengths)
    out, _ = decoder(tgt, decoder.init_state(enc), enc)
    captured = list(inputs)  # the calls below add to `inputs`
    if len(captured) == 1:  # Cho's decoder: all steps at once, (N, T, D)
        pre = decoder.deep_output(captured[0][0])
    else:  # Bahdanau's order: one call a step, (N, D) each
        pre = torch.stack([decoder.deep_output(x) for (x,) in captured], dim=1)
    assert pre.shape == (*out.shape[:2], 2 * H)
    expected = torch.stack([torch.maximum(pre[..., 2 * j], pre[..., 2 * j + 1]) for j in range(H)], dim=-1)
    torch.testing.assert_close(out, expected)


def test_bahdanau_order_with_stacked_lstm_layers_queries_the_top_layer():
    torch.manual_seed(0)
    cfg = replace(BAHDANAU_ORDER, cell="lstm", encoder_layers=2, decoder_layers=2)
    model = build_model(cfg, SRC_V, TGT_V).eval()
    queries = capture_inputs(model.decoder.attention)
    src, lengths, tgt = batch()
    enc = model.encode(src, lengths)
    state = model.start(enc)
    for t in range(3):
        previous_top = state.hidden[-1]
        _, state, _ = model.step(tgt[:, t], state, enc)
        assert torch.equal(queries[-1][0], previous_top)


# -- reverse_source -------------------------------------------------------------------------------------


@pytest.mark.parametrize("bidirectional", [False, True])
def test_a_reversed_source_model_reads_the_reversed_source_and_attends_in_source_order(bidirectional):
    torch.manual_seed(0)
    cfg = replace(TINY, bidirectional=bidirectional, attention="general")
    plain = build_model(cfg, SRC_V, TGT_V).eval()
    reversing = build_model(replace(cfg, reverse_source=True), SRC_V, TGT_V).eval()
    reversing.load_state_dict(plain.state_dict())  # the same parameter names
    src, lengths, tgt = batch()
    backwards = src.clone()
    for row, n in enumerate(lengths.tolist()):
        backwards[row, :n] = src[row, :n].flip(0)
    logits, attention = reversing(src, lengths, tgt, return_attention=True)
    expected_logits, expected_attention = plain(backwards, lengths, tgt, return_attention=True)
    torch.testing.assert_close(logits, expected_logits)
    for row, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(attention[row, :, :n], expected_attention[row, :, :n].flip(-1))
        assert torch.all(attention[row, :, n:] == 0)
    assert not torch.allclose(logits, plain(src, lengths, tgt)[0])


@pytest.mark.parametrize(
    "options",
    [
        {"one_hot": True, "reverse_source": True},
        {"attention": "cosine", "attention_combine": "add", "input_feeding": False},
        {"attention": "none", "input_feeding": False, "context_every_step": True, "cell": "lstm"},
        {"attention": "none", "input_feeding": False, "context_every_step": True, "decoder_layers": 2},
        {"decoder_order": "bahdanau", "input_feeding": False, "cell": "lstm"},
        {"decoder_order": "bahdanau", "input_feeding": False, "deep_output": "maxout"},
    ],
)
def test_stepping_reproduces_the_teacher_forced_forward(options):
    torch.manual_seed(1)
    model = build_model(replace(TINY, **options), SRC_V, TGT_V).eval()
    src, lengths, tgt = batch(seed=1)
    logits, attention = model(src, lengths, tgt, return_attention=True)
    enc = model.encode(src, lengths)
    state = model.start(enc)
    for t in range(tgt.size(1)):
        log_probs, state, step_attention = model.step(tgt[:, t], state, enc)
        torch.testing.assert_close(log_probs, F.log_softmax(logits[:, t], -1), atol=1e-5, rtol=1e-5)
        if attention is not None:
            torch.testing.assert_close(step_attention, attention[:, t], atol=1e-6, rtol=1e-5)


# -- recipes ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad,words",
    [
        ({"one_hot": True, "tie_embeddings": True}, "tie_embeddings"),
        ({"one_hot": True, "tgt_vectors": "vectors.txt"}, "tgt_vectors"),
        ({"attention": "none", "input_feeding": False, "attention_combine": "add"}, "needs model.attention"),
        ({"context_every_step": True}, "attention = 'none'"),
        ({"decoder_order": "bahdanau"}, "input_feeding = false"),
        ({"decoder_order": "bahdanau", "attention": "none", "input_feeding": False}, "context_every_step"),
        ({"decoder_order": "bahdanau", "input_feeding": False, "attention_combine": "add"}, "'luong' order"),
        ({"attention_combine": "multiply"}, "concat, add"),
        ({"decoder_order": "cho"}, "luong, bahdanau"),
        ({"deep_output": "maxout"}, "decoder_order = 'bahdanau'"),
        ({"deep_output": "relu"}, "tanh, maxout"),
    ],
)
def test_recipes_refuse_combinations_that_do_not_exist_naming_the_key(bad, words):
    with pytest.raises(RecipeError, match="model") as raised:
        recipe_from_dict({"name": "bad", "data": {"kind": "reverse"}, "model": bad}, source="bad.toml")
    assert words in str(raised.value)


def test_recipes_accept_each_classic_option():
    for model in (
        {"one_hot": True},
        {"attention": "cosine", "attention_combine": "add"},
        {"attention": "none", "input_feeding": False, "context_every_step": True},
        {"decoder_order": "bahdanau", "input_feeding": False},
        {"decoder_order": "bahdanau", "input_feeding": False, "deep_output": "maxout"},
        {"attention": "none", "input_feeding": False, "context_every_step": True, "deep_output": "maxout"},
        {"reverse_source": True},
    ):
        recipe = recipe_from_dict(
            {"name": "ok", "data": {"kind": "reverse"}, "model": model}, source="ok.toml"
        )
        assert all(getattr(recipe.model, key) == value for key, value in model.items())


# -- training and decoding --------------------------------------------------------------------------------


def reverse_batch() -> tuple:
    corpus = generate_corpus(DataConfig(kind="reverse", train_size=24, valid_size=1, test_size=0), seed=0)
    ids = {token: 4 + i for i, token in enumerate(TOY_TOKENS)}
    src = [[ids[t] for t in s.split()] for s, _ in corpus.train]
    tgt = [[ids[t] for t in t.split()] for _, t in corpus.train]
    return collate(src, tgt, list(range(len(src))))


VOCAB = 4 + len(TOY_TOKENS)


@pytest.mark.parametrize(
    "options",
    [
        {"one_hot": True, "attention": "none", "input_feeding": False, "bidirectional": False,
         "encoder_layers": 2, "decoder_layers": 2, "decoder_init": "final", "cell": "lstm"},  # Keras
        {"reverse_source": True, "attention": "none", "input_feeding": False, "cell": "lstm",
         "decoder_init": "final", "bidirectional": False},  # Sutskever et al.
        {"attention": "none", "input_feeding": False, "context_every_step": True},  # Cho et al.
        {"decoder_order": "bahdanau", "input_feeding": False},  # Bahdanau et al.
        {"decoder_order": "bahdanau", "input_feeding": False, "deep_output": "maxout"},  # as written
        {"attention": "cosine", "attention_combine": "add"},
        {"attention": "cosine", "one_hot": True, "reverse_source": True},
    ],
    ids=["keras", "sutskever", "cho", "bahdanau", "bahdanau-maxout", "cosine-add", "cosine-one-hot-reversed"],
)  # fmt: skip
def test_each_classic_model_trains_and_decodes(options):
    torch.manual_seed(0)
    model = build_model(replace(TINY, hidden_size=16, **options), VOCAB, VOCAB)
    b = reverse_batch()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(12):
        loss = model.loss(b.src, b.src_lengths, b.tgt_in, b.tgt_out) / b.n_tgt_tokens
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]
    model.eval()
    src, lengths = b.src[:4], b.src_lengths[:4]
    limits = max_lengths(lengths, 1.0, 2)
    for hyps in (
        greedy_search(model, src, lengths, limits),
        beam_search(model, src, lengths, beam_size=3, max_lengths=limits),
    ):
        assert len(hyps) == 4
        for (hyp, *_), n, row in zip(hyps, limits.tolist(), lengths.tolist(), strict=True):
            assert len(hyp.tokens) <= n and EOS not in hyp.tokens
            if model.decoder.attention is not None:
                assert hyp.attention.shape == (len(hyp.tokens) + 1, row)
