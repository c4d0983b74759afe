"""The distillation corpus: load text sources with `datasets`, clean, tokenise (cached), split off a held-out slice.

Sources are local files (.txt one text per line, .tsv/.csv with a text column, .jsonl/.json, .parquet; .gz
accepted) or Hub dataset ids (`hub:owner/name` or `hub:owner/name:split`), several mixed. Relative paths
are read under the data root (`../shared/data`, see `train.data_paths`). Everything stays in Arrow files that
`datasets` memory-maps, so a corpus larger than RAM works; tokenisation is a batched, cached `map`.

What a file may hold, and what happens otherwise (the table is docs/reliability.md):

- Text files are UTF-8. A UTF-16/UTF-32 file (a byte-order mark, or NUL bytes in most lines) is refused with
  an error naming the file; single undecodable bytes turn the text into one that is counted and skipped
  (`CorpusStats.skipped_non_utf8`), in every format. A UTF-8 byte-order mark is ignored.
- Inside texts, control characters (NUL included) and invisible format characters (zero-width space and
  joiners, byte-order marks, bidi marks, soft hyphens...) are removed; `\\r`, vertical tab, form feed and the
  other whitespace controls become a space. A text left blank is counted and skipped (`skipped_blank`).
- A .txt line ends at `\\n` or `\\r\\n` only; a lone `\\r` is a space inside the text.
- .tsv/.csv: the header names the columns; every row must have as many fields as the header (an error names
  the file and the line); a file with a header and no rows is an error. .tsv fields are not quoted.
- .jsonl (and .json: JSON Lines, or one JSON array of objects): the text field must be a string; `null` or a
  missing field is a blank text (counted, skipped); a number, boolean, list or object is an error naming the
  file, the line and the field, as is a line that is not JSON.
- A .gz file must be complete gzip data; a mislabelled or truncated one is an error naming the file.
"""

import csv
import gzip
import hashlib
import json
import logging
import re
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from transformers import PreTrainedTokenizerBase

from train.data_paths import data_root

logger = logging.getLogger(__name__)

REPLACEMENT_CHARACTER = "\ufffd"  # what undecodable bytes become (encoding_errors="replace")

# Removed from texts: C0/C1 control characters that are not whitespace (NUL included) and the invisible
# format characters of Unicode category Cf (soft hyphen, zero-width space / non-joiner / joiner, LRM/RLM,
# bidi embeddings and isolates, word joiner and invisible operators, BOM, interlinear annotation, Egyptian
# format controls, shorthand format controls, musical beams, tags). The visible Cf characters (Arabic number
# signs U+0600-0605 and the like) stay. BERT-style teachers drop these characters anyway.
_INVISIBLE = (
    "\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f"
    "\xad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
)
_SPACE_LIKE = "\r\x0b\x0c\x1c-\x1f\x85"  # control characters that separate words: each becomes a space
_ODD_CHARACTER = re.compile(f"[{_INVISIBLE}{_SPACE_LIKE}]")
_INVISIBLE_RUN = re.compile(f"[{_INVISIBLE}]+")
_SPACE_LIKE_CHARACTER = re.compile(f"[{_SPACE_LIKE}]")
_SURROGATE = re.compile("[\ud800-\udfff]")

_BYTE_ORDER_MARKS = (  # longest first: the UTF-32-LE mark starts with the UTF-16-LE one
    (b"\xff\xfe\x00\x00", "UTF-32-LE"), (b"\x00\x00\xfe\xff", "UTF-32-BE"),
    (b"\xff\xfe", "UTF-16-LE"), (b"\xfe\xff", "UTF-16-BE"),
)
_GZIP_MAGIC = b"\x1f\x8b"


class CorpusFileError(ValueError):
    """A corpus file that cannot be read as it should; the message names the file (and the line)."""


@dataclass
class CorpusStats:
    """Counts of what was read and what was skipped, for the log and training_info.json."""

    read: int = 0
    kept: int = 0
    skipped_blank: int = 0
    skipped_non_utf8: int = 0
    truncated: int = 0
    cleaned: int = 0  # texts that had control / invisible characters removed (or a `\r` made a space)
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


def clean_text(text: str) -> str:
    """A text without control or invisible format characters, `\\r\\n` as `\\n`, a lone `\\r` as a space, stripped."""
    if text.isprintable() or _ODD_CHARACTER.search(text) is None:  # isprintable(): a fast check, false for all of them
        return text.strip()
    text = _INVISIBLE_RUN.sub("", text.replace("\r\n", "\n"))
    return _SPACE_LIKE_CHARACTER.sub(" ", text).strip()


