"""Deferred weight gradients: the step layers compute what nn.Linear / nn.*Cell compute, and a step
loop's gradients are the same with the weight gradients deferred to one GEMM as without."""

import pytest
import torch

from workbench.engine import decoders
from workbench.engine.model import build_model
from workbench.engine.recipe import ModelConfig
from workbench.engine.recurrence import (
    StepGRUCell,
    StepLinear,
    StepLSTMCell,
    StepRNNCell,
    deferred_weight_gradients,
)
from workbench.engine.special_tokens import BOS, PAD

pytestmark = pytest.mark.usefixtures("one_thread")


class Loop(torch.nn.Module):
    """A tiny input-fed recurrence: every step reuses the cell and the output layer."""

    def __init__(self, cell_class, size=6):
        super().__init__()
        self.cell = cell_class(2 * size, size)
        self.out = StepLinear(size, size)
        self.lstm = cell_class is StepLSTMCell

    def forward(self, xs):
        h = xs.new_zeros(xs.size(0), self.out.in_features)
        state = (h, h) if self.lstm else h
        feed, outputs = h, []
        for x in xs.unbind(1):
            state = self.cell(torch.cat([x, feed], -1), state)
            feed = torch.tanh(self.out(state[0] if self.lstm else state))
            outputs.append(feed)
        return torch.stack(outputs, 1)


def gradients(model, xs, deferred: bool):
    model.zero_grad()
    xs = xs.clone().requires_grad_()
    with deferred_weight_gradients(model, enabled=deferred):
        out = model(xs)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    return (
        out.detach(),
        {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None},
        xs.grad,
    )


@pytest.mark.parametrize("cell_class", [StepGRUCell, StepLSTMCell, StepRNNCell])
def test_a_loop_has_the_same_outputs_and_gradients_with_deferred_weight_gradients(cell_class):
    torch.manual_seed(0)
    model = Loop(cell_class).double()
    xs = torch.randn(3, 5, 6, dtype=torch.float64)
    out, grads, x_grad = gradients(model, xs, deferred=False)
    out_d, grads_d, x_grad_d = gradients(model, xs, deferred=True)
    torch.testing.assert_close(out_d, out, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(x_grad_d, x_grad, rtol=1e-12, atol=1e-12)
    assert grads_d.keys() == grads.keys() == {n for n, _ in model.named_parameters()}
    for name in grads:
        torch.testing.assert_close(grads_d[name], grads[name], rtol=1e-12, atol=1e-12, msg=name)


def test_the_deferred_path_is_really_taken_and_ends_with_the_context():
    model = Loop(StepGRUCell)
    with deferred_weight_gradients(model):
        assert model.out._deferred is not None and model.cell._deferred is not None
    assert model.out._deferred is None and model.cell._deferred is None
    with torch.no_grad(), deferred_weight_gradients(model):
        assert model.out._deferred is None  # nothing to defer without gradients


def test_a_frozen_weight_is_left_to_plain_products():
    torch.manual_seed(0)
    model = Loop(StepGRUCell).double()
    model.cell.weight_hh.requires_grad_(False)
    xs = torch.randn(2, 4, 6, dtype=torch.float64)
    _, grads, _ = gradients(model, xs, deferred=False)
    _, grads_d, _ = gradients(model, xs, deferred=True)
    assert "cell.weight_hh" not in grads_d
    for name in grads:
        torch.testing.assert_close(grads_d[name], grads[name], rtol=1e-12, atol=1e-12, msg=name)


@pytest.mark.parametrize(
    "cell,attention,sampling", [("gru", "bahdanau", 0.0), ("lstm", "concat", 0.0), ("gru", "bahdanau", 0.5)]
)
def test_the_model_trains_to_the_same_gradients_with_and_without_deferral(
    cell, attention, sampling, monkeypatch
):
    cfg = ModelConfig(cell=cell, attention=attention, embedding_size=8, hidden_size=12, dropout=0.0)
    torch.manual_seed(0)
    model = build_model(cfg, 13, 11).double()
    g = torch.Generator().manual_seed(0)
    src = torch.randint(4, 13, (3, 5), generator=g)
    src[1, 3:] = PAD
    lengths = torch.tensor([5, 3, 5])
    tgt = torch.randint(4, 11, (3, 7), generator=g)
    tgt[:, 0] = BOS
    tgt[2, 5:] = PAD

    def grads(defer: bool):
        monkeypatch.setattr(decoders, "_defer_on", lambda tokens: defer)
        model.zero_grad()
        torch.manual_seed(1)  # the same scheduled-sampling draws
        model.loss(src, lengths, tgt[:, :-1], tgt[:, 1:], 0.1, sampling).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain, deferred = grads(False), grads(True)
    assert plain.keys() == deferred.keys()
    for name in plain:
        torch.testing.assert_close(deferred[name], plain[name], rtol=1e-10, atol=1e-12, msg=name)
    assert isinstance(model.decoder.attentional_layer, StepLinear)
