"""The CUDA path: no host sync in a training step, the CPU's numbers, bf16/fp16 autocast that learns,
and run folders that move between a GPU and a CPU machine.

CI has no GPU, so these skip there (the reason says so); `scripts/gpu-check` runs them on a GPU machine.
"""

import pytest
import torch
from test_fused import decode, model_and_batch
from test_model import assert_search_step_matches

from workbench.engine.fast_paths import reference_maths
from workbench.engine.recipe import load_recipe
from workbench.engine.run_folder import RunFolder
from workbench.engine.session import TrainingSession
from workbench.engine.training import Trainer
from workbench.engine.translator import Translator

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (scripts/gpu-check runs these on one)"
)

TINY = [
    "data.train_size=2000",
    "data.valid_size=40",
    "data.test_size=0",
    "model.embedding_size=32",
    "model.hidden_size=64",
    "training.batch_size=32",
    "training.log_every=10",
    "training.valid_every=1000",
    "training.threads=1",
]
# The reference model's kind (bidirectional GRU, Bahdanau) and the reverse recipe's own (LSTM, dot).
ARCHITECTURES = {
    "gru-bahdanau": ["model.cell=gru", "model.bidirectional=true", "model.attention=bahdanau"],
    "lstm-dot": [],
}


def prepared(tmp_path, name, device, extra=()):
    run = RunFolder.create(tmp_path, load_recipe("reverse", [*TINY, *extra]), name=name)
    return Trainer(TrainingSession(run, device).prepare())


def batches(trainer, n):
    order = trainer.epoch_order(0)
    return [trainer.train_batch(order[i]) for i in range(n)]


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_a_training_step_makes_no_host_sync(tmp_path, arch, precision):
    trainer = prepared(tmp_path, "sync", "cuda", [*ARCHITECTURES[arch], f"training.precision={precision}"])
    first, *rest = batches(trainer, 4)
    trainer.train_step(first)  # the first step creates handles and optimizer state
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any synchronizing call below raises
    try:
        for batch in rest:
            loss_sum, grad_norm = trainer.train_step(batch)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert loss_sum.is_cuda and grad_norm.is_cuda
    assert torch.isfinite(loss_sum).item()


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_fp32_training_on_cuda_follows_the_cpu_curve(tmp_path, arch):
    # No dropout: the two devices draw different random numbers; everything else is the same maths.
    extra = [*ARCHITECTURES[arch], "model.dropout=0", "training.precision=fp32"]
    torch.backends.cudnn.allow_tf32 = True  # cuDNN's default: the trainer itself must turn TF32 off
    cpu, gpu = prepared(tmp_path, "cpu", "cpu", extra), prepared(tmp_path, "gpu", "cuda", extra)
    assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    start = [p.detach().clone() for p in cpu.model.parameters()]
    curves = {"cpu": [], "gpu": []}
    for batch in batches(cpu, 8):
        for name, trainer in (("cpu", cpu), ("gpu", gpu)):
            trainer.progress.step += 1
            loss_sum, grad_norm = trainer.train_step(batch.to(trainer.device))
            curves[name].append((loss_sum.item() / batch.n_tgt_tokens, grad_norm.item()))
    for (cpu_loss, cpu_norm), (gpu_loss, gpu_norm) in zip(curves["cpu"], curves["gpu"]):
        assert gpu_loss == pytest.approx(cpu_loss, rel=1e-4)
        assert gpu_norm == pytest.approx(cpu_norm, rel=1e-3)
    moved = 0.0
    for (name, p_cpu), p_gpu, p_0 in zip(cpu.model.named_parameters(), gpu.model.parameters(), start):
        assert torch.dist(p_gpu.cpu(), p_cpu) <= 1e-3 * p_cpu.norm(), name
        moved = max(moved, (torch.dist(p_cpu, p_0) / p_0.norm()).item())
    assert moved > 1e-2  # eight Adam steps changed the weights far beyond the tolerance above


def bernoulli_dropout(x, p=0.5, training=True, inplace=False):
    """nn.Dropout's draw as the fused decoder makes it (CUDA's own dropout kernel draws other masks)."""
    if not training or p == 0:
        return x
    return x * torch.empty_like(x).bernoulli_(1 - p).div_(1 - p)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("attention", ["bahdanau", "concat", "dot", "general"])
@pytest.mark.parametrize("dropout", [0.0, 0.4])
def test_the_fused_decoder_equals_the_step_loop_on_cuda(cell, attention, dropout, monkeypatch):
    monkeypatch.setattr(torch.nn.functional, "dropout", bernoulli_dropout)  # one law of draws, both paths
    model, src, lengths, tgt = model_and_batch(attention, dropout, cell=cell)
    model, src, tgt = model.cuda(), src.cuda(), tgt.cuda()
    out_f, att_f, grads_f = decode(model, src, lengths, tgt)
    with reference_maths():
        out_s, att_s, grads_s = decode(model, src, lengths, tgt)
    torch.testing.assert_close(out_f, out_s, rtol=0, atol=1e-10)
    torch.testing.assert_close(att_f, att_s, rtol=0, atol=1e-10)
    assert grads_f.keys() == grads_s.keys()
    for name in grads_s:
        torch.testing.assert_close(grads_f[name], grads_s[name], rtol=0, atol=1e-9, msg=name)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("attention", ["bahdanau", "dot"])
def test_the_search_step_equals_the_reference_step_on_cuda(cell, attention):
    model, src, lengths, tgt = model_and_batch(attention, 0.0, cell=cell)
    model, src, tgt = model.cuda().eval(), src.cuda(), tgt.cuda()

    def close(a, b):
        return torch.allclose(a, b, rtol=0, atol=1e-12)

    assert_search_step_matches(model, src, lengths, tgt, close)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_autocast_training_learns_with_fp32_weights(tmp_path, precision):
    extra = [*ARCHITECTURES["gru-bahdanau"], f"training.precision={precision}", "training.max_steps=150"]
    trainer = prepared(tmp_path, precision, "cuda", extra)
    assert trainer.train() == "finished"
    losses = [r["loss"] for r in trainer.run.read_metrics()[0] if r["kind"] == "train"]
    assert all(loss == loss for loss in losses)  # no NaN
    assert losses[-1] < 0.5 * losses[0]
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    assert trainer.setup.scaler.is_enabled() == (precision == "fp16")  # fp16 needs loss scaling, bf16 none


def test_a_run_trained_on_cuda_decodes_the_same_on_the_cpu(tmp_path):
    trainer = prepared(tmp_path, "moved", "cuda", ["training.max_steps=600", "training.precision=fp32"])
    assert trainer.train() == "finished"
    sentences = [" ".join(w) for w in ("abcdefg", "hello", "qwertyuiop", "zyx", "reverse")]
    for beam in (1, 5):
        on_gpu = Translator.from_run(trainer.run.path, "last", "cuda").translate(sentences, beam_size=beam)
        on_cpu = Translator.from_run(trainer.run.path, "last", "cpu").translate(sentences, beam_size=beam)
        for g, c in zip(on_gpu, on_cpu):
            assert g[0].text == c[0].text
            assert g[0].score == pytest.approx(c[0].score, abs=1e-3)
    assert on_cpu[0][0].text == "g f e d c b a"  # and it learned the task
