"""The distillation corpus: load text sources with `datasets`, clean, tokenise (cached), split off a held-out slice.

Sources are local files (.txt one text per line, .tsv/.csv with a text column, .jsonl/.json, .parquet; .gz
accepted) or Hub dataset ids (`hub:owner/name` or `hub:owner/name:split`), several mixed. Relative paths
are read under the data root (`../shared/data`, see `train.paths`). Everything stays in Arrow files that
`datasets` memory-maps, so a corpus larger than RAM works; tokenisation is a batched, cached `map`.
"""

import csv
import hashlib
import gzip
import logging
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
from transformers import PreTrainedTokenizerBase

from .paths import data_root

logger = logging.getLogger(__name__)

REPLACEMENT_CHARACTER = "\ufffd"  # what undecodable bytes become (encoding_errors="replace")


@dataclass
class CorpusStats:
    """Counts of what was read and what was skipped, for the log and training_info.json."""

    read: int = 0
    kept: int = 0
    skipped_blank: int = 0
    skipped_non_utf8: int = 0
    truncated: int = 0
    per_source: dict = field(default_factory=dict)


def resolve_source(source: str) -> str:
    """An absolute path for a local source (relative ones live under the data root); Hub ids unchanged."""
    if source.startswith("hub:"):
        return source
    path = Path(source).expanduser()
    if not path.is_absolute():
        path = data_root() / path
    if not path.is_file():
        raise FileNotFoundError(f"Corpus file {path} does not exist (relative paths are read under {data_root()}).")
    if path.stat().st_size == 0:
        raise ValueError(f"Corpus file {path} is empty.")
    return str(path)


def _read_lines(path: str, size: int, mtime: float):
    """One row per line; undecodable bytes become U+FFFD (then counted and skipped by `load_corpus`)."""
    with (gzip.open if path.endswith(".gz") else open)(path, "rt", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            yield {"text": line.rstrip("\n")}


def _load_one(source: str, text_column: str, cache_dir: str | None) -> datasets.Dataset:
    if source.startswith("hub:"):
        name, _, split = source[4:].partition(":")
        dataset = datasets.load_dataset(name, split=split or "train", cache_dir=cache_dir)
    else:
        suffixes = [s for s in Path(source).suffixes if s != ".gz"]
        kind = suffixes[-1] if suffixes else ".txt"
        if kind in (".tsv", ".csv"):
            sep = "\t" if kind == ".tsv" else ","
            with (gzip.open if source.endswith(".gz") else open)(source, "rt", errors="replace") as handle:
                header = next(csv.reader([handle.readline()], delimiter=sep))
            # Every column read as text (a text "2017" stays a string); QUOTE_NONE for TSV because corpus
            # texts may start with a quote character that is part of the text.
            dataset = datasets.load_dataset(
                "csv", data_files=source, split="train", cache_dir=cache_dir, sep=sep,
                quoting=csv.QUOTE_NONE if kind == ".tsv" else csv.QUOTE_MINIMAL, encoding_errors="replace",
                keep_default_na=False, features=datasets.Features({c: datasets.Value("string") for c in header}),
            )
        elif kind in (".jsonl", ".json"):
            dataset = datasets.load_dataset("json", data_files=source, split="train", cache_dir=cache_dir)
        elif kind == ".parquet":
            dataset = datasets.load_dataset("parquet", data_files=source, split="train", cache_dir=cache_dir)
        elif kind == ".txt":
            # Our own reader: datasets' "text" builder ignores encoding_errors for .gz files. The file's size
            # and mtime are arguments so that an edited file gets a new cache entry.
            stat = Path(source).stat()
            dataset = datasets.Dataset.from_generator(
                _read_lines, gen_kwargs={"path": source, "size": stat.st_size, "mtime": stat.st_mtime},
                cache_dir=cache_dir, features=datasets.Features({"text": datasets.Value("string")}),
            )
            text_column = "text"
        else:
            raise ValueError(f"Unsupported corpus file type {kind!r} for {source}; use .txt, .tsv, .csv, .jsonl or .parquet.")
    if text_column not in dataset.column_names:
        raise ValueError(f"Corpus source {source} has no column {text_column!r}; columns: {dataset.column_names}.")
    return dataset.select_columns([text_column]).rename_column(text_column, "text") if text_column != "text" else dataset.select_columns(["text"])


def load_corpus(
    sources: list[str], text_column: str = "text", max_sentences: int | None = None, seed: int = 0,
    cache_dir: str | None = None,
) -> tuple[datasets.Dataset, CorpusStats]:
    """All sources concatenated as one `text` column plus a stable `row_id`, cleaned, optionally subsampled."""
    if not sources:
        raise ValueError("No corpus sources given.")
    stats = CorpusStats()
    parts = []
    for source in sources:
        resolved = resolve_source(source)
        part = _load_one(resolved, text_column, cache_dir)
        stats.read += len(part)
        stats.per_source[source] = len(part)
        parts.append(part)
    corpus = datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]

    def classify(batch):
        texts = [(t or "").strip() if isinstance(t, str) or t is None else str(t).strip() for t in batch["text"]]
        return {"text": texts, "_blank": [not t for t in texts], "_bad": [REPLACEMENT_CHARACTER in t for t in texts]}

    corpus = corpus.map(classify, batched=True, desc="Checking texts")
    blank, bad = column_array(corpus, "_blank"), column_array(corpus, "_bad")
    stats.skipped_blank = int(blank.sum())
    stats.skipped_non_utf8 = int((bad & ~blank).sum())
    corpus = corpus.filter(lambda b: [not (x or y) for x, y in zip(b["_blank"], b["_bad"])], batched=True,
                           desc="Dropping blank / undecodable texts").remove_columns(["_blank", "_bad"])
    if len(corpus) == 0:
        raise ValueError(f"The corpus {sources} holds no usable text (blank lines: {stats.skipped_blank}, "
                         f"undecodable: {stats.skipped_non_utf8}).")
    if max_sentences is not None and max_sentences < len(corpus):
        corpus = corpus.shuffle(seed=seed).select(range(max_sentences)).flatten_indices()
    corpus = corpus.add_column("row_id", list(range(len(corpus))))
    stats.kept = len(corpus)
    if stats.skipped_blank or stats.skipped_non_utf8:
        logger.warning("Corpus: skipped %d blank and %d undecodable (non-UTF-8) texts.",
                       stats.skipped_blank, stats.skipped_non_utf8)
    return corpus, stats


