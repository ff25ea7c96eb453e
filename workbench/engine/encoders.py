"""The recurrent encoder: embeddings (or one-hot vectors), then a (bi)directional GRU/LSTM/RNN over the
packed source, read as written or backwards (`reverse_source`, Sutskever et al. 2014).

`nn.GRU` is the reference; CPU training of a one-layer GRU runs fast_paths/packed_gru.py instead
(`_fusable` below; docs/architecture.md). One-hot inputs and the reversal change only what the RNN
reads, so that path computes them too.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from workbench.engine.fast_paths import trains_fused
from workbench.engine.fast_paths.packed_gru import packed_gru
from workbench.engine.special_tokens import PAD

RNN_CLASSES: dict[str, type[nn.RNNBase]] = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}


@dataclass
class EncoderOutput:
    """What the decoder needs from one batch of sources; batch is dim 0 except in `final`."""

    states: Tensor  # (B, S, H * dirs), zeros at padding
    mask: Tensor  # (B, S) bool, True at real source positions
    final: Tensor  # (layers, dirs, B, H) last hidden state of every layer and direction
    final_cell: Tensor | None = None  # LSTM memory cells, like `final`
    keys: Tensor | None = None  # attention keys, projected once per source (set by the model)
    unpadded: bool = False  # True: no position is padding (the mask is all True and may be skipped)

    def index_select(self, idx: Tensor) -> EncoderOutput:
        """The rows `idx` of the batch (beam search reordering, dropping finished sentences)."""
        return EncoderOutput(
            states=self.states.index_select(0, idx),
            mask=self.mask.index_select(0, idx),
            final=self.final.index_select(2, idx),
            final_cell=None if self.final_cell is None else self.final_cell.index_select(2, idx),
            keys=None if self.keys is None else self.keys.index_select(0, idx),
            unpadded=self.unpadded,  # rows of an unpadded batch have no padding either
        )

    def repeat_interleave(self, k: int) -> EncoderOutput:
        """Every sentence repeated k times in a row: the (B * K) layout of beam search."""
        idx = torch.arange(self.states.size(0), device=self.states.device).repeat_interleave(k)
        return self.index_select(idx)

    def with_keys(self, keys: Tensor | None) -> EncoderOutput:
        """The same output carrying projected attention keys."""
        return replace(self, keys=keys)


class OneHot(nn.Module):
    """Token ids (...) to one-hot vectors (..., vocab), PAD to zeros: the input of a model without an
    embedding layer. It has no parameters; the vectors take the dtype and device the model was moved to."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.num_embeddings = self.embedding_dim = vocab_size
        self.register_buffer("_like", torch.zeros(0), persistent=False)  # carries dtype and device only

    def forward(self, tokens: Tensor) -> Tensor:
        vectors = self._like.new_zeros(*tokens.shape, self.num_embeddings)
        vectors.scatter_(-1, tokens.unsqueeze(-1), 1.0)
        vectors[..., PAD] = 0.0  # only PAD sets this column
        return vectors


def make_embedding(vocab_size: int, embedding_size: int, one_hot: bool = False) -> nn.Module:
    """A learned embedding (PAD's row zero), or one-hot vectors (embedding_size ignored)."""
    return OneHot(vocab_size) if one_hot else nn.Embedding(vocab_size, embedding_size, padding_idx=PAD)


def reversal(src: Tensor) -> Tensor:
    """Positions (B, S) that reverse each sentence within its real length, padding left in place: the
    permutation is its own inverse, so it reads a source backwards and puts the states back in order."""
    lengths = (src != PAD).sum(dim=1, keepdim=True)  # PAD only follows a sentence
    positions = torch.arange(src.size(1), device=src.device).expand_as(src)
    return torch.where(positions < lengths, lengths - 1 - positions, positions)


