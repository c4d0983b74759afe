"""The evaluation task registry, and loading + validation of task data.

A task is one `TaskSpec` entry: where its files are (or which `datasets.load_dataset` call gives it), which
columns hold the text and the label, which splits train and test, and its type:

- "classification": a train and a test split, scored with MTEB v1's logistic-regression protocol
  (`train/evaluation/classification_protocol.py`);
- "kfold-classification": one labelled set scored with SentEval's 10-fold cross-validation (MR, CR, SUBJ, MPQA);
- "sts": sentence pairs with a gold similarity, scored by the Spearman correlation of cosine similarities.

Adding a dataset is one entry in `REGISTRY`. A folder holding `train.csv` and `test.csv` with `text,label`
columns is a task too (`resolve_tasks("path/to/folder")`), evaluated with the default protocol.
Files are read from `train.data_paths.data_root()` (`../shared/data` or `$ASTERISK_DATA_DIR`); rows keep their
file order, which the MTEB protocol's seeded undersampling depends on.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from train.data_paths import data_root
from train.evaluation.classification_protocol import MTEBClassificationProtocol

logger = logging.getLogger(__name__)

TASK_TYPES = ("classification", "kfold-classification", "sts")
USER_TASK_FILES = ("train.csv", "test.csv")


@dataclass(frozen=True)
class TaskSpec:
    """One evaluation task.

    Args:
        name: the key in results (`results.json["tasks"][name]`).
        task_type: one of `TASK_TYPES`.
        files: split name -> file (or list of files, concatenated in order), relative to the data folder or
            absolute; `.csv` or `.csv.gz`. Ignored when `hf_dataset` is set.
        hf_dataset: keyword arguments of `datasets.load_dataset` (e.g. `{"path": "csv", "data_files": ...}` or
            a Hub dataset already in the local cache), used instead of `files`.
        text_column / label_column: columns of a classification task.
        train_split / test_split: split names; a "kfold-classification" task uses only `test_split`.
        sentence_columns / score_column: columns of an "sts" task.
        samples_per_label / n_experiments: MTEB task-metadata overrides of the protocol defaults (8 and 10).
        mteb_name: the MTEB v1 task this entry reproduces, if any.
        description: one line for the docs.
    """

    name: str
    task_type: str
    files: dict[str, str | tuple[str, ...]] = field(default_factory=dict)
    hf_dataset: dict | None = None
    text_column: str = "text"
    label_column: str = "label"
    train_split: str = "train"
    test_split: str = "test"
    sentence_columns: tuple[str, str] = ("sentence1", "sentence2")
    score_column: str = "score"
    samples_per_label: int | None = None
    n_experiments: int | None = None
    mteb_name: str | None = None
    description: str = ""

    def __post_init__(self):
        if self.task_type not in TASK_TYPES:
            raise ValueError(f"Task {self.name!r}: task_type must be one of {TASK_TYPES}, got {self.task_type!r}.")
        if not self.files and self.hf_dataset is None:
            raise ValueError(f"Task {self.name!r} names neither files nor hf_dataset.")

    @property
    def splits(self) -> tuple[str, ...]:
        if self.task_type == "classification":
            return (self.train_split, self.test_split)
        return (self.test_split,)


@dataclass
class ClassificationData:
    """Texts and integer labels (0..n_labels-1, in `label_names` order) of a classification task."""

    train_texts: list[str]
    train_labels: np.ndarray
    test_texts: list[str]
    test_labels: np.ndarray
    label_names: list[str]


@dataclass
class KFoldData:
    """One labelled set, scored by cross-validation."""

    texts: list[str]
    labels: np.ndarray
    label_names: list[str]


@dataclass
class STSData:
    """Sentence pairs and their gold similarity scores."""

    sentences1: list[str]
    sentences2: list[str]
    scores: np.ndarray


def _classification(name, folder, train, test, **kwargs) -> TaskSpec:
    files = {"train": f"{folder}/{train}", "test": f"{folder}/{test}"}
    return TaskSpec(name=name, task_type="classification", files=files, **kwargs)


def _senteval(name: str, description: str) -> TaskSpec:
    return TaskSpec(name=name, task_type="kfold-classification", test_split="all",
                    files={"all": f"senteval_mr_cr_subj_mpqa/{name}.csv"}, description=description)


REGISTRY: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in [
        _classification("banking77", "banking77", "train.csv", "test.csv", mteb_name="Banking77Classification",
                        description="77 online-banking intents (PolyAI)"),
        _classification("emotion", "emotion", "train.csv", "test.csv", samples_per_label=16,
                        mteb_name="EmotionClassification", description="6 emotions of English tweets (dair-ai)"),
        _classification("imdb", "imdb", "train.csv.gz", "test.csv.gz", mteb_name="ImdbClassification",
                        description="binary sentiment of long movie reviews (Maas et al. 2011)"),
        _classification("sst2", "sst2", "train.csv", "test.csv",
                        description="binary sentiment of movie-review sentences"),
        _classification("sst5", "sst5", "train.csv", "test.csv",
                        description="5-way sentiment of movie-review sentences"),
        _classification("trec", "trec", "train.csv", "test.csv", description="6 coarse question types"),
        _classification("clinc150", "clinc150", "train.csv", "test.csv",
                        description="150 in-scope intents (out-of-scope rows excluded)"),
        _classification("snips", "snips", "train.csv", "test.csv", description="7 voice-assistant intents"),
        _classification("tweeteval_emotion", "tweeteval/emotion", "train.csv", "test.csv",
                        description="TweetEval emotion (4 labels)"),
        _classification("tweeteval_irony", "tweeteval/irony", "train.csv", "test.csv",
                        description="TweetEval irony (binary)"),
        _classification("tweeteval_offensive", "tweeteval/offensive", "train.csv", "test.csv",
                        description="TweetEval offensive language (binary)"),
        _classification("reuters_r8", "reuters21578", "r8_train.csv.gz", "r8_test.csv",
                        description="Reuters-21578 R8 news topics (ModApte)"),
        _classification("20newsgroups", "20newsgroups", "train.csv.gz", "test.csv.gz",
                        description="20 Usenet groups, bydate split, full posts"),
        _senteval("mr", "movie-review polarity (SentEval MR)"),
        _senteval("cr", "customer-review polarity (SentEval CR)"),
        _senteval("subj", "subjectivity (SentEval SUBJ)"),
        _senteval("mpqa", "opinion polarity of phrases (SentEval MPQA)"),
        TaskSpec(name="stsb", task_type="sts", files={"test": "stsb/test.csv"}, score_column="score",
                 mteb_name="STSBenchmark", description="STS Benchmark test pairs (0-5)"),
        TaskSpec(name="sickr", task_type="sts", files={"test": ("sick/train.csv", "sick/trial.csv", "sick/test.csv")},
                 score_column="relatedness_score", mteb_name="SICK-R",
                 description="SICK relatedness, all 9,927 pairs as in MTEB's SICK-R (1-5)"),
    ]
}


def resolve_tasks(tasks: str | list[str]) -> list[TaskSpec]:
    """`TaskSpec`s for "all", a comma-separated string or a list of registry names and task folders.

    Raises `ValueError` for an unknown name and `FileNotFoundError` for a folder lacking train.csv/test.csv,
    before any work starts.
    """
    names = [t.strip() for t in (tasks.split(",") if isinstance(tasks, str) else tasks) if t and t.strip()]
    if not names:
        raise ValueError("No task given; pass --tasks all or a comma-separated list of tasks.")
    specs: list[TaskSpec] = []
    for name in names:
        if name == "all":
            specs.extend(REGISTRY.values())
        elif name in REGISTRY:
            specs.append(REGISTRY[name])
        elif os.sep in name or name.startswith(".") or Path(name).is_dir():
            specs.append(folder_task(name))
        else:
            raise ValueError(
                f"Unknown task {name!r}. Known tasks: {', '.join(REGISTRY)}; or pass 'all', or a folder holding "
                f"{' and '.join(USER_TASK_FILES)} with text,label columns."
            )
    unique: dict[str, TaskSpec] = {}
    for spec in specs:
        if spec.name in unique and unique[spec.name] != spec:
            raise ValueError(f"Two different tasks are both named {spec.name!r}; rename one of the folders.")
        unique[spec.name] = spec
    return list(unique.values())


def folder_task(path: str | os.PathLike) -> TaskSpec:
    """A classification task from a folder holding `train.csv` and `test.csv` (columns `text,label`)."""
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        raise FileNotFoundError(f"Task folder {path} does not exist.")
    missing = [name for name in USER_TASK_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Task folder {folder} has no {' or '.join(missing)}; a task folder needs train.csv and test.csv "
            "with text,label columns."
        )
    return _classification(folder.name, str(folder), "train.csv", "test.csv", description=f"user task {folder}")


def load_task(spec: TaskSpec, data_dir: str | os.PathLike | None = None) -> ClassificationData | KFoldData | STSData:
    """Read and check a task's data. Errors name the file and the problem (missing file, column, labels)."""
    frames = _read_splits(spec, Path(data_dir) if data_dir is not None else None)
    if spec.task_type == "sts":
        frame, origin = frames[spec.test_split]
        first, second = spec.sentence_columns
        _require_columns(frame, [first, second, spec.score_column], origin)
        scores = pd.to_numeric(frame[spec.score_column], errors="coerce").to_numpy(dtype=np.float64)
        keep = ~np.isnan(scores)  # pairs without a gold score are not scored
        if not keep.any():
            raise ValueError(f"{origin}: column {spec.score_column!r} holds no numeric scores.")
        return STSData(_texts(frame[first])[keep].tolist(), _texts(frame[second])[keep].tolist(), scores[keep])

    for frame, origin in frames.values():
        _require_columns(frame, [spec.text_column, spec.label_column], origin)
        if frame[spec.label_column].isna().any():
            rows = np.flatnonzero(frame[spec.label_column].isna().to_numpy())[:5].tolist()
            raise ValueError(f"{origin}: column {spec.label_column!r} is empty in rows {rows} (0-based).")
    if spec.task_type == "kfold-classification":
        frame, _ = frames[spec.test_split]
        label_names = sorted(frame[spec.label_column].unique().tolist(), key=_label_sort_key)
        names = _label_names(frame, spec.label_column, label_names)
        return KFoldData(_texts(frame[spec.text_column]).tolist(), _encode(frame[spec.label_column], label_names),
                         names)

    (train, train_origin), (test, test_origin) = frames[spec.train_split], frames[spec.test_split]
    train_set, test_set = set(train[spec.label_column].tolist()), set(test[spec.label_column].tolist())
    only_train = sorted(train_set - test_set, key=_label_sort_key)
    only_test = sorted(test_set - train_set, key=_label_sort_key)
    if only_test:
        # A test label never seen in training can never be predicted: every such row would count as an error.
        raise ValueError(
            f"Task {spec.name!r}: the label sets of train ({train_origin}) and test ({test_origin}) differ: "
            f"only in train {only_train[:10]}, only in test {only_test[:10]}. Test labels that train lacks cannot "
            "be predicted; drop those test rows or add training rows for them."
        )
    if only_train:  # real intent datasets have such splits; MTEB scores them as they are, and so do we
        logger.info("Task %r: %d labels occur in train only (%s), not in test; the classifier still learns them, "
                    "as in MTEB.", spec.name, len(only_train), only_train[:10])
    if len(train_set) < 2:
        raise ValueError(f"Task {spec.name!r}: {train_origin} has a single label {sorted(train_set)}; need at least 2.")
    label_names = sorted(train_set, key=_label_sort_key)
    _warn_short_labels(spec, train[spec.label_column], train_origin)
    return ClassificationData(
        train_texts=_texts(train[spec.text_column]).tolist(),
        train_labels=_encode(train[spec.label_column], label_names),
        test_texts=_texts(test[spec.text_column]).tolist(),
        test_labels=_encode(test[spec.label_column], label_names),
        label_names=_label_names(train, spec.label_column, label_names),
    )


