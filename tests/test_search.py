"""Search: beam search is exact with a large beam, batching changes nothing, beam 1 is greedy."""

import itertools
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from workbench.engine.fast_paths import reference_maths
from workbench.engine.fast_paths.search_step import forward_of
from workbench.engine.model import build_model
from workbench.engine.quantization import int8_forward
from workbench.engine.recipe import DecodingConfig, ModelConfig, RecipeError
from workbench.engine.search import beam_search, greedy_search, length_penalty, max_lengths
from workbench.engine.special_tokens import BOS, EOS, PAD
from workbench.engine.translator import decoding_model

VOCAB = 6  # PAD, UNK, BOS, EOS and two words: searches may emit UNK, 4 and 5 (and EOS)
OUTPUT_TOKENS = [1, 4, 5]
CFG = ModelConfig(embedding_size=8, hidden_size=10, dropout=0.0)


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_model(seed: int = 0, cfg: ModelConfig = CFG, vocab: int = VOCAB):
    torch.manual_seed(seed)
    model = build_model(cfg, vocab, vocab).double()
    with torch.no_grad():
        model.decoder.output_layer.weight.mul_(4.0)  # peakier distributions than at initialisation
    return model.eval()


def padded_batch(lengths, vocab: int = VOCAB, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    src_lengths = torch.tensor(lengths)
    src = torch.randint(4, vocab, (len(lengths), max(lengths)), generator=g)
    src[torch.arange(max(lengths)).unsqueeze(0) >= src_lengths.unsqueeze(1)] = PAD
    return src, src_lengths


def exhaustive(model, src, src_lengths, max_len: int, alpha: float) -> list[tuple[float, list[int]]]:
    """Every output of at most max_len tokens followed by EOS, scored by the teacher-forced model."""
    outputs = [list(seq) for n in range(max_len + 1) for seq in itertools.product(OUTPUT_TOKENS, repeat=n)]
    tgt = torch.full((len(outputs), max_len + 2), PAD)
    for i, seq in enumerate(outputs):
        tgt[i, : len(seq) + 2] = torch.tensor([BOS, *seq, EOS])
    n = len(outputs)
    with torch.no_grad():
        logits, _ = model(src.expand(n, -1), src_lengths.expand(n), tgt[:, :-1])
    log_probs = F.log_softmax(logits, -1).gather(2, tgt[:, 1:].unsqueeze(2)).squeeze(2)
    totals = log_probs.masked_fill(tgt[:, 1:] == PAD, 0.0).sum(1).tolist()
    scored = [
        (lp / length_penalty(len(seq) + 1, alpha), seq) for lp, seq in zip(totals, outputs, strict=True)
    ]
    return sorted(scored, key=lambda pair: -pair[0])


# alpha = 3 favours long outputs strongly: the case where stopping early is most tempting and wrong.
@pytest.mark.parametrize("alpha", [0.0, 1.0, 3.0])
@pytest.mark.parametrize("n_best", [1, 5])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_a_large_beam_finds_the_exhaustive_n_best(alpha, n_best, seed):
    model = tiny_model(seed)
    src, src_lengths = padded_batch([4], seed=seed)
    max_len = 4  # 121 possible outputs; a beam of 200 keeps every prefix
    best = exhaustive(model, src, src_lengths, max_len, alpha)[:n_best]
    limits = torch.tensor([max_len])
    hyps = beam_search(model, src, src_lengths, 200, n_best=n_best, alpha=alpha, max_lengths=limits)[0]
    assert [h.tokens for h in hyps] == [seq for _, seq in best]
    assert [h.score for h in hyps] == pytest.approx([score for score, _ in best], abs=1e-9)


def test_a_small_beam_is_never_better_than_exhaustive_search_and_respects_max_length():
    model = tiny_model(3)
    src, src_lengths = padded_batch([3], seed=3)
    best_score, _ = exhaustive(model, src, src_lengths, 3, 1.0)[0]
    hyps = beam_search(model, src, src_lengths, 2, n_best=2, alpha=1.0, max_lengths=torch.tensor([3]))[0]
    assert all(len(h.tokens) <= 3 for h in hyps)
    assert hyps[0].score <= best_score + 1e-12


def test_batched_beam_search_over_a_padded_batch_equals_one_sentence_at_a_time():
    model = tiny_model(4, vocab=9)
    lengths = [5, 2, 7, 4]
    src, src_lengths = padded_batch(lengths, vocab=9, seed=4)
    limits = max_lengths(src_lengths, 1.5, 2)
    batched = beam_search(model, src, src_lengths, 4, n_best=3, alpha=1.0, max_lengths=limits)
    for b, n in enumerate(lengths):
        alone = beam_search(model, src[b : b + 1, :n], src_lengths[b : b + 1], 4, 3, 1.0, limits[b : b + 1])[
            0
        ]
        assert [h.tokens for h in batched[b]] == [h.tokens for h in alone]
        assert [h.score for h in batched[b]] == pytest.approx([h.score for h in alone], abs=1e-9)
        for mine, theirs in zip(batched[b], alone, strict=True):
            torch.testing.assert_close(mine.attention, theirs.attention)


def test_n_best_lists_are_sorted_distinct_and_carry_their_attention():
    model = tiny_model(5, vocab=9)
    src, src_lengths = padded_batch([6, 3], vocab=9, seed=5)
    limits = max_lengths(src_lengths, 2.0, 1)
    for hyps, n, limit in zip(
        beam_search(model, src, src_lengths, 5, n_best=5, max_lengths=limits), [6, 3], limits, strict=True
    ):
        assert len(hyps) == 5
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(h.tokens) for h in hyps}) == 5
        for h in hyps:
            assert (
                len(h.tokens) <= limit and EOS not in h.tokens and BOS not in h.tokens and PAD not in h.tokens
            )
            assert h.score == pytest.approx(h.log_prob / length_penalty(len(h.tokens) + 1, 1.0))
            assert h.attention.shape == (len(h.tokens) + 1, n)
            torch.testing.assert_close(
                h.attention.sum(1), torch.ones(len(h.tokens) + 1, dtype=h.attention.dtype)
            )


