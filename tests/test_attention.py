"""Attention: masking, normalisation, the scoring formulas, and block scoring equal to step scoring."""

import pytest
import torch

from workbench.engine.attention import BahdanauAttention, LuongAttention, batch_matmul, build_attention

KINDS = ["bahdanau", "dot", "general", "concat", "cosine"]
B, S, T, H = 3, 6, 4, 8
LENGTHS = torch.tensor([6, 4, 1])


pytestmark = pytest.mark.usefixtures("one_thread")


def make(kind: str):
    torch.manual_seed(0)
    attention = build_attention(kind, key_size=H, query_size=H)
    keys = torch.randn(B, S, H)
    mask = torch.arange(S).unsqueeze(0) < LENGTHS.unsqueeze(1)
    return attention, keys, mask


@pytest.mark.parametrize("kind", KINDS)
def test_padded_positions_get_exactly_zero_weight_and_weights_sum_to_one(kind):
    attention, keys, mask = make(kind)
    _, weights = attention(torch.randn(B, H), attention.precompute(keys), keys, mask)
    assert weights.shape == (B, S)
    assert torch.all(weights[~mask] == 0.0)
    assert torch.all(weights[mask] > 0.0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B))


@pytest.mark.parametrize("kind", KINDS)
def test_changing_padded_keys_and_values_changes_nothing(kind):
    attention, keys, mask = make(kind)
    query = torch.randn(B, T, H)
    context, weights = attention(query, attention.precompute(keys), keys, mask)
    noisy = torch.where(mask.unsqueeze(-1), keys, torch.randn_like(keys) * 100)
    context2, weights2 = attention(query, attention.precompute(noisy), noisy, mask)
    assert torch.equal(weights, weights2)
    torch.testing.assert_close(context, context2)


@pytest.mark.parametrize("kind", KINDS)
def test_a_block_of_queries_scores_like_one_query_at_a_time(kind):
    attention, keys, mask = make(kind)
    proj = attention.precompute(keys)
    queries = torch.randn(B, T, H)
    context, weights = attention(queries, proj, keys, mask)
    assert context.shape == (B, T, H) and weights.shape == (B, T, S)
    for t in range(T):
        c_t, w_t = attention(queries[:, t], proj, keys, mask)
        torch.testing.assert_close(context[:, t], c_t)
        torch.testing.assert_close(weights[:, t], w_t)


def test_bahdanau_scores_are_v_tanh_of_projected_key_plus_projected_query():
    attention, keys, mask = make("bahdanau")
    assert isinstance(attention, BahdanauAttention)
    query = torch.randn(B, H)
    context, weights = attention(query, attention.precompute(keys), keys, mask)
    w_k, w_q, v = attention.key_layer.weight, attention.query_layer.weight, attention.energy_layer.weight[0]
    scores = torch.tanh(keys @ w_k.T + (query @ w_q.T).unsqueeze(1)) @ v
    expected = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(context, torch.einsum("bs,bsh->bh", expected, keys))


def test_luong_dot_and_general_scores():
    _, keys, mask = make("dot")
    query = torch.randn(B, H)
    dot = LuongAttention(H, H, "dot")
    _, weights = dot(query, dot.precompute(keys), keys, mask)
    expected = torch.softmax(torch.einsum("bh,bsh->bs", query, keys).masked_fill(~mask, float("-inf")), -1)
    torch.testing.assert_close(weights, expected)

    general = LuongAttention(H, H, "general")
    _, weights = general(query, general.precompute(keys), keys, mask)
    scores = torch.einsum("bh,bsh->bs", query, keys @ general.key_layer.weight.T)
    torch.testing.assert_close(weights, torch.softmax(scores.masked_fill(~mask, float("-inf")), -1))


def test_an_unknown_attention_is_refused():
    with pytest.raises(ValueError, match="unknown attention"):
        build_attention("multihead", key_size=H, query_size=H)


@pytest.mark.parametrize("rows", [1, 3])
def test_batch_matmul_has_the_gradients_of_bmm(rows):
    torch.manual_seed(0)
    a = torch.randn(4, rows, 5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, 7, 5, dtype=torch.float64).transpose(1, 2).requires_grad_()  # a transposed view
    assert torch.autograd.gradcheck(batch_matmul, (a, b))
    grad = torch.randn(4, 7, rows, dtype=torch.float64).transpose(1, 2)  # non-contiguous, as in the loop
    batch_matmul(a, b).backward(grad)
    ours = a.grad.clone(), b.grad.clone()
    a.grad = b.grad = None
    torch.bmm(a, b).backward(grad)
    torch.testing.assert_close(ours[0], a.grad)
    torch.testing.assert_close(ours[1], b.grad)