def column_array(dataset: datasets.Dataset, column: str) -> np.ndarray:
    """A column as a numpy array, read from Arrow in one go (iterating a 1M-row column in Python takes a minute)."""
    return dataset.select_columns([column]).with_format("numpy")[:][column]


def tokenize_corpus(corpus: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int) -> datasets.Dataset:
    """Add `input_ids` (truncated to `max_length`), `length` and `truncated`; batched and cached by `datasets`."""

    def tokenize(batch):
        ids = tokenizer(batch["text"], add_special_tokens=False, truncation=True, max_length=max_length + 1)["input_ids"]
        return {
            "input_ids": [row[:max_length] for row in ids],
            "length": [min(len(row), max_length) for row in ids],
            "truncated": [len(row) > max_length for row in ids],
        }

    # An explicit fingerprint: datasets cannot hash the tokenizer inside `tokenize` reliably, and a random
    # fingerprint would re-tokenise (and re-encode teacher targets) on every run.
    vocabulary = hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()).hexdigest()
    fingerprint = hashlib.sha256(f"{corpus._fingerprint}-{vocabulary}-{max_length}".encode()).hexdigest()[:16]
    tokenized = corpus.map(tokenize, batched=True, batch_size=2000, desc="Tokenising", new_fingerprint=fingerprint)
    empty = tokenized.filter(lambda b: [n == 0 for n in b["length"]], batched=True)
    if len(empty):
        raise ValueError(f"{len(empty)} texts tokenised to nothing, e.g. {empty[0]['text']!r}.")
    return tokenized


def split_heldout(tokenized: datasets.Dataset, heldout_size: int, seed: int) -> tuple[datasets.Dataset, datasets.Dataset]:
    """(train, held-out): a seeded random held-out slice that never enters training."""
    if heldout_size <= 0:
        raise ValueError("heldout_sentences must be positive: the held-out cosine is how training is judged.")
    if heldout_size >= len(tokenized):
        raise ValueError(f"heldout_sentences={heldout_size} leaves no training data from {len(tokenized)} texts.")
    split = tokenized.train_test_split(test_size=heldout_size, seed=seed, shuffle=True)
    return split["train"], split["test"]
