"""Length bucketing and collation: every sentence once, less padding, token budgets, BOS/EOS placement."""

from __future__ import annotations

import random

import pytest
import torch

from workbench.engine.data.batching import Batch, batch_indices, collate
from workbench.engine.special_tokens import BOS, EOS, PAD


def plan(*args, **kwargs) -> list[list[int]]:
    """batch_indices' batches as lists, to compare with ==."""
    return [batch.tolist() for batch in batch_indices(*args, **kwargs)]


def random_lengths(n: int, seed: int = 0) -> tuple[list[int], list[int]]:
    rng = random.Random(seed)
    src = [rng.randint(1, 60) for _ in range(n)]
    tgt = [max(1, s + rng.randint(-5, 5)) for s in src]
    return src, tgt


def padded_tokens(batches: list[list[int]], lengths: list[int]) -> int:
    return sum(max(lengths[i] for i in batch) * len(batch) for batch in batches)


@pytest.mark.parametrize(("unit", "size"), [("sentences", 32), ("tokens", 600)])
@pytest.mark.parametrize("shuffle", [True, False])
def test_every_index_is_in_exactly_one_batch(unit, size, shuffle):
    src, tgt = random_lengths(5000)
    batches = plan(src, tgt, size, unit, seed=1, shuffle=shuffle)
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(5000))
    assert all(batch for batch in batches)


def test_bucketing_pads_far_less_than_random_batches():
    src, tgt = random_lengths(5000)
    bucketed = plan(src, tgt, 32, "sentences", seed=1)
    order = list(range(5000))
    random.Random(1).shuffle(order)
    unbucketed = [order[i : i + 32] for i in range(0, 5000, 32)]
    real = sum(tgt)
    waste_bucketed = padded_tokens(bucketed, tgt) - real
    waste_random = padded_tokens(unbucketed, tgt) - real
    assert waste_bucketed < waste_random / 5


def test_sentence_batches_hold_batch_size_sentences_except_chunk_ends():
    src, tgt = random_lengths(5000)
    batches = plan(src, tgt, 32, "sentences", seed=1)
    full = [len(b) for b in batches if len(b) == 32]
    # 5000 sentences in chunks of 50 * 32 = 1600: three full chunks and a chunk of 200.
    assert len(batches) == 3 * 50 + 7
    assert len(full) == 3 * 50 + 6


def test_token_batches_respect_the_budget_of_padded_target_tokens():
    src, tgt = random_lengths(5000)
    budget = 600
    batches = plan(src, tgt, budget, "tokens", seed=3)
    assert all(max(tgt[i] for i in batch) * len(batch) <= budget for batch in batches)
    # Filled, not one sentence a batch: the mean batch is close to the budget.
    assert padded_tokens(batches, tgt) / len(batches) > 0.8 * budget


def test_a_sentence_longer_than_the_token_budget_gets_a_batch_of_its_own():
    batches = plan([5, 5, 90], [5, 5, 100], 20, "tokens", seed=0)
    assert sorted(batches) == [[0, 1], [2]]


def test_batches_are_deterministic_for_a_seed_and_shuffled_differently_for_another():
    src, tgt = random_lengths(3000)
    first = plan(src, tgt, 16, "sentences", seed=5)
    assert plan(src, tgt, 16, "sentences", seed=5) == first
    assert plan(src, tgt, 16, "sentences", seed=6) != first


def test_batch_order_is_shuffled_when_training_and_length_sorted_when_not():
    src, tgt = random_lengths(3000)
    longest = [max(tgt[i] for i in b) for b in plan(src, tgt, 16, "sentences", seed=5)]
    assert longest != sorted(longest)
    unshuffled = plan(src, tgt, 16, "sentences", seed=5, shuffle=False)
    flat = [i for batch in unshuffled for i in batch]
    assert [(tgt[i], src[i]) for i in flat] == sorted((tgt[i], src[i]) for i in range(3000))
    assert plan(src, tgt, 16, "sentences", seed=99, shuffle=False) == unshuffled


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([1, 2], [1, 2], 4, "words"), "batch unit"),
        (([1, 2], [1, 2], 0, "tokens"), "batch_size"),
        (([1, 2], [1], 4, "tokens"), "target lengths"),
    ],
)
def test_bad_arguments_are_value_errors(args, message):
    with pytest.raises(ValueError, match=message):
        plan(*args, seed=0)


def test_collate_pads_sources_and_frames_targets_with_bos_and_eos():
    batch = collate([[5, 6, 7], [8]], [[9, 10], [11, 12, 13, 14]], indices=[4, 2])
    assert batch.src.tolist() == [[5, 6, 7], [8, PAD, PAD]]
    assert batch.src_lengths.tolist() == [3, 1]
    assert batch.tgt_in.tolist() == [[BOS, 9, 10, PAD, PAD], [BOS, 11, 12, 13, 14]]
    assert batch.tgt_out.tolist() == [[9, 10, EOS, PAD, PAD], [11, 12, 13, 14, EOS]]
    assert batch.indices == [4, 2]
    assert (batch.n_src_tokens, batch.n_tgt_tokens) == (4, 8)
    assert len(batch) == 2
    for tensor in (batch.src, batch.src_lengths, batch.tgt_in, batch.tgt_out):
        assert tensor.dtype == torch.long


def test_collate_counts_match_non_pad_tokens_on_a_large_random_batch():
    rng = random.Random(0)
    src = [[rng.randint(4, 99) for _ in range(rng.randint(1, 30))] for _ in range(64)]
    tgt = [[rng.randint(4, 99) for _ in range(rng.randint(1, 30))] for _ in range(64)]
    batch = collate(src, tgt, list(range(64)))
    assert batch.src.shape == (64, max(map(len, src)))
    assert batch.tgt_in.shape == batch.tgt_out.shape == (64, max(map(len, tgt)) + 1)
    assert batch.n_src_tokens == int((batch.src != PAD).sum())
    assert batch.n_tgt_tokens == int((batch.tgt_out != PAD).sum()) == int((batch.tgt_in != PAD).sum())
    for row, ids in enumerate(tgt):
        assert batch.tgt_out[row, : len(ids) + 1].tolist() == ids + [EOS]
        assert batch.tgt_in[row, : len(ids) + 1].tolist() == [BOS] + ids


def test_moving_a_batch_keeps_source_lengths_on_the_cpu():
    batch = collate([[5, 6]], [[7]], [0])
    device = "cuda" if torch.cuda.is_available() else "meta"
    moved = batch.to(device)
    assert isinstance(moved, Batch)
    assert moved.src.device.type == moved.tgt_in.device.type == moved.tgt_out.device.type == device
    assert moved.src_lengths.device.type == "cpu"
    assert batch.to("cpu") is batch
