"""Teacher-derived token embeddings for the student, as static-embedding distillers (model2vec) do.

Each GPT-2 token's text is embedded by the teacher; PCA reduces the teacher's vectors to the student's width;
the result is rescaled to the student's `initializer_range`, so only the directions come from the teacher.
`[PAD]` and `[MASK]` keep their random initialisation. Cached per teacher (identity), prompt use and width
in `cache_home()/token_init`.
"""

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .teacher import Teacher, TeacherSpec


def pca_reduce(vectors: torch.Tensor, dim: int) -> torch.Tensor:
    """Project centred `vectors` (N, D) onto their top-`dim` principal directions -> (N, dim)."""
    if dim > vectors.shape[1]:
        raise ValueError(f"Cannot PCA-reduce {vectors.shape[1]}-d vectors to {dim} dimensions.")
    centred = vectors - vectors.mean(dim=0, keepdim=True)
    _, _, components = torch.linalg.svd(centred, full_matrices=False)  # rows: principal directions
    return centred @ components[:dim].T


def teacher_token_embeddings(tokenizer, spec: TeacherSpec, dim: int, cache_root: str | Path, device="cpu",
                             with_prompt: bool = False, batch_size: int = 256) -> torch.Tensor:
    """(len(GPT-2 vocabulary), dim) PCA-reduced teacher embeddings of every token's text, unscaled.

    `with_prompt`: whether the teacher's task prompt is put before each token text (see docs/distillation.md
    for the measurement that chose the default).
    """
    spec = spec if with_prompt else replace(spec, prompt="", prompt_name=None)
    teacher = Teacher(spec, device=device)
    vocab_size = tokenizer.vocab_size  # the 50,257 BPE tokens, not the added [PAD]/[MASK]
    key_source = json.dumps([teacher.identity(), vocab_size, dim], sort_keys=True)
    key = hashlib.sha256(key_source.encode()).hexdigest()[:20]
    path = Path(cache_root) / "token_init" / f"{key}.npy"
    if path.is_file():
        return torch.from_numpy(np.load(path, allow_pickle=False))
    tokens = tokenizer.convert_ids_to_tokens(list(range(vocab_size)))
    texts = [tokenizer.convert_tokens_to_string([token]).strip() for token in tokens]
    # ~50k short texts: minutes for a large teacher on a CPU, so the work goes in chunks under a progress bar.
    chunk = 16 * batch_size
    with tqdm(total=len(texts), desc=f"Token init ({Path(spec.name).name})", unit="token") as bar:
        parts = []
        for start in range(0, len(texts), chunk):
            parts.append(teacher.encode(texts[start:start + chunk], batch_size=batch_size))
            bar.update(len(parts[-1]))
    embeddings = torch.from_numpy(np.concatenate(parts))
    reduced = pca_reduce(embeddings, min(dim, embeddings.shape[1]))  # a teacher narrower than the student gives less
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npy")
    np.save(partial, reduced.numpy(), allow_pickle=False)
    partial.rename(path)
    return reduced


def init_from_teacher_tokens(student, token_vectors: torch.Tensor) -> None:
    """Copy `token_vectors` into the student's first rows, rescaled to std `initializer_range`.

    Vectors narrower than the student (a teacher with fewer dimensions than the student's width) fill the first
    columns; the other columns keep their random initialisation.
    """
    weight = student.get_input_embeddings().weight
    if token_vectors.shape[1] > weight.shape[1]:
        raise ValueError(f"Token vectors have width {token_vectors.shape[1]}, the student {weight.shape[1]}.")
    scaled = token_vectors * (student.config.initializer_range / token_vectors.std())
    with torch.no_grad():
        weight[: len(scaled), : scaled.shape[1]] = scaled.to(weight.dtype)
