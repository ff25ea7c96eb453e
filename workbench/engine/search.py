"""Greedy and beam search over a batch of sources, with GNMT length penalty and attention per hypothesis.

Both searches never emit PAD or BOS, and force EOS once a sentence has `max_lengths[b]` tokens, so every
hypothesis ends with EOS: its log-prob sums len(tokens) + 1 steps and its attention has that many rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from workbench.engine.fast_paths.search_step import search_step
from workbench.engine.recipe import DecodingConfig
from workbench.engine.special_tokens import BOS, EOS, PAD

if TYPE_CHECKING:
    from workbench.engine.model import Seq2Seq


@dataclass
class Hypothesis:
    """One output sentence: tokens without BOS/EOS, scores, and attention (steps incl. EOS, real source)."""

    tokens: list[int]
    score: float  # log_prob / length_penalty(len(tokens) + 1, alpha)
    log_prob: float
    attention: Tensor | None  # (len(tokens) + 1, src_len)


def length_penalty(length: int, alpha: float) -> float:
    """GNMT length penalty ((5 + length) / 6) ** alpha (Wu et al. 2016); 1 when alpha is 0."""
    return ((5.0 + length) / 6.0) ** alpha


def max_lengths(src_lengths: Tensor, ratio: float, offset: int) -> Tensor:
    """Most output tokens (EOS excluded) per sentence: ceil(src_len * ratio) + offset."""
    return torch.ceil(src_lengths.double() * ratio).long() + offset


_default_max_lengths = max_lengths  # beam_search's argument shadows the name


class _Restriction:
    """PAD and BOS are never emitted; rows that reached their max length may emit only EOS."""

    def __init__(self, vocab: int, device: torch.device) -> None:
        self.never = torch.tensor([PAD, BOS], device=device)
        self.not_eos = torch.ones(vocab, dtype=torch.bool, device=device)
        self.not_eos[EOS] = False

    def __call__(self, log_probs: Tensor, at_max: list[int]) -> Tensor:
        """The log-probs (N, V) with banned tokens at -inf, in place; at_max: the rows held to EOS."""
        log_probs.index_fill_(1, self.never, float("-inf"))
        if at_max:
            rows = torch.tensor(at_max, device=log_probs.device)
            log_probs.index_copy_(
                0, rows, log_probs.index_select(0, rows).masked_fill_(self.not_eos, float("-inf"))
            )
        return log_probs


class _Eval:
    """Eval mode for the duration of a search, restoring the caller's mode (validation runs mid-training)."""

    def __init__(self, model: nn.Module) -> None:
        self.model, self.was_training = model, model.training

    def __enter__(self) -> None:
        self.model.eval()

    def __exit__(self, *exc: object) -> None:
        self.model.train(self.was_training)


@torch.inference_mode()
def greedy_search(
    model: Seq2Seq,
    src: Tensor,
    src_lengths: Tensor,
    max_lengths: Tensor,
    attention: bool = True,
    alpha: float = DecodingConfig.length_penalty,
) -> list[list[Hypothesis]]:
    """The most probable next token at every step, for a batch; one hypothesis per sentence."""
    with _Eval(model):
        batch = src.size(0)
        enc = model.encode(src, src_lengths)
        state = model.start(enc)
        step = search_step(model)
        limit = max_lengths.tolist()
        prev = torch.full((batch,), BOS, dtype=torch.long, device=src.device)
        done = torch.zeros(batch, dtype=torch.bool, device=src.device)
        log_prob = None
        restrict = None
        tokens, weights = [], []
        for t in range(int(max_lengths.max()) + 1):
            step_lp, state, attn = step(prev, state, enc)
            if restrict is None:
                restrict = _Restriction(step_lp.size(1), step_lp.device)
            at_max = [b for b in range(batch) if limit[b] <= t]
            best, prev = restrict(step_lp, at_max).max(dim=-1)
            best = best.masked_fill(done, 0.0)
            log_prob = best if log_prob is None else log_prob + best
            tokens.append(prev)
            if attention and attn is not None:
                weights.append(attn)
            done = done | (prev == EOS)
            if bool(done.all()):  # one host sync a step: fine for decoding, never used in training
                break
        token_rows = torch.stack(tokens, dim=1).tolist()
        attn_all = torch.stack(weights, dim=1).float().cpu() if weights else None
        log_probs = log_prob.tolist() if log_prob is not None else [0.0] * batch
        lengths = src_lengths.tolist()
        results = []
        for b in range(batch):
            steps = token_rows[b].index(EOS) + 1
            att = None if attn_all is None else attn_all[b, :steps, : lengths[b]].clone()
            score = log_probs[b] / length_penalty(steps, alpha)
            results.append([Hypothesis(token_rows[b][: steps - 1], score, log_probs[b], att)])
        return results


@torch.inference_mode()
def beam_search(
    model: Seq2Seq,
    src: Tensor,
    src_lengths: Tensor,
    beam_size: int,
    n_best: int = DecodingConfig.n_best,
    alpha: float = DecodingConfig.length_penalty,
    max_lengths: Tensor | None = None,
    attention: bool = True,
) -> list[list[Hypothesis]]:
    """Batched beam search: all B sentences advance together as (B * beam_size) rows.

    Each step ranks the 2K best extensions of a sentence's K live beams: EOS extensions among the top K
    become finished hypotheses; the K best other extensions stay live. A sentence stops when
    (a) it has K finished hypotheses (the usual rule; with K = 1 this is exactly greedy search), or
    (b) its n_best-th finished score is at least the best score any live beam could still reach. Log-
    probs only decrease and the length penalty grows with length (alpha >= 0), so a live beam with
    log-prob L cannot end above L / length_penalty(max_length + 1, alpha): the bound is safe, or
    (c) it reaches its maximum length, where only EOS is allowed.
    Returns n_best hypotheses per sentence, best score first.
    """
    if beam_size < 1 or not 1 <= n_best <= beam_size:
        raise ValueError(f"need 1 <= n_best <= beam_size; got n_best={n_best}, beam_size={beam_size}")
    if alpha < 0:
        raise ValueError(f"the length penalty alpha must be >= 0; got {alpha}")
    if max_lengths is None:
        d = DecodingConfig
        max_lengths = _default_max_lengths(src_lengths, d.max_length_ratio, d.max_length_offset)
    with _Eval(model):
        return _beam_search(model, src, src_lengths, beam_size, n_best, alpha, max_lengths.cpu(), attention)


