"""Pretrained word vectors in the word2vec / GloVe text format, matched to a vocabulary's pieces."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

# SentencePiece marks a word start with this; "▁house" should find the vector of "house".
WORD_START = "\u2581"
INIT_STD = 0.1  # rows without a vector keep the model's embedding initialisation


def load_vectors(path: Path, pieces: list[str], dim: int) -> tuple[Tensor, int]:
    """A (len(pieces), dim) matrix with the file's vectors for the pieces it has, and how many it had.

    Lines are "word v1 ... v_dim"; an optional first line "count dim" is a header. A piece is looked up
    as itself, then without SentencePiece's word-start mark. Errors raise ValueError naming file:line.
    """
    rows: dict[str, list[int]] = {}
    for index, piece in enumerate(pieces):
        rows.setdefault(piece, []).append(index)
        if piece.startswith(WORD_START) and len(piece) > 1:
            rows.setdefault(piece[1:], []).append(index)

    matrix = torch.randn(len(pieces), dim) * INIT_STD
    matched: dict[int, bool] = {}  # row -> found under its exact piece
    try:
        with open(path, "rb") as lines:
            for number, raw in enumerate(lines, start=1):
                try:
                    fields = raw.decode("utf-8").split()
                except UnicodeDecodeError as exc:
                    raise ValueError(f"{path}:{number}: not UTF-8 text ({exc.reason})") from None
                if not fields:
                    continue
                if number == 1 and len(fields) == 2 and all(f.isdigit() for f in fields):
                    if int(fields[1]) != dim:
                        raise ValueError(
                            f"{path}:1: the vectors have {fields[1]} dimensions; the model needs {dim}"
                        )
                    continue
                if len(fields) != dim + 1:
                    raise ValueError(
                        f"{path}:{number}: expected a word and {dim} numbers, found {len(fields)} fields"
                    )
                targets = rows.get(fields[0])
                if not targets:
                    continue
                try:
                    vector = torch.tensor([float(v) for v in fields[1:]])
                except ValueError:
                    raise ValueError(
                        f"{path}:{number}: not a number in the vector of {fields[0]!r}"
                    ) from None
                for index in targets:
                    is_exact = pieces[index] == fields[0]
                    # An exact match beats a match without the word-start mark; the first line wins ties.
                    if index not in matched or (is_exact and not matched[index]):
                        matrix[index] = vector
                        matched[index] = is_exact
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the vectors file ({exc.strerror or exc})") from None
    return matrix, len(matched)
