"""Teacher targets: one store per teacher, keyed by the text the teacher read, filled in resumable shards.

A store lives in `cache_home()/teacher_targets/<teacher>-<identity hash>/` (`~/.cache/asterisk/...`, outside
the checkout, so a long teacher pass survives a fresh clone and continues in a later run). `identity.json`
says what the teacher is (its files' sha256, prompt, dtype, token limit, dimension); the folder name is a
hash of it, so a changed teacher, prompt or pooling gets a new store and never reuses stale vectors.

Vectors are stored by *text*, not by corpus row: a 64-bit blake2b key of the exact string the teacher read.
Any corpus, subset or preset that shows the teacher the same text reuses its vector. Each shard is three
files: `<id>.keys.npy` (uint64), `<id>.vectors.npy` (float16) and `<id>.json` (rows, dimension, sha256 of
both arrays, the store's identity hash), the json written last: a shard without it is unfinished and
ignored, so a kill loses at most the chunk in progress. Shards are checked against their sha256 when read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .teacher import Teacher, TeacherSpec

logger = logging.getLogger(__name__)

KEY_BYTES = 8  # 64-bit keys: for a million texts the chance of any collision is ~3e-8


def text_keys(texts: list[str]) -> np.ndarray:
    """uint64 key of each text: the first 8 bytes of its blake2b digest (UTF-8, surrogates escaped)."""
    keys = np.empty(len(texts), dtype=np.uint64)
    for i, text in enumerate(texts):
        digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=KEY_BYTES).digest()
        keys[i] = int.from_bytes(digest, "little")
    return keys


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


class TargetStore:
    """The shards of one teacher's vectors. `lookup(keys)` finds stored texts; `add(keys, vectors)` stores more."""

    def __init__(self, folder: str | os.PathLike, identity: dict):
        self.folder = Path(folder)
        self.identity = identity
        self.identity_hash = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
        self.dim = int(identity["dim"])
        self.folder.mkdir(parents=True, exist_ok=True)
        identity_path = self.folder / "identity.json"
        if identity_path.is_file():
            stored = json.loads(identity_path.read_text())
            if stored != identity:
                raise ValueError(f"{identity_path} describes another teacher ({stored}) than this one ({identity}); "
                                 "remove the folder or point ASTERISK_CACHE elsewhere.")
        else:
            _write_atomically(identity_path, json.dumps(identity, indent=2, sort_keys=True) + "\n")
        self._index = None

    @classmethod
    def for_teacher(cls, root: str | os.PathLike, teacher: Teacher) -> TargetStore:
        # What the teacher computes, not what it is called: a folder reached by another path is the same teacher.
        identity = teacher.identity()
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(teacher.spec.name.rstrip("/")).name)[:60]
        return cls(Path(root) / "teacher_targets" / f"{slug}-{digest}", identity)

    # ---------------------------------------------------------------------------------------------- reading

    def shard_ids(self) -> list[str]:
        """The complete shards (those whose json exists), in a stable order."""
        return sorted(p.name[: -len(".json")] for p in self.folder.glob("*.json") if p.name != "identity.json")

    def _read_shard_meta(self, shard: str) -> dict:
        path = self.folder / f"{shard}.json"
        try:
            meta = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"Teacher-target shard {path} is unreadable ({error}); delete {self.folder / shard}.* "
                             "and it will be recomputed.") from error
        if meta.get("identity") != self.identity_hash:
            raise ValueError(f"Teacher-target shard {path} was written by another teacher (identity "
                             f"{meta.get('identity')}, this store {self.identity_hash}); delete "
                             f"{self.folder / shard}.*.")
        return meta

    def _verified_array(self, shard: str, kind: str, meta: dict) -> np.ndarray:
        path = self.folder / f"{shard}.{kind}.npy"
        if not path.is_file():
            raise ValueError(f"Teacher-target shard file {path} is missing; delete {self.folder / shard}.* and it "
                             "will be recomputed.")
        actual = _sha256(path)
        if actual != meta[f"{kind}_sha256"]:
            raise ValueError(f"Teacher-target shard file {path} is corrupt (sha256 {actual[:12]}..., recorded "
                             f"{meta[f'{kind}_sha256'][:12]}...); delete {self.folder / shard}.* and it will be "
                             "recomputed.")
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as error:
            raise ValueError(f"Teacher-target shard file {path} cannot be read ({error}).") from error
        expected = (meta["rows"],) if kind == "keys" else (meta["rows"], self.dim)
        if array.shape != expected:
            raise ValueError(f"Teacher-target shard file {path} has shape {array.shape}, expected {expected}.")
        return array

    def index(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
        """(sorted keys, shard number of each, row in that shard, the shards' vector arrays), verified once."""
        if self._index is None:
            keys, shard_of, row_of, vectors = [], [], [], []
            for number, shard in enumerate(self.shard_ids()):
                meta = self._read_shard_meta(shard)
                keys.append(np.asarray(self._verified_array(shard, "keys", meta)))
                vectors.append(self._verified_array(shard, "vectors", meta))
                shard_of.append(np.full(meta["rows"], number, dtype=np.int32))
                row_of.append(np.arange(meta["rows"], dtype=np.int64))
            if keys:
                all_keys = np.concatenate(keys)
                order = np.argsort(all_keys, kind="stable")
                self._index = (all_keys[order], np.concatenate(shard_of)[order], np.concatenate(row_of)[order], vectors)
            else:
                self._index = (np.empty(0, np.uint64), np.empty(0, np.int32), np.empty(0, np.int64), [])
        return self._index

    def __len__(self) -> int:
        return len(self.index()[0])

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found mask, positions into the index) for `keys`."""
        sorted_keys = self.index()[0]
        positions = np.searchsorted(sorted_keys, keys)
        positions = np.minimum(positions, max(len(sorted_keys) - 1, 0))
        found = sorted_keys[positions] == keys if len(sorted_keys) else np.zeros(len(keys), dtype=bool)
        return found, positions

    def gather(self, keys: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Copy the stored vectors of `keys` into `out` (len(keys), dim); returns the mask of keys found."""
        _, shard_of, row_of, vectors = self.index()
        found, positions = self.lookup(keys)
        for number, array in enumerate(vectors):
            selected = np.flatnonzero(found & (shard_of[positions] == number))
            if len(selected):
                rows = row_of[positions[selected]]
                order = np.argsort(rows)  # sorted reads from the memory map
                out[selected[order]] = array[rows[order]]
        return found

    # ---------------------------------------------------------------------------------------------- writing

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> str:
        """Store one shard atomically; returns its id."""
        if vectors.shape != (len(keys), self.dim):
            raise ValueError(f"Shard vectors of shape {vectors.shape} for {len(keys)} keys of a {self.dim}-d teacher.")
        if not np.isfinite(vectors).all():
            bad = int((~np.isfinite(vectors)).any(1).sum())
            raise FloatingPointError(f"The teacher produced non-finite vectors for {bad} "
                                     f"texts; refusing to store them in {self.folder}.")
        keys = np.ascontiguousarray(keys, dtype=np.uint64)
        shard = hashlib.sha256(keys.tobytes()).hexdigest()[:20]
        meta = {"rows": len(keys), "dim": self.dim, "identity": self.identity_hash}
        for kind, array in (("keys", keys), ("vectors", vectors.astype(np.float16))):
            final = self.folder / f"{shard}.{kind}.npy"
            partial = final.with_name(final.name + ".partial")
            with open(partial, "wb") as handle:
                np.save(handle, array, allow_pickle=False)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, final)
            meta[f"{kind}_sha256"] = _sha256(final)
        _write_atomically(self.folder / f"{shard}.json", json.dumps(meta) + "\n")
        self._index = None
        return shard


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


