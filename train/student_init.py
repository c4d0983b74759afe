"""Teacher-derived token embeddings for the student, as static-embedding distillers (model2vec) do.

Each GPT-2 token's text is embedded by the teacher; PCA reduces the 384-d vectors to the student's width;
the result is rescaled to the student's `initializer_range`, so only the directions come from the teacher.
`[PAD]` and `[MASK]` keep their random initialisation. Cached per teacher and width.
"""

import hashlib
from pathlib import Path

import numpy as np
import torch

from .targets import teacher_fingerprint
from .teacher import SentenceEncoder


def pca_reduce(vectors: torch.Tensor, dim: int) -> torch.Tensor:
    """Project centred `vectors` (N, D) onto their top-`dim` principal directions -> (N, dim)."""
    if dim > vectors.shape[1]:
        raise ValueError(f"Cannot PCA-reduce {vectors.shape[1]}-d vectors to {dim} dimensions.")
    centred = vectors - vectors.mean(dim=0, keepdim=True)
    _, _, components = torch.linalg.svd(centred, full_matrices=False)  # rows: principal directions
    return centred @ components[:dim].T


def teacher_token_embeddings(tokenizer, teacher_name: str, dim: int, cache_dir: str, device="cpu",
                             batch_size: int = 512, dtype: torch.dtype | None = None) -> torch.Tensor:
    """(len(GPT-2 vocabulary), dim) PCA-reduced teacher embeddings of every token's text, unscaled."""
    vocab_size = tokenizer.vocab_size  # the 50,257 BPE tokens, not the added [PAD]/[MASK]
    key = hashlib.sha256(f"{teacher_fingerprint(teacher_name)}-{vocab_size}-{dim}".encode()).hexdigest()[:20]
    path = Path(cache_dir) / "token_init" / f"{key}.npy"
    if path.is_file():
        return torch.from_numpy(np.load(path))
    tokens = tokenizer.convert_ids_to_tokens(list(range(vocab_size)))
    texts = [tokenizer.convert_tokens_to_string([token]).strip() for token in tokens]
    teacher = SentenceEncoder(teacher_name, device=device, dtype=dtype)
    embeddings = teacher.encode(texts, batch_size=batch_size)
    reduced = pca_reduce(embeddings, dim)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path.with_suffix(".partial.npy"), reduced.numpy())
    path.with_suffix(".partial.npy").rename(path)
    return reduced


def init_from_teacher_tokens(student, token_vectors: torch.Tensor) -> None:
    """Copy `token_vectors` into the student's first rows, rescaled to std `initializer_range`."""
    weight = student.get_input_embeddings().weight
    if token_vectors.shape[1] != weight.shape[1]:
        raise ValueError(f"Token vectors have width {token_vectors.shape[1]}, the student {weight.shape[1]}.")
    scaled = token_vectors * (student.config.initializer_range / token_vectors.std())
    with torch.no_grad():
        weight[: len(scaled)] = scaled.to(weight.dtype)