class RecurrentEncoder(nn.Module):
    """Embeds the source and runs a multi-layer, optionally bidirectional, recurrent network over it;
    with reverse_source each sentence is read last token first and its states returned in source order.

    `self.rnn` is the reference; CPU training of a one-layer GRU runs fast_paths/packed_gru.py."""

    def __init__(
        self,
        cell: str,
        vocab_size: int,
        embedding_size: int,
        hidden_size: int,
        encoder_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.0,
        embedding_dropout: float = 0.0,
        one_hot: bool = False,
        reverse_source: bool = False,
    ) -> None:
        super().__init__()
        if cell not in RNN_CLASSES:
            raise ValueError(f"unknown cell {cell!r}; expected one of {', '.join(RNN_CLASSES)}")
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers = encoder_layers
        self.num_directions = 2 if bidirectional else 1
        self.output_size = hidden_size * self.num_directions
        self.reverse_source = reverse_source
        self.embedding = make_embedding(vocab_size, embedding_size, one_hot)
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        self.rnn = RNN_CLASSES[cell](
            self.embedding.embedding_dim,
            hidden_size,
            num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,  # torch warns about dropout on one layer
        )

    def forward(self, src: Tensor, src_lengths: Tensor) -> EncoderOutput:
        """Encode src (B, S) of token ids; src_lengths (B,) are the real lengths, all >= 1."""
        batch, max_len = src.shape
        lengths = src_lengths.cpu()  # packing wants them on the CPU
        order = reversal(src) if self.reverse_source else None
        embedded = self.embedding_dropout(self.embedding(src if order is None else src.gather(1, order)))
        fused = self._fusable(embedded)
        unpadded = int(lengths.min()) == max_len
        if unpadded and not fused:
            # No padding (one sentence, as in interactive decoding): the unpacked kernel projects every
            # input in one matrix product instead of one per step.
            states, final = self.rnn(embedded)
        else:
            packed = pack(embedded, lengths)
            outputs, final = packed_gru(self.rnn, packed) if fused else self.rnn(packed)  # type: ignore[arg-type]
            states = unpack(outputs, max_len)
        if order is not None:  # state j again belongs to source token j (padding stays zero)
            states = states.gather(1, order.unsqueeze(-1).expand_as(states))
        final_cell = None
        if isinstance(final, tuple):
            final, final_cell = final
            final_cell = final_cell.view(self.num_layers, self.num_directions, batch, self.hidden_size)
        final = final.view(self.num_layers, self.num_directions, batch, self.hidden_size)
        # PAD only ever follows a sentence: the mask is made on the device, with no copy from the host.
        return EncoderOutput(
            states=states, mask=src != PAD, final=final, final_cell=final_cell, unpadded=unpadded
        )

    def _fusable(self, embedded: Tensor) -> bool:
        """Whether training runs the GRU as one node (fast_paths/packed_gru.py): a one-layer GRU, not a
        quantized one, on the CPU (on a GPU cuDNN runs the whole packed GRU in one call)."""
        return (
            type(self.rnn) is nn.GRU
            and self.num_layers == 1
            and embedded.device.type == "cpu"
            and trains_fused(embedded, self.rnn.weight_hh_l0)
        )


def pack(embedded: Tensor, lengths: Tensor) -> PackedSequence:
    """`pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)`, the same packing,
    without a host sync on CUDA: the sort order (made on the CPU from `lengths`) travels from pinned memory.
    """
    sorted_lengths, order = torch.sort(lengths, descending=True)
    if embedded.device.type == "cuda":
        order = order.pin_memory().to(embedded.device, non_blocking=True)
    packed = pack_padded_sequence(embedded.index_select(0, order), sorted_lengths, batch_first=True)
    return PackedSequence(packed.data, packed.batch_sizes, order)  # the inverse order is made on the device


def unpack(packed: PackedSequence, total_length: int) -> Tensor:
    """`pad_packed_sequence(packed, batch_first=True, total_length=...)[0]`, in the batch's own order.

    torch's version also reorders the lengths on the host, which costs a sync on CUDA; they are not needed.
    """
    states, _ = pad_packed_sequence(
        PackedSequence(packed.data, packed.batch_sizes), batch_first=True, total_length=total_length
    )
    return states if packed.unsorted_indices is None else states.index_select(0, packed.unsorted_indices)
