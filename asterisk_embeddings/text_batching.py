"""Token batches for sentence encoders: validate the texts, tokenise to a limit and count what was cut, order
by length, pad, and put the results back in input order.

Torch-free (numpy only). The ONNX encoder, the evaluation embedders and the benchmarks use it;
`AsteriskModel.encode` keeps its own copy of the same steps (the Hub file cannot import this package), and a
test pins the two together.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np


def check_texts(texts) -> tuple[list[str], bool]:
    """(texts as a list, whether a single string was given); `TypeError` naming the first non-string."""
    single = isinstance(texts, str)
    texts = [texts] if single else texts
    if not isinstance(texts, Sequence):
        raise TypeError(f"texts must be a string or a sequence of strings, got {type(texts).__name__}.")
    for position, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{position}] is {type(text).__name__}, expected str.")
    return list(texts), single


@dataclass
class TokenizedTexts:
    """Token ids cut to `limit`, and how many texts were longer than that."""

    ids: list[list[int]]
    limit: int
    truncated: int

    def warning(self) -> str | None:
        """The one wording of the truncation warning, or None when nothing was cut."""
        if not self.truncated:
            return None
        return (f"{self.truncated} of {len(self.ids)} texts were longer than {self.limit} tokens and were truncated "
                f"to their first {self.limit} tokens.")


def tokenize_to_limit(encode_batch: Callable[[list[str], int], list[list[int]]], texts: list[str],
                      limit: int) -> TokenizedTexts:
    """Token ids of `texts`, each cut to its first `limit` tokens.

    `encode_batch(texts, max_length)` returns the ids without special tokens, truncated to `max_length`;
    asking for `limit + 1` tells which texts were longer than `limit` without a second pass.
    """
    if limit < 1:
        raise ValueError(f"The token limit must be a positive integer, got {limit}.")
    ids = encode_batch(texts, limit + 1)
    truncated = sum(len(row) > limit for row in ids)
    return TokenizedTexts([row[:limit] for row in ids], limit, truncated)


def pad_right(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad token id lists into int64 (input_ids, attention_mask) arrays, at least one column wide."""
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    width = max(1, int(lengths.max(initial=0)))
    attention_mask = np.arange(width) < lengths[:, None]  # (B, T)
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    # Boolean-mask assignment fills row by row, left to right: the order of the concatenated rows.
    tokens = itertools.chain.from_iterable(rows)
    input_ids[attention_mask] = np.fromiter(tokens, dtype=np.int64, count=int(lengths.sum()))
    return input_ids, attention_mask.astype(np.int64)


def length_sorted_batches(ids: Sequence[Sequence[int]], batch_size: int,
                          pad_id: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(rows, input_ids, attention_mask) batches, longest texts first (ties in input order), padded per batch.

    `rows` are the input positions of the batch's texts: `out[rows] = encoder(input_ids, attention_mask)`
    puts every result back in input order.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    order = np.argsort(-lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        input_ids, attention_mask = pad_right([ids[i] for i in rows], pad_id)
        yield rows, input_ids, attention_mask


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """As torch.nn.functional.normalize: x / max(||x||, 1e-12), row by row."""
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


__all__ = ["TokenizedTexts", "check_texts", "l2_normalize", "length_sorted_batches", "pad_right", "tokenize_to_limit"]