def _warn_short_labels(spec: TaskSpec, labels: pd.Series, origin: str) -> None:
    """Log, as a warning, a train split with fewer rows for some label than the protocol samples.

    MTEB v1's undersampling keeps the first `samples_per_label` rows of each label and simply takes fewer
    where a label has fewer: the score is computed on what there is, which we follow. The warning says how
    many rows each experiment then trains on, since the score rests on fewer examples than the protocol's.
    """
    samples = spec.samples_per_label or MTEBClassificationProtocol.samples_per_label
    counts = labels.value_counts()
    short = counts[counts < samples].sort_index(key=lambda index: index.map(_label_sort_key))
    if short.empty:
        return
    used = int(np.minimum(counts.to_numpy(), samples).sum())
    same = " (so every experiment trains on the same rows)" if len(short) == len(counts) else ""
    listed = ", ".join(f"{label}: {count}" for label, count in list(short.items())[:10])
    logger.warning(
        "Task %r: %s has fewer than samples_per_label=%d training rows for %d of %d labels (%s); as in MTEB, "
        "each experiment trains on the rows there are: %d rows instead of %d%s.",
        spec.name, origin, samples, len(short), len(counts), listed + (", ..." if len(short) > 10 else ""),
        used, samples * len(counts), same,
    )


def _read_splits(spec: TaskSpec, data_dir: Path | None) -> dict[str, tuple[pd.DataFrame, str]]:
    """split -> (frame, a description of where it came from, for error messages)."""
    if spec.hf_dataset is not None:
        import datasets

        loaded = datasets.load_dataset(**spec.hf_dataset)
        out = {}
        for split in spec.splits:
            if split not in loaded:
                raise ValueError(f"Task {spec.name!r}: datasets.load_dataset({spec.hf_dataset}) has no split "
                                 f"{split!r} (splits: {list(loaded)}).")
            out[split] = (loaded[split].to_pandas(), f"datasets.load_dataset({spec.hf_dataset})[{split!r}]")
        return out
    out = {}
    for split in spec.splits:
        if split not in spec.files:
            raise ValueError(f"Task {spec.name!r} lists no file for split {split!r} (files: {spec.files}).")
        entries = spec.files[split]
        paths = [_resolve_path(entry, data_dir) for entry in ([entries] if isinstance(entries, str) else entries)]
        for path in paths:
            if not path.is_file():
                raise FileNotFoundError(f"Task {spec.name!r}: data file {path} does not exist.")
        frames = [_read_csv(path) for path in paths]
        columns = set(frames[0].columns)
        for path, frame in zip(paths[1:], frames[1:]):
            if set(frame.columns) != columns:
                raise ValueError(f"Task {spec.name!r}: {path} has columns {list(frame.columns)}, "
                                 f"unlike {paths[0]} ({list(frames[0].columns)}).")
        frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        out[split] = (frame, ", ".join(str(p) for p in paths))
    return out