@pytest.mark.parametrize("alpha", [0.0, 1.0])
@pytest.mark.parametrize("cell,feeding", [("gru", True), ("lstm", False)])
def test_beam_of_one_is_greedy_search(alpha, cell, feeding):
    model = tiny_model(6, cfg=replace(CFG, cell=cell, input_feeding=feeding), vocab=9)
    src, src_lengths = padded_batch([5, 2, 7, 4, 1], vocab=9, seed=6)
    limits = max_lengths(src_lengths, 2.0, 3)
    greedy = greedy_search(model, src, src_lengths, limits, alpha=alpha)
    beam = beam_search(model, src, src_lengths, 1, alpha=alpha, max_lengths=limits)
    assert len({len(g[0].tokens) for g in greedy}) > 1  # the sentences stop at different steps
    for (g,), (b,) in zip(greedy, beam, strict=True):
        assert g.tokens == b.tokens
        assert g.score == pytest.approx(b.score, abs=1e-9)
        assert g.log_prob == pytest.approx(b.log_prob, abs=1e-9)
        torch.testing.assert_close(g.attention, b.attention)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_searches_find_the_same_hypotheses_with_the_fast_step_and_the_reference(cell):
    model = tiny_model(8, cfg=replace(CFG, cell=cell), vocab=9)
    src, src_lengths = padded_batch([5, 2, 7, 4], vocab=9, seed=8)
    limits = max_lengths(src_lengths, 2.0, 3)

    def both() -> list:
        greedy = greedy_search(model, src, src_lengths, limits, alpha=0.6)
        return greedy + beam_search(model, src, src_lengths, 3, 2, 0.6, limits)

    fast = both()
    with reference_maths():
        reference = both()
    assert [[(h.tokens, h.score) for h in n] for n in fast] == [
        [(h.tokens, h.score) for h in n] for n in reference
    ]


def test_searches_work_without_attention_and_restore_training_mode():
    model = tiny_model(7, cfg=replace(CFG, attention="none", input_feeding=False)).train()
    src, src_lengths = padded_batch([3, 2], seed=7)
    limits = torch.tensor([3, 3])
    assert all(h[0].attention is None for h in greedy_search(model, src, src_lengths, limits))
    assert all(h[0].attention is None for h in beam_search(model, src, src_lengths, 2, max_lengths=limits))
    assert model.training


def test_max_lengths_and_length_penalty():
    assert max_lengths(torch.tensor([1, 4, 5]), 1.5, 2).tolist() == [4, 8, 10]
    assert length_penalty(7, 0.0) == 1.0
    assert length_penalty(7, 1.0) == 2.0
    assert length_penalty(1, 0.6) == 1.0