class TeacherTargets:
    """One teacher's targets for the rows of a run: `vectors[row]` (float16) where `has[row]` is True."""

    def __init__(self, spec: TeacherSpec, vectors: np.ndarray, has: np.ndarray, store: TargetStore, describe: dict,
                 computed: int = 0):
        self.spec, self.vectors, self.has, self.store = spec, vectors, has, store
        self.dim = vectors.shape[1]
        self.description = describe
        self.computed = computed  # texts this run encoded (the others came from the store)

    def rows(self, row_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(float32 vectors, mask) of `row_ids`; rows without a target are zeros with mask False."""
        return self.vectors[row_ids].astype(np.float32), self.has[row_ids]


def teacher_targets(
    spec: TeacherSpec,
    rows: np.ndarray,
    n_rows: int,
    texts_of: Callable[[np.ndarray], list[str]],
    cache_root: str | os.PathLike,
    device="cpu",
    process_index: int = 0,
    num_processes: int = 1,
    barrier: Callable[[], None] = lambda: None,
    chunk_rows: int = 4096,
    progress: bool = True,
) -> TeacherTargets:
    """The teacher's targets for `rows` (of a corpus of `n_rows`), read from the store or computed now.

    Rows missing from the store are encoded in `rows` order, in chunks of `chunk_rows`; under a multi-process
    launch chunk c goes to process c % num_processes. `texts_of(row_ids)` gives the texts the teacher reads.
    """
    teacher = Teacher(spec, device=device)
    store = TargetStore.for_teacher(cache_root, teacher)
    texts = texts_of(rows)
    keys = text_keys(texts)
    barrier()  # every process sees the same shards before deciding what is missing
    found, _ = store.lookup(keys)
    missing = np.flatnonzero(~found)
    if len(missing):
        chunks = [missing[i : i + chunk_rows] for i in range(0, len(missing), chunk_rows)]
        mine = chunks[process_index::num_processes]
        logger.info("Teacher %s: %d of %d texts already in %s; encoding %d.", spec.name, int(found.sum()), len(rows),
                    store.folder, len(missing))
        started = time.perf_counter()
        bar = tqdm(total=sum(len(c) for c in mine), desc=f"Teacher targets ({Path(spec.name).name})", unit="text",
                   disable=not progress or process_index != 0, smoothing=0.05)
        for chunk in mine:
            vectors = teacher.encode([texts[i] for i in chunk])
            store.add(keys[chunk], vectors)
            bar.update(len(chunk))
        bar.close()
        logger.info("Teacher %s: %d texts in %.0f s.", spec.name, sum(len(c) for c in mine),
                    time.perf_counter() - started)
        barrier()
        store = TargetStore.for_teacher(cache_root, teacher)  # re-read: the other processes' shards too
    vectors = np.zeros((n_rows, teacher.dim), dtype=np.float16)
    has = np.zeros(n_rows, dtype=bool)
    gathered = np.empty((len(rows), teacher.dim), dtype=np.float16)
    found = store.gather(keys, gathered)
    if not found.all():
        raise RuntimeError(f"Teacher targets for {int((~found).sum())} texts are missing from {store.folder} after "
                           "the teacher pass; was a process killed? Run again to compute them.")
    vectors[rows] = gathered
    has[rows] = True
    return TeacherTargets(spec, vectors, has, store, {**teacher.describe(), "store": str(store.folder)},
                          computed=int(len(missing)))