def _open_binary(path: str):
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def _gzip_problem(error: BaseException) -> BaseException | None:
    """The gzip / zlib error behind `error` (datasets wraps what a reader raises), if any."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, (EOFError, gzip.BadGzipFile, zlib.error)):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _corpus_error(error: BaseException) -> CorpusFileError | None:
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, CorpusFileError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _not_gzip(path: str, problem: BaseException) -> CorpusFileError:
    return CorpusFileError(
        f"Corpus file {path} is not complete gzip data ({type(problem).__name__}: {problem}); it is probably "
        "truncated (an interrupted download or copy) or corrupt: re-create it, and check it with `gzip -t`."
    )


@contextmanager
def _reading(path: str):
    """Errors while reading `path` as a `CorpusFileError` that names it, not a zlib/EOFError traceback from
    inside `datasets`."""
    try:
        yield
    except CorpusFileError:
        raise
    except Exception as error:
        ours = _corpus_error(error)
        if ours is not None:
            raise ours from None
        problem = _gzip_problem(error)
        if problem is not None or (path.endswith(".gz") and type(error) is OSError):  # pyarrow's own gzip reader
            raise _not_gzip(path, problem or error) from error
        if isinstance(error, datasets.exceptions.DatasetGenerationError) and error.__cause__ is not None:
            cause = error.__cause__
            raise CorpusFileError(f"Cannot read corpus file {path}: {type(cause).__name__}: {cause}") from error
        raise


def _not_utf8(head: bytes) -> str | None:
    """Why the first bytes of a file show it is UTF-16/32 rather than UTF-8, or None."""
    for mark, name in _BYTE_ORDER_MARKS:
        if head.startswith(mark):
            return f"it starts with a {name} byte-order mark"
    lines = [line for line in head.split(b"\n") if line.strip(b"\r\x00")]
    with_nul = sum(b"\x00" in line for line in lines)
    if lines and 2 * with_nul > len(lines):
        return (f"{with_nul} of its first {len(lines)} lines hold NUL bytes, as UTF-16 text without a byte-order "
                "mark does")
    return None


def _check_file(path: str, kind: str) -> None:
    """Refuse, naming the file, a .gz that is not gzip data and a text file that is UTF-16/32, not UTF-8."""
    if path.endswith(".gz"):
        with open(path, "rb") as handle:
            magic = handle.read(2)
        if magic != _GZIP_MAGIC:
            raise CorpusFileError(
                f"Corpus file {path} ends in .gz but is not gzip data (it starts with {magic!r}): rename it without "
                ".gz if it is plain text, or compress it with gzip."
            )
    if kind == ".parquet":
        return
    with _reading(path), _open_binary(path) as handle:
        head = handle.read(1 << 16)
    problem = _not_utf8(head)
    if problem:
        raise CorpusFileError(
            f"Corpus file {path} is not UTF-8: {problem}. Re-encode it as UTF-8 first, e.g. "
            "`iconv -f UTF-16 -t UTF-8 old.txt > new.txt` (or in Python: read it with encoding='utf-16' and write "
            "it with encoding='utf-8')."
        )


def _read_lines(path: str, size: int, mtime: float):
    """One row per line, ended by `\\n` or `\\r\\n` only (a lone `\\r` stays in the text, where cleaning makes it a
    space); undecodable bytes become U+FFFD (then counted and skipped by `load_corpus`)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace", newline="\n") as handle:
        for line in handle:
            yield {"text": line.removesuffix("\n").removesuffix("\r")}


def _json_kind(value) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "a string" if isinstance(value, str) else "null"