def _resolve_path(entry: str, data_dir: Path | None) -> Path:
    path = Path(entry).expanduser()
    return path if path.is_absolute() else (data_dir or data_root()) / path


def _read_csv(path: Path) -> pd.DataFrame:
    # Texts stay strings: "NA", "null" or an empty field must not turn into NaN.
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[])
    except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError) as error:
        raise ValueError(f"Cannot read {path} as CSV: {error}") from error


def _require_columns(frame: pd.DataFrame, columns: list[str], origin: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{origin} has no column {' or '.join(map(repr, missing))} "
                         f"(its columns: {list(frame.columns)}).")


def _texts(column: pd.Series) -> np.ndarray:
    return column.fillna("").astype(str).to_numpy(dtype=object)


def _label_sort_key(label) -> tuple:
    """Numeric labels sort as numbers ("2" < "10"), others as strings."""
    text = str(label)
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)


def _encode(column: pd.Series, label_names: list) -> np.ndarray:
    index = {label: i for i, label in enumerate(label_names)}
    return np.array([index[label] for label in column.tolist()], dtype=np.int64)


def _label_names(frame: pd.DataFrame, label_column: str, labels: list) -> list[str]:
    """Readable class names: the `label_text` column where the data has one, else the label itself."""
    if "label_text" in frame.columns and label_column != "label_text":
        pairs = dict(zip(frame[label_column].tolist(), frame["label_text"].tolist()))
        return [str(pairs.get(label, label)) for label in labels]
    return [str(label) for label in labels]


def describe(spec: TaskSpec) -> dict:
    """The spec as a JSON-friendly dict (for results and docs)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(spec).items() if v is not None}


__all__ = [
    "REGISTRY",
    "TASK_TYPES",
    "ClassificationData",
    "KFoldData",
    "STSData",
    "TaskSpec",
    "describe",
    "folder_task",
    "load_task",
    "resolve_tasks",
]
