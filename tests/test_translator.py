"""The decoding layout: the same model, its matrices stored column-major, searches to the same results."""

import copy

import torch

from workbench.engine.model import build_model
from workbench.engine.recipe import ModelConfig
from workbench.engine.search import beam_search, greedy_search, max_lengths
from workbench.engine.special_tokens import PAD
from workbench.engine.translator import decoding_layout


def test_the_decoding_layout_keeps_every_value_and_every_search_result():
    torch.manual_seed(0)
    model = build_model(ModelConfig(embedding_size=8, hidden_size=12, dropout=0.0), 13, 11).eval()
    with torch.no_grad():
        model.decoder.output_layer.weight.mul_(4.0)  # peaky distributions, as after training
    laid_out = decoding_layout(copy.deepcopy(model))
    before, after = dict(model.named_parameters()), dict(laid_out.named_parameters())
    for name, param in after.items():
        assert torch.equal(param, before[name]), name
        matrix = param.dim() == 2 and min(param.shape) > 1 and "embedding" not in name
        assert param.is_contiguous() != matrix, name  # column-major matrices, row-major embeddings
    assert not after["decoder.output_layer.weight"].is_contiguous()
    assert after["decoder.output_layer.weight"].t().is_contiguous()

    g = torch.Generator().manual_seed(0)
    src = torch.randint(4, 13, (6, 7), generator=g)
    lengths = torch.tensor([7, 5, 6, 3, 7, 4])
    src[torch.arange(7).unsqueeze(0) >= lengths.unsqueeze(1)] = PAD
    limits = max_lengths(lengths, 1.5, 2)
    for search in (
        lambda m: greedy_search(m, src, lengths, limits),
        lambda m: beam_search(m, src, lengths, 4, n_best=2, max_lengths=limits),
    ):
        expected, got = search(model), search(laid_out)
        assert [[h.tokens for h in hyps] for hyps in got] == [[h.tokens for h in hyps] for hyps in expected]
        for hyps, ref in zip(got, expected, strict=True):
            for h, r in zip(hyps, ref, strict=True):
                assert abs(h.score - r.score) < 1e-5


def test_bf16_models_keep_their_row_major_matrices():
    model = decoding_layout(
        build_model(ModelConfig(embedding_size=8, hidden_size=12), 13, 11).to(torch.bfloat16)
    )
    assert all(p.is_contiguous() for p in model.parameters())