def test_the_searches_default_to_the_recipes_decoding_defaults(monkeypatch):
    """No second copy of the defaults: a search called without them decodes as the recipe's defaults."""
    model = tiny_model(9)  # runs to the length limit on these sources
    src, src_lengths = padded_batch([4, 2], seed=9)
    d = DecodingConfig()
    limits = max_lengths(src_lengths, d.max_length_ratio, d.max_length_offset)
    explicit = beam_search(model, src, src_lengths, 3, d.n_best, d.length_penalty, limits)
    default = beam_search(model, src, src_lengths, 3)
    assert [[(h.tokens, h.score) for h in n] for n in default] == [
        [(h.tokens, h.score) for h in n] for n in explicit
    ]
    assert [len(n[0].tokens) for n in default] == limits.tolist()
    greedy = [h[0].score for h in greedy_search(model, src, src_lengths, limits, alpha=d.length_penalty)]
    assert [h[0].score for h in greedy_search(model, src, src_lengths, limits)] == greedy
    # Read from DecodingConfig when the search runs, not repeated: a changed default changes the limit.
    monkeypatch.setattr(DecodingConfig, "max_length_ratio", 0.5)
    monkeypatch.setattr(DecodingConfig, "max_length_offset", 1)
    assert [len(n[0].tokens) for n in beam_search(model, src, src_lengths, 3)] == [3, 2]


def test_beam_search_rejects_an_n_best_larger_than_the_beam():
    model = tiny_model()
    src, src_lengths = padded_batch([2])
    with pytest.raises(ValueError, match="n_best"):
        beam_search(model, src, src_lengths, 2, n_best=3)


@pytest.mark.parametrize(
    ("cell", "feeding", "tied"),
    [(cell, feeding, False) for cell in ("gru", "lstm", "rnn") for feeding in (True, False)]
    + [("gru", True, True)],  # tied embeddings, through the tie projection (embedding 8, hidden 10)
)
def test_int8_decoding_searches_every_architecture_near_fp32(cell, feeding, tied):
    cfg = replace(
        CFG, cell=cell, input_feeding=feeding, decoder_layers=1 if feeding else 2, tie_embeddings=tied
    )
    model = tiny_model(cfg=cfg).float()
    int8 = decoding_model(tiny_model(cfg=cfg).float(), "int8", torch.device("cpu"))
    src, src_lengths = padded_batch([5, 3, 4])  # a padded batch: the encoder packs it
    limits = max_lengths(src_lengths, 1.0, 2)
    for hyps in beam_search(int8, src, src_lengths, 3, max_lengths=limits):
        assert set(hyps[0].tokens) <= set(OUTPUT_TOKENS) and hyps[0].attention is not None
    enc, enc8 = model.encode(src, src_lengths), int8.encode(src, src_lengths)
    prev = torch.full((3,), BOS)
    log_probs, _, _ = model.step(prev, model.start(enc), enc)
    log_probs8, _, _ = int8.step(prev, int8.start(enc8), enc8)
    torch.testing.assert_close(log_probs8, log_probs, atol=0.1, rtol=0.05)


def test_an_int8_layer_the_search_step_cannot_unpack_is_called_as_a_module():
    int8 = decoding_model(tiny_model().float(), "int8", torch.device("cpu"))
    layer = int8.decoder.attentional_layer
    x = torch.randn(3, layer.in_features)
    assert torch.equal(int8_forward(layer)(x), layer(x))  # the packed kernel, as the module runs it
    assert int8_forward(int8.decoder.attention.energy_layer) is None  # left in fp32
    del layer._packed_params  # a torch whose modules keep their weights elsewhere
    assert int8_forward(layer) is None and forward_of(layer) is layer


def test_int8_decoding_runs_on_the_cpu_only_and_refuses_before_copying_the_model_elsewhere():
    model = tiny_model().float()
    with pytest.raises(RecipeError, match="CPU only"):
        decoding_model(model, "int8", torch.device("meta"))
    assert {p.device.type for p in model.parameters()} == {"cpu"}


def test_device_auto_decodes_an_int8_recipe_on_the_cpu_of_a_gpu_machine(tmp_path, monkeypatch, tf32_flags):
    from workbench.engine.recipe import load_recipe
    from workbench.engine.run_folder import RunFolder
    from workbench.engine.session import TrainingSession
    from workbench.engine.translator import Translator

    tiny = ["data.train_size=100", "data.valid_size=10", "model.hidden_size=16", "model.embedding_size=8"]
    run = RunFolder.create(tmp_path, load_recipe("reverse", [*tiny, "training.valid_every=3"]), name="r")
    assert TrainingSession(run, "cpu").train(max_steps=3) == "finished"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU machine
    translator = Translator.from_run(run, "last", "auto", precision="int8")
    assert translator.device == torch.device("cpu") and translator.decoding.precision == "int8"
    assert translator.translate(["a b c"], beam_size=1)[0][0].text is not None
