"""Teacher targets: computed once, cached on disk, memory-mapped during training.

The cache folder is named by a key over the teacher (name and weights), the tokenised corpus (its
`datasets` fingerprint, which covers the sources, the subset and the student's truncation), the teacher's
token limit and dtype. Rows are written in chunks; each finished chunk leaves a marker, so an interrupted
computation resumes where it stopped, and under a multi-process launch every process encodes its own
share of the chunks. `meta.json` appears only when every chunk is done: a second run, or a resumed one,
then reads the cache and never loads the teacher.
"""

import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .teacher import SentenceEncoder, resolve_model_path



def teacher_fingerprint(teacher_name: str) -> str:
    """Identifies the teacher's weights: sha256 of its config and weight files (name only for a Hub id)."""
    folder = Path(resolve_model_path(teacher_name))
    digest = hashlib.sha256(teacher_name.encode())
    if folder.is_dir():
        for path in sorted(folder.glob("*.json")) + sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
            digest.update(path.name.encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


class TeacherTargets:
    """A (rows, dim) float16 array on disk; `rows(ids)` returns float32. Opens lazily, so it pickles cheaply."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.meta = json.loads((self.folder / "meta.json").read_text())
        self.dim = self.meta["dim"]
        self.from_cache = True
        self._array = None

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = np.load(self.folder / "targets.npy", mmap_mode="r")
        return self._array

    def rows(self, row_ids: np.ndarray) -> np.ndarray:
        order = np.argsort(row_ids)  # sorted reads are kinder to the page cache
        out = np.empty((len(row_ids), self.dim), dtype=np.float32)
        out[order] = self.array[row_ids[order]]
        return out

    def __getstate__(self):
        return {**self.__dict__, "_array": None}

    def __len__(self) -> int:
        return self.meta["rows"]


def _teacher_inputs(batch: dict, tokenizer) -> list[str]:
    """What the teacher reads: the text the student sees, i.e. decoded back from its tokens when truncated."""
    return [tokenizer.decode(ids) if cut else text for text, ids, cut in zip(batch["text"], batch["input_ids"], batch["truncated"])]


def compute_teacher_targets(accelerator, tokenized, student_tokenizer, teacher_name: str, cache_dir: str,
                            teacher_dtype: str = "float32", teacher_max_length: int | None = None,
                            batch_size: int = 128, expected_dim: int | None = None,
                            chunk_rows: int = 4096) -> TeacherTargets:
    """Targets for every row of `tokenized` (row i at index i), from the cache or computed now, in shards."""
    key_source = json.dumps([teacher_fingerprint(teacher_name), tokenized._fingerprint, teacher_max_length,
                             teacher_dtype, len(tokenized)])
    key = hashlib.sha256(key_source.encode()).hexdigest()[:20]
    folder = Path(cache_dir) / "teacher_targets" / key
    if (folder / "meta.json").is_file():
        targets = TeacherTargets(folder)
        if expected_dim is not None and targets.dim != expected_dim:
            raise ValueError(f"Cached targets in {folder} have dim {targets.dim}, expected teacher_dim={expected_dim}.")
        return targets

    started = time.perf_counter()
    n_chunks = math.ceil(len(tokenized) / chunk_rows)
    done_dir = folder / "chunks_done"
    teacher = None
    if accelerator.is_main_process:
        done_dir.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()

    mine = [c for c in range(n_chunks) if c % accelerator.num_processes == accelerator.process_index]
    pending = [c for c in mine if not (done_dir / f"{c}.done").exists()]
    array = None
    if pending:
        teacher = SentenceEncoder(teacher_name, device=accelerator.device, max_length=teacher_max_length,
                                  dtype=getattr(torch, teacher_dtype), expected_dim=expected_dim)
        if accelerator.is_main_process and not (folder / "targets.npy").exists():
            staging = folder / "targets.npy.partial"
            np.lib.format.open_memmap(staging, mode="w+", dtype=np.float16, shape=(len(tokenized), teacher.dim)).flush()
            staging.rename(folder / "targets.npy")
    accelerator.wait_for_everyone()
    if pending:
        array = np.load(folder / "targets.npy", mmap_mode="r+")
        bar = tqdm(total=sum(min(chunk_rows, len(tokenized) - c * chunk_rows) for c in pending), desc="Teacher targets", unit="text",
                   disable=not accelerator.is_local_main_process)
        for chunk in pending:
            rows = tokenized[chunk * chunk_rows : (chunk + 1) * chunk_rows]
            embeddings = teacher.encode(_teacher_inputs(rows, student_tokenizer), batch_size=batch_size)
            array[rows["row_id"][0] : rows["row_id"][0] + len(embeddings)] = embeddings.numpy().astype(np.float16)
            array.flush()
            (done_dir / f"{chunk}.done").touch()
            bar.update(len(embeddings))
        bar.close()
        del array
    accelerator.wait_for_everyone()

    if accelerator.is_main_process:
        missing = [c for c in range(n_chunks) if not (done_dir / f"{c}.done").exists()]
        if missing:
            raise RuntimeError(f"Teacher targets in {folder}: chunks {missing[:5]}... were not computed.")
        dim = np.load(folder / "targets.npy", mmap_mode="r").shape[1]
        meta = {"teacher": teacher_name, "rows": len(tokenized), "dim": dim, "dtype": "float16",
                "teacher_dtype": teacher_dtype, "teacher_max_length": teacher_max_length,
                "corpus_fingerprint": tokenized._fingerprint, "seconds": round(time.perf_counter() - started, 1)}
        (folder / "meta.json.partial").write_text(json.dumps(meta, indent=2))
        (folder / "meta.json.partial").rename(folder / "meta.json")
    accelerator.wait_for_everyone()
    targets = TeacherTargets(folder)
    targets.from_cache = False
    return targets