def _json_text(record, field_name: str, where: str) -> tuple[str | None, bool]:
    """(the text of one JSON record, whether it has the field); null or a missing field is a blank text."""
    if not isinstance(record, dict):
        raise CorpusFileError(f"{where} is {_json_kind(record)}, not a JSON object with a {field_name!r} field.")
    if field_name not in record:
        return None, False
    value = record[field_name]
    if value is None:
        return None, True
    if not isinstance(value, str):
        raise CorpusFileError(
            f"{where}: field {field_name!r} holds {_json_kind(value)} ({json.dumps(value)[:60]}), not a string. "
            "Corpus texts must be JSON strings: quote them in the file, or pick another field with text_column."
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate escape such as "\ud800": undecodable, counted and skipped
        value = _SURROGATE.sub(REPLACEMENT_CHARACTER, value)
    return value, True


def _json_records(path: str) -> Iterator[tuple[object, str]]:
    """(record, where it is) for JSON Lines (streamed), or for a file holding one JSON array of objects."""
    with _open_binary(path) as handle:
        first = handle.read(1 << 16).lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if first == b"[":
        with _open_binary(path) as handle:
            text = handle.read().decode("utf-8", errors="replace").removeprefix("\ufeff")
        try:
            records = json.loads(text, strict=False)
        except json.JSONDecodeError as error:
            raise CorpusFileError(f"{path} is not valid JSON: {error.msg} at line {error.lineno}, column "
                                  f"{error.colno}.") from None
        for number, record in enumerate(records, start=1):
            yield record, f"{path}, record {number} of the JSON array"
        return
    with _open_binary(path) as handle:
        for number, raw in enumerate(handle, start=1):  # binary lines end at b"\n" only
            if number == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8", errors="replace"), strict=False)
            except json.JSONDecodeError as error:
                raise CorpusFileError(
                    f"{path}, line {number} is not valid JSON ({error.msg} at column {error.colno}): {raw[:80]!r}. "
                    "A .jsonl file holds one JSON object per line."
                ) from None
            yield record, f"{path}, line {number}"


def _read_json(path: str, size: int, mtime: float, field_name: str):
    """The `field_name` text of every record of a .jsonl / .json file (see `_json_records`); undecodable bytes
    become U+FFFD, counted and skipped by `load_corpus` as for a .txt file."""
    records, found, first_fields = 0, False, None
    for record, where in _json_records(path):
        text, has_field = _json_text(record, field_name, where)
        records += 1
        found = found or has_field
        if first_fields is None:
            first_fields = list(record)
        yield {"text": text}
    if not records:
        raise CorpusFileError(f"Corpus file {path} holds no JSON records.")
    if not found:
        raise CorpusFileError(f"Corpus source {path} has no column {field_name!r}; columns: {first_fields}.")


def _table_options(kind: str) -> tuple[str, int]:
    return ("\t", csv.QUOTE_NONE) if kind == ".tsv" else (",", csv.QUOTE_MINIMAL)


def _ragged_row(path: str, kind: str, n_fields: int) -> tuple[int, int | str] | None:
    """(line number, number of fields) of the first row whose field count is not the header's, (line number,
    the csv module's complaint) where it cannot parse the file, or None."""
    sep, quoting = _table_options(kind)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig", errors="replace", newline="") as handle:
        reader = csv.reader(handle, delimiter=sep, quoting=quoting)
        start = 1
        try:
            next(reader, None)
            start = reader.line_num + 1
            for row in reader:
                if row and len(row) != n_fields:
                    return start, len(row)
                start = reader.line_num + 1
        except csv.Error as error:  # e.g. an unclosed quote that runs past the field size limit
            return start, str(error)
    return None


def _check_rows(path: str, kind: str, header: list[str]) -> None:
    """Every row has one field per header column, and there is at least one row (a fast pass with pyarrow)."""
    sep, quoting = _table_options(kind)
    names = [f"column_{i}" for i in range(len(header))]
    rows, problem = 0, None
    try:
        # pyarrow reads the file itself (gzip included): given a Python file object, a parse error in its read-ahead
        # thread sometimes aborted the interpreter at exit ("terminate called without an active exception").
        with _reading(path), pa_csv.open_csv(
            path,
            read_options=pa_csv.ReadOptions(column_names=names, skip_rows=1, block_size=1 << 22),
            parse_options=pa_csv.ParseOptions(delimiter=sep, quote_char=False if quoting == csv.QUOTE_NONE else '"',
                                              newlines_in_values=quoting != csv.QUOTE_NONE),
            convert_options=pa_csv.ConvertOptions(column_types={name: pa.binary() for name in names}),
        ) as reader:
            for batch in reader:
                rows += batch.num_rows
    except pa.ArrowInvalid as error:
        problem = str(error)
    if problem is not None:
        ragged = _ragged_row(path, kind, len(header))
        if ragged is None:
            raise CorpusFileError(f"Cannot read corpus file {path} as {kind}: {problem}")
        line, found = ragged
        if isinstance(found, str):
            raise CorpusFileError(f"Cannot read corpus file {path} as {kind} from line {line}: {found} ({problem}).")
        hint = ("a .tsv field may not contain a tab (fields are not quoted)" if kind == ".tsv"
                else "quote fields that contain commas or line breaks")
        raise CorpusFileError(
            f"Corpus file {path}, line {line}: {found} field{'s' if found != 1 else ''} where the header has "
            f"{len(header)} ({', '.join(header)}); every row needs one field per column ({hint})."
        )
    if rows == 0:
        raise CorpusFileError(f"Corpus file {path} holds a header ({', '.join(header)}) but no rows.")


def _load_table(source: str, kind: str, text_column: str, cache_dir: str | None) -> datasets.Dataset:
    """A .tsv / .csv file with `datasets`' csv builder; its rows are checked once, when the cache is built."""
    sep, quoting = _table_options(kind)
    with _reading(source), (gzip.open if source.endswith(".gz") else open)(
            source, "rt", encoding="utf-8-sig", errors="replace") as handle:
        header = next(csv.reader([handle.readline()], delimiter=sep, quoting=quoting), [])
    if not any(name.strip() for name in header):
        raise CorpusFileError(f"Corpus file {source} starts with a blank line; a {kind} file's first line is the "
                              "header naming its columns.")
    if text_column not in header:  # before reading the rows: the same error `_load_one` gives after
        raise ValueError(f"Corpus source {source} has no column {text_column!r}; columns: {header}.")
    # Every column read as text (a text "2017" stays a string); QUOTE_NONE for TSV because corpus texts may
    # start with a quote character that is part of the text.
    builder = datasets.load_dataset_builder(
        "csv", data_files=source, cache_dir=cache_dir, sep=sep, quoting=quoting, encoding="utf-8",
        encoding_errors="replace", keep_default_na=False,
        features=datasets.Features({c: datasets.Value("string") for c in header}),
    )
    if not (Path(builder.cache_dir) / datasets.config.DATASET_INFO_FILENAME).exists():
        _check_rows(source, kind, header)  # a cached table passed this check when it was built
    with _reading(source):
        builder.download_and_prepare()
        return builder.as_dataset(split="train")


def _load_one(source: str, text_column: str, cache_dir: str | None) -> datasets.Dataset:
    if source.startswith("hub:"):
        name, _, split = source[4:].partition(":")
        dataset = datasets.load_dataset(name, split=split or "train", cache_dir=cache_dir)
    else:
        suffixes = [s for s in Path(source).suffixes if s != ".gz"]
        kind = suffixes[-1] if suffixes else ".txt"
        if kind not in (".tsv", ".csv", ".jsonl", ".json", ".parquet", ".txt"):
            raise ValueError(f"Unsupported corpus file type {kind!r} for {source}; use .txt, .tsv, .csv, .jsonl, .json "
                             "or .parquet.")
        _check_file(source, kind)
        # The file's size and mtime are arguments of our own readers so that an edited file gets a new cache entry.
        stat = Path(source).stat()
        if kind in (".tsv", ".csv"):
            dataset = _load_table(source, kind, text_column, cache_dir)
        elif kind in (".jsonl", ".json"):
            # Our own reader: line numbers for errors, a counted skip for undecodable bytes, strings only.
            with _reading(source):
                dataset = datasets.Dataset.from_generator(
                    _read_json, gen_kwargs={"path": source, "size": stat.st_size, "mtime": stat.st_mtime,
                                            "field_name": text_column},
                    cache_dir=cache_dir, features=datasets.Features({"text": datasets.Value("string")}),
                )
            text_column = "text"
        elif kind == ".parquet":
            dataset = datasets.load_dataset("parquet", data_files=source, split="train", cache_dir=cache_dir)
        else:
            # Our own reader: datasets' "text" builder ignores encoding_errors for .gz files and splits at a lone \r.
            with _reading(source):
                dataset = datasets.Dataset.from_generator(
                    _read_lines, gen_kwargs={"path": source, "size": stat.st_size, "mtime": stat.st_mtime},
                    cache_dir=cache_dir, features=datasets.Features({"text": datasets.Value("string")}),
                )
            text_column = "text"
    if text_column not in dataset.column_names:
        raise ValueError(f"Corpus source {source} has no column {text_column!r}; columns: {dataset.column_names}.")
    if len(dataset) == 0:
        raise CorpusFileError(f"Corpus source {source} holds no rows.")
    dataset = dataset.select_columns([text_column])
    return dataset.rename_column(text_column, "text") if text_column != "text" else dataset


def load_corpus(
    sources: list[str], text_column: str = "text", max_sentences: int | None = None, seed: int = 0,
    cache_dir: str | None = None,
) -> tuple[datasets.Dataset, CorpusStats]:
    """All sources concatenated as one `text` column plus a stable `row_id`, cleaned, optionally subsampled.

    Cleaning (`clean_text`) removes control and invisible format characters and strips each text; blank and
    undecodable texts are counted in the returned `CorpusStats` and skipped. A file that cannot be read as its
    type promises raises `CorpusFileError` (a `ValueError`) naming the file, and the line where there is one.
    """
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
        raw = ["" if t is None else t if isinstance(t, str) else str(t) for t in batch["text"]]
        texts = [clean_text(t) for t in raw]
        return {"text": texts, "_blank": [not t for t in texts], "_bad": [REPLACEMENT_CHARACTER in t for t in texts],
                "_cleaned": [t != r and t != r.strip() for t, r in zip(texts, raw)]}

    corpus = corpus.map(classify, batched=True, desc="Checking texts")
    blank, bad = column_array(corpus, "_blank"), column_array(corpus, "_bad")
    stats.skipped_blank = int(blank.sum())
    stats.skipped_non_utf8 = int((bad & ~blank).sum())
    stats.cleaned = int(pc.sum(corpus.data.column("_cleaned")).as_py() or 0)
    corpus = corpus.filter(lambda b: [not (x or y) for x, y in zip(b["_blank"], b["_bad"])], batched=True,
                           desc="Dropping blank / undecodable texts").remove_columns(["_blank", "_bad", "_cleaned"])
    if len(corpus) == 0:
        raise ValueError(f"The corpus {sources} holds no usable text (blank lines: {stats.skipped_blank}, "
                         f"undecodable: {stats.skipped_non_utf8}).")
    if max_sentences is not None and max_sentences < len(corpus):
        corpus = corpus.shuffle(seed=seed).select(range(max_sentences)).flatten_indices()
    corpus = corpus.add_column("row_id", np.arange(len(corpus)))  # an array: hashing a 1M-item list takes seconds
    stats.kept = len(corpus)
    if stats.skipped_blank or stats.skipped_non_utf8:
        logger.warning("Corpus: skipped %d blank and %d undecodable (non-UTF-8) texts.",
                       stats.skipped_blank, stats.skipped_non_utf8)
    if stats.cleaned:
        logger.info("Corpus: removed control / invisible characters from %d texts.", stats.cleaned)
    return corpus, stats


def column_array(dataset: datasets.Dataset, column: str) -> np.ndarray:
    """A column as a numpy array, read from Arrow in one go (iterating a 1M-row column in Python takes a minute)."""
    return dataset.select_columns([column]).with_format("numpy")[:][column]


def text_column(dataset: datasets.Dataset, column: str = "text") -> list[str]:
    """A string column as a Python list, read from Arrow in one go (datasets 5's lazy column reads row by row)."""
    return dataset.select_columns([column]).with_format("arrow")[:][column].to_pylist()


def tokenize_corpus(corpus: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int) -> datasets.Dataset:
    """Add `input_ids` (truncated to `max_length`), `length` and `truncated`; batched and cached by `datasets`."""

    def tokenize(batch):
        ids = tokenizer(batch["text"], add_special_tokens=False, truncation=True,
                        max_length=max_length + 1)["input_ids"]
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


def split_rows(n_rows: int, heldout_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(held-out rows, training rows in a seeded random order): one permutation of the corpus rows.

    The held-out rows come first and never enter training. A teacher that covers only part of the corpus
    (`max_texts`) covers a prefix of the training order, so its texts are a random sample, the same for every
    run with this corpus and seed, and a longer teacher pass extends a shorter one.
    """
    if heldout_size <= 0:
        raise ValueError("heldout_sentences must be positive: the held-out cosine is how training is judged.")
    if heldout_size >= n_rows:
        raise ValueError(f"heldout_sentences={heldout_size} leaves no training data from {n_rows} texts.")
    order = np.random.default_rng(seed).permutation(n_rows)
    return np.sort(order[:heldout_size]), order[heldout_size:]


def teacher_inputs(tokenized: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, rows: np.ndarray) -> list[str]:
    """What the teacher reads for `rows`: the text the student sees, decoded back from its tokens when truncated."""
    every_text = text_column(tokenized)
    texts = [every_text[row] for row in rows]
    truncated = column_array(tokenized, "truncated")[rows]
    cut = np.flatnonzero(truncated)
    if len(cut):
        ids = tokenized.select_columns(["input_ids"]).select(rows[cut]).with_format("arrow")[:]["input_ids"].to_pylist()
        for position, row_ids in zip(cut, ids):
            texts[position] = tokenizer.decode(row_ids)
    return texts