def _beam_search(
    model: Seq2Seq,
    src: Tensor,
    src_lengths: Tensor,
    k: int,
    n_best: int,
    alpha: float,
    limits: Tensor,
    attention: bool,
) -> list[list[Hypothesis]]:
    device = src.device
    batch = src.size(0)
    lengths = src_lengths.tolist()
    limit_list = limits.tolist()
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    alive = list(range(batch))  # original sentence ids of the sentences still searched, in row order

    enc = model.encode(src, src_lengths).repeat_interleave(k)
    state = model.start(enc)
    step = search_step(model)
    prev = torch.full((batch * k,), BOS, dtype=torch.long, device=device)
    history: list[list[int]] = [[] for _ in range(batch * k)]  # each row's tokens so far
    attn_history = None
    # Only the first beam of each sentence is live at the start, so the K beams do not repeat it.
    beam_lp: Tensor | None = None
    neg_inf = float("-inf")

    for t in range(int(limits.max()) + 1):
        n = len(alive)
        step_lp, state, attn = step(prev, state, enc)
        vocab = step_lp.size(1)
        if beam_lp is None:
            beam_lp = torch.full((n * k,), neg_inf, dtype=step_lp.dtype, device=device)
            beam_lp[::k] = 0.0
            restrict = _Restriction(vocab, device)
        at_max = [s * k + j for s in range(n) if t >= limit_list[alive[s]] for j in range(k)]
        restrict(step_lp, at_max)
        # The 2K best of a sentence's K * V extensions are among the 2K best of each beam's V: two small
        # top-k's instead of one over K * V scores (the same scores, a quarter of the time).
        per_beam = min(2 * k, vocab)
        cand_lp, cand_token = step_lp.topk(per_beam, dim=1)  # (n * K, per_beam)
        cand_lp = (cand_lp + beam_lp.unsqueeze(1)).view(n, k * per_beam)
        top_lp, top_pos = cand_lp.topk(2 * k, dim=1)  # (n, 2K), best first
        top_token = cand_token.view(n, k * per_beam).gather(1, top_pos)
        with_attn = attention and attn is not None
        if with_attn:
            step_attn = attn.unsqueeze(1)
            attn_history = step_attn if attn_history is None else torch.cat([attn_history, step_attn], dim=1)

        # The few candidates are ranked on the host: EOS among the K best (with a finite score) ends a
        # hypothesis; the K best other extensions stay live, in rank order.
        top_lps, top_tokens, top_beams = top_lp.tolist(), top_token.tolist(), (top_pos // per_beam).tolist()
        ended: list[tuple[Hypothesis, int]] = []  # new hypotheses and the row whose attention they take
        live_rows: list[int] = []
        live_tokens: list[int] = []
        live_lps: list[float] = []
        keep: list[int] = []
        for s, sentence in enumerate(alive):
            rows, tokens, lps = [], [], []
            hyps = finished[sentence]
            for rank, (lp, token, beam) in enumerate(
                zip(top_lps[s], top_tokens[s], top_beams[s], strict=True)
            ):
                row = s * k + beam
                if token != EOS:
                    if len(rows) < k:
                        rows.append(row)
                        tokens.append(token)
                        lps.append(lp)
                elif rank < k and lp != neg_inf:
                    hyps.append(Hypothesis(history[row], lp / length_penalty(t + 1, alpha), lp, None))
                    ended.append((hyps[-1], row))
            hyps.sort(key=lambda h: -h.score)
            done = len(hyps) >= k or t >= limit_list[sentence] or lps[0] == neg_inf
            if not done and len(hyps) >= n_best:
                done = hyps[n_best - 1].score >= lps[0] / length_penalty(limit_list[sentence] + 1, alpha)
            if not done:
                keep.append(s)
                live_rows += rows
                live_tokens += tokens
                live_lps += lps
        if with_attn and ended:
            assert attn_history is not None
            rows_t = torch.tensor([row for _, row in ended], device=device)
            weights = attn_history.index_select(0, rows_t).float().cpu()
            for i, (hyp, row) in enumerate(ended):
                hyp.attention = weights[i, :, : lengths[alive[row // k]]].clone()
        if not keep:
            break

        rows_t = torch.tensor(live_rows, device=device)
        prev = torch.tensor(live_tokens, device=device)
        beam_lp = torch.tensor(live_lps, dtype=beam_lp.dtype, device=device)
        history = [history[row] + [token] for row, token in zip(live_rows, live_tokens, strict=True)]
        state = state.index_select(rows_t)
        if with_attn:
            attn_history = attn_history.index_select(0, rows_t)
        if len(keep) < n:
            # Drop finished sentences from the batch so later steps cost only what is still searched.
            enc = enc.index_select(torch.tensor([s * k + j for s in keep for j in range(k)], device=device))
            alive = [alive[s] for s in keep]

    return [hyps[:n_best] for hyps in finished]
