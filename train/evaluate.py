"""Evaluate embedding models on classification (MTEB v1 protocol, SentEval k-fold) and STS, side by side.

    python train/evaluate.py --model outputs/model --model teacher --model wordllama --tasks all --output_dir DIR

`--model` is an Asterisk folder, any sentence-transformers / transformers folder, `teacher`
(all-MiniLM-L6-v2 from PyPI) or `wordllama`; `LABEL=PATH` names a folder in tables. `--tasks` is `all`, or
a comma-separated list of registry names (`train/evaluation/tasks.py`) and folders holding train.csv / test.csv.

With one model, DIR holds results.json, results.md and results.png. With several, DIR/<label>/ holds each
model's files and DIR holds comparison.json / .md / .png. results.json is written after every task; a rerun
skips finished tasks (and refuses a DIR written for other weights or another protocol unless --overwrite).
Embeddings are cached on disk per (model, dataset, max length), so re-scoring is fast. `--fc` also trains
Asterisk + FC heads (`train/evaluation/fc_head.py`: three recipes, and the one cross-validation on the training
rows selects) on the classification tasks of Asterisk models (the SentEval ones on a seeded held-out split), and
scores every model (teachers too) with logistic regression on exactly the training rows the heads see (`logreg_*`).

The same as a function: `evaluate_models(["outputs/model", "teacher"], "banking77,emotion", "DIR")`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

if __package__ in (None, ""):  # run as a script: make `train` and `modeling_asterisk` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from train.evaluation.classification_protocol import (  # noqa: E402
    STS_PROTOCOL,
    MTEBClassificationProtocol,
    SentEvalKFoldProtocol,
    run_mteb_classification,
    run_senteval_kfold,
    senteval_order,
    sts_scores,
)
from train.evaluation.embedders import Embedder, EmbeddingCache, load_embedder  # noqa: E402
from train.evaluation.fc_head import (  # noqa: E402
    FCConfig,
    holdout_split,
    logreg_scores,
    select_recipe,
    setting_rows,
    stale_settings,
    train_fc,
)
from train.evaluation.tasks import ClassificationData, KFoldData, STSData, TaskSpec, load_task, resolve_tasks  # noqa: E402

logger = logging.getLogger("asterisk.evaluate")
HARNESS_VERSION = 1
FC_TASK_TYPES = ("classification", "kfold-classification")  # the tasks `--fc` trains heads on


class EvaluationError(RuntimeError):
    """Some tasks failed; the others' results were written."""


def evaluate_models(
    models: list[str] | str,
    tasks: str | list[str] = "all",
    output_dir: str | os.PathLike = "outputs/eval",
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    batch_size: int = 64,
    max_length: int | None = None,
    fc: bool = False,
    fc_config: FCConfig | None = None,
    overwrite: bool = False,
    device: str = "cpu",
    raise_on_error: bool = False,
    long_texts: str = "truncate",
    model_options: dict[str, dict] | None = None,
) -> dict[str, dict]:
    """Evaluate every model on every task (same texts for all) and write the results.

    Args:
        models: `--model` values: folders, "teacher", "wordllama", or "LABEL=FOLDER".
        tasks: "all", registry names and/or task folders (list or comma-separated string).
        output_dir: where results go (see the module docstring for the layout).
        data_dir: the shared data folder (default `train.data_paths.data_root()`).
        cache_dir / use_cache: the embedding cache (default `.cache/embeddings`).
        batch_size: texts per forward pass.
        max_length: token limit override for transformer models (default: each model's own).
        fc / fc_config: also train Asterisk + FC heads on classification tasks (Asterisk models), and score
            every model with logistic regression on the same training rows (`logreg_*`).
        overwrite: discard earlier results in output_dir instead of resuming.
        device: torch device of the transformer models.
        raise_on_error: raise `EvaluationError` at the end if any task failed (the CLI exits with 1).
        long_texts: how Asterisk models embed texts over their token limit: "truncate" (as trained) or
            "chunk" (average of consecutive windows, `AsteriskModel.encode(long_texts="chunk")`).
        model_options: LABEL -> options of that model only: `max_length`, and for sentence-transformers models
            `dtype` ("float32" by default; "bfloat16", or "auto": bf16 where the hardware has it, for a large teacher on
            a CPU) and `prompt_name`; for Asterisk
            models `truncate_dim` (the embedding's first dimensions). An `.onnx` file is an Asterisk ONNX graph.

    Returns:
        label -> results dict (the content of that model's results.json).
    """
    models = [models] if isinstance(models, str) else list(models)
    if not models:
        raise ValueError("No model given; pass --model FOLDER, --model teacher or --model wordllama.")
    specs = resolve_tasks(tasks)  # unknown names / incomplete task folders fail here, before any work
    fc_config = fc_config or FCConfig()
    cache = EmbeddingCache(cache_dir, enabled=use_cache)
    output_dir = Path(output_dir)

    embedders = _load_embedders(models, max_length, device, long_texts, model_options or {})
    several = len(embedders) > 1
    runs = []
    for embedder in embedders:
        folder = output_dir / embedder.label if several else output_dir
        results = _start_results(embedder, folder / "results.json", fc, fc_config, overwrite)
        runs.append((embedder, folder, results))

    task_bar = tqdm(specs, desc="tasks", unit="task")
    for spec in task_bar:
        task_bar.set_postfix_str(spec.name)
        pending = [run for run in runs if not _is_done(run[2], spec, fc, run[0].kind == "asterisk")]
        if not pending:
            logger.info("%s: already done for every model, skipped.", spec.name)
            continue
        try:
            data = load_task(spec, data_dir)
        except Exception as error:  # noqa: BLE001 - one task's bad data must not stop the others
            for _, folder, results in pending:
                _record_error(results, spec, error, folder)
            continue
        for embedder, folder, results in pending:
            try:
                _evaluate_task(embedder, spec, data, results, cache, batch_size, folder)
                if fc and spec.task_type in FC_TASK_TYPES:
                    _evaluate_fc(embedder, spec, data, results, fc_config, folder, cache, batch_size)
            except Exception as error:  # noqa: BLE001
                _record_error(results, spec, error, folder)
    task_bar.close()

    by_label = {}
    for embedder, folder, results in runs:
        _finish(results, folder)
        by_label[embedder.label] = results
    if several:
        write_comparison(list(by_label.values()), output_dir)
    failed = {label: sorted(r["errors"]) for label, r in by_label.items() if r["errors"]}
    if failed and raise_on_error:
        details = "; ".join(f"{label}: {task}: {by_label[label]['errors'][task]}"
                            for label, tasks_ in failed.items() for task in tasks_)
        raise EvaluationError(f"Some tasks failed (the others were written to {output_dir}): {details}")
    return by_label


# ----------------------------------------------------------------------------------------------- models


MODEL_OPTIONS = {"max_length": int, "dtype": str, "prompt_name": str, "truncate_dim": int}


def parse_model_options(values: list[str]) -> dict[str, dict]:
    """["LABEL:key=value,key=value", ...] -> {LABEL: {key: value}}; keys from `MODEL_OPTIONS`."""
    options: dict[str, dict] = {}
    for value in values:
        label, _, pairs = value.partition(":")
        if not label or not pairs:
            raise ValueError(f"--model_options takes LABEL:key=value[,key=value], got {value!r}.")
        for pair in pairs.split(","):
            key, _, raw = pair.partition("=")
            if key not in MODEL_OPTIONS or not raw:
                raise ValueError(f"--model_options {value!r}: unknown option {key!r}; options: "
                                 f"{', '.join(MODEL_OPTIONS)} (key=value).")
            try:
                options.setdefault(label, {})[key] = MODEL_OPTIONS[key](raw)
            except ValueError:
                raise ValueError(f"--model_options {value!r}: {key} takes an integer, got {raw!r}.") from None
    return options


def _load_embedders(models: list[str], max_length: int | None, device: str, long_texts: str,
                    model_options: dict[str, dict]) -> list[Embedder]:
    embedders, labels = [], set()
    unused = set(model_options)
    for value in models:
        label, spec = _split_label(value)
        options = dict(model_options.get(label or "", {}))
        unused.discard(label or "")
        embedder = load_embedder(spec, label=label,
                                 max_length=options.pop("max_length", max_length if spec != "wordllama" else None),
                                 device=device, long_texts=long_texts, **options)
        base = embedder.label = re.sub(r"[^A-Za-z0-9_.+-]+", "_", embedder.label) or "model"
        suffix = 2
        while embedder.label in labels:  # two folders with the same name: keep their outputs apart
            embedder.label = f"{base}-{suffix}"
            suffix += 1
        labels.add(embedder.label)
        embedders.append(embedder)
    if unused:
        raise ValueError(f"--model_options name {sorted(unused)}, which no --model LABEL=... names.")
    return embedders


def _split_label(value: str) -> tuple[str | None, str]:
    """"LABEL=PATH" -> (LABEL, PATH); anything else -> (None, value)."""
    if "=" in value and not Path(value).exists():
        label, spec = value.split("=", 1)
        if label and spec:
            return label, spec
    return None, value


# ---------------------------------------------------------------------------------------------- results


def protocol_description(fc: bool, fc_config: FCConfig) -> dict:
    """The "protocol" block of results.json."""
    protocol = {
        "classification": MTEBClassificationProtocol().describe(),
        "kfold_classification": SentEvalKFoldProtocol().describe(),
        "sts": STS_PROTOCOL,
    }
    if fc:
        protocol["fc"] = fc_config.describe()
    return protocol


def _environment() -> dict:
    import sklearn
    import torch
    import transformers

    return {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
            "transformers": transformers.__version__, "scikit_learn": sklearn.__version__,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "platform": platform.platform()}


def _start_results(embedder: Embedder, path: Path, fc: bool, fc_config: FCConfig, overwrite: bool) -> dict:
    fresh = {**embedder.describe(), "protocol": protocol_description(fc, fc_config), "tasks": {}, "averages": {},
             "errors": {}, "harness_version": HARNESS_VERSION, "environment": _environment()}
    fresh = json.loads(json.dumps(fresh))  # tuples -> lists: compares equal to what a results.json holds
    if overwrite or not path.is_file():
        return fresh
    try:
        previous = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); fix or delete it, or pass --overwrite.") from error
    for key in ("weights_sha256", "model", "max_length", "normalized", "long_texts"):
        if previous.get(key) != fresh.get(key):
            raise ValueError(
                f"{path} holds results for {key}={previous.get(key)!r}, but this model has {key}={fresh.get(key)!r}: "
                "use another --output_dir or pass --overwrite to replace them."
            )
    old_protocol, new_protocol = previous.get("protocol", {}), fresh["protocol"]
    for key in ("classification", "kfold_classification", "sts"):
        if _settings(old_protocol.get(key)) != _settings(new_protocol.get(key)):
            raise ValueError(f"{path} was written with other {key} settings ({_settings(old_protocol.get(key))}); "
                             "use another --output_dir or pass --overwrite.")
    tasks = previous.get("tasks", {})
    if fc:  # FC scores of other hyper-parameters do not count; the rest still does
        old_fc, new_fc = _fc_values(old_protocol.get("fc")), _fc_values(new_protocol.get("fc"))
        for task in tasks.values():
            for setting in stale_settings(list(task.get("fc", {})), old_fc, new_fc):
                task["fc"].pop(setting)
                task.get("fc_details", {}).pop(setting, None)
    fresh["tasks"] = tasks
    fresh["errors"] = {}  # failed tasks are tried again
    if not fc and "fc" in old_protocol:
        fresh["protocol"]["fc"] = old_protocol["fc"]  # keep describing FC scores that stay in the file
    logger.info("%s: resuming from %s (%d tasks done).", embedder.label, path, len(tasks))
    return fresh


def _settings(protocol: dict | None) -> dict:
    """The values of a protocol block that change scores (numbers, lists); descriptions may be reworded."""
    return {k: v for k, v in (protocol or {}).items() if not isinstance(v, str)}


def _fc_values(protocol: dict | None) -> dict:
    """The FC settings that change scores; the list of setting names may grow (each name means the same thing)."""
    return {k: v for k, v in _settings(protocol).items() if k != "settings"}


def _is_done(results: dict, spec: TaskSpec, want_fc: bool, trainable: bool) -> bool:
    task = results["tasks"].get(spec.name)
    if task is None:
        return False
    if want_fc and spec.task_type in FC_TASK_TYPES:
        return set(FCConfig(**_fc_fields(results)).settings(trainable)) <= set(task.get("fc", {}))
    return True


def _fc_fields(results: dict) -> dict:
    fields = FCConfig.__dataclass_fields__
    return {k: v for k, v in results["protocol"].get("fc", {}).items() if k in fields}


def _record_error(results: dict, spec: TaskSpec, error: Exception, folder: Path) -> None:
    message = f"{type(error).__name__}: {error}"
    results["errors"][spec.name] = message
    logger.error("%s failed for %s: %s", spec.name, results["label"], message)
    _write_results(results, folder)


def _write_results(results: dict, folder: Path) -> None:
    """results.json (atomically) and results.md, after every task."""
    results["averages"] = averages(results["tasks"])
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / "results.json.partial"
    partial.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(partial, folder / "results.json")
    (folder / "results.md").write_text(results_markdown(results))


def _finish(results: dict, folder: Path) -> None:
    _write_results(results, folder)
    if results["tasks"]:
        from train.evaluation.plots import bar_chart

        bar_chart([results], folder / "results.png", title=_chart_title([results]))


def averages(tasks: dict) -> dict:
    """Mean main score over classification tasks (both protocols) and over STS tasks."""
    out = {}
    for kind, types in (("classification", ("classification", "kfold-classification")), ("sts", ("sts",))):
        scores = [t["main_score"] for t in tasks.values() if t.get("task_type") in types]
        out[kind] = float(np.mean(scores)) if scores else None
        out[f"n_{kind}_tasks"] = len(scores)
    return out


# ------------------------------------------------------------------------------------------------ tasks


def _evaluate_task(embedder: Embedder, spec: TaskSpec, data, results: dict, cache: EmbeddingCache,
                   batch_size: int, folder: Path) -> None:
    if spec.name in results["tasks"]:
        return  # only FC was missing
    started = time.perf_counter()
    progress = lambda items: tqdm(items, desc=f"{spec.name} ({embedder.label})", leave=False)  # noqa: E731
    if isinstance(data, ClassificationData):
        protocol = MTEBClassificationProtocol(
            n_experiments=spec.n_experiments or MTEBClassificationProtocol.n_experiments,
            samples_per_label=spec.samples_per_label or MTEBClassificationProtocol.samples_per_label,
        )
        test = cache.embed(embedder, data.test_texts, f"{spec.name}-{spec.test_split}", batch_size)
        train_texts = data.train_texts
        scores = run_mteb_classification(
            lambda rows: cache.embed(embedder, [train_texts[i] for i in rows], f"{spec.name}-{spec.train_split}",
                                     batch_size),
            data.train_labels, test, data.test_labels, protocol, progress,
        )
        scores.update(samples_per_label=protocol.samples_per_label, n_experiments=protocol.n_experiments)
    elif isinstance(data, KFoldData):
        order = senteval_order(data.texts, data.labels)
        vectors = cache.embed(embedder, [data.texts[i] for i in order], f"{spec.name}-{spec.test_split}", batch_size)
        scores = run_senteval_kfold(vectors, data.labels[order], SentEvalKFoldProtocol(), progress)
    elif isinstance(data, STSData):
        vectors = cache.embed(embedder, data.sentences1 + data.sentences2, f"{spec.name}-{spec.test_split}", batch_size)
        n = len(data.sentences1)
        scores = sts_scores(vectors[:n], vectors[n:], data.scores)
    else:  # pragma: no cover - load_task returns one of the three
        raise TypeError(f"Unexpected task data {type(data).__name__}")
    entry = {"main_score": scores.pop("main_score"), **scores, "task_type": spec.task_type,
             "seconds": round(time.perf_counter() - started, 1)}
    if spec.mteb_name:
        entry["mteb_name"] = spec.mteb_name
    entry.update(description=spec.description, test_split=spec.test_split)  # the model card quotes them
    results["tasks"][spec.name] = entry
    results["errors"].pop(spec.name, None)
    _write_results(results, folder)
    logger.info("%s / %s: main score %.2f (%.1f s)", embedder.label, spec.name, 100 * entry["main_score"],
                entry["seconds"])


def _evaluate_fc(embedder: Embedder, spec: TaskSpec, data: ClassificationData | KFoldData, results: dict,
                 config: FCConfig, folder: Path, cache: EmbeddingCache, batch_size: int) -> None:
    task = results["tasks"][spec.name]
    train_split, test_split = f"{spec.name}-{spec.train_split}", f"{spec.name}-{spec.test_split}"
    if isinstance(data, KFoldData):  # one labelled set: FC needs rows it never trains on
        data = holdout_split(data, config.kfold_test_fraction, config.seed)
        train_split = test_split  # both halves are texts the k-fold run embedded under this name
    for setting in config.settings(trainable=embedder.kind == "asterisk"):
        if setting in task.get("fc", {}):
            continue
        logger.info("%s / %s: FC %s", embedder.label, spec.name, setting)
        if setting.startswith("selected_"):  # picked on the training rows; the recipes' test runs came first
            selection = select_recipe(embedder.folder, data, config)
            chosen = f"{selection['choice']}_{config.low_data_samples}"
            scores = {**task["fc_details"][chosen], **selection, "setting": chosen}
        elif setting.startswith("logreg_"):  # the baseline, on exactly the rows the FC head trains on
            started = time.perf_counter()
            rows = setting_rows(len(data.train_texts), setting, config)
            train = cache.embed(embedder, [data.train_texts[i] for i in rows], train_split, batch_size)
            test = cache.embed(embedder, data.test_texts, test_split, batch_size)
            scores = logreg_scores(train, data.train_labels[rows], test, data.test_labels)
            scores["seconds"] = round(time.perf_counter() - started, 1)
        else:
            scores = train_fc(embedder.folder, data, setting, config)
        task.setdefault("fc", {})[setting] = scores["accuracy"]
        task.setdefault("fc_details", {})[setting] = scores
        _write_results(results, folder)  # each FC setting is saved as it finishes


# --------------------------------------------------------------------------------------------- reports


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _row(*cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _fc_settings(tasks: list[dict]) -> list[str]:
    """FC setting names present: low-data before full, then logistic regression, the recipes, the selected one."""
    names = {s for task in tasks for s in task.get("fc", {})}
    kinds = ("logreg_", "frozen_", "finetune_", "lpft_", "selected_")
    return sorted(names, key=lambda s: (s.endswith("_full"), next(i for i, k in enumerate(kinds) if s.startswith(k))))


def results_markdown(results: dict) -> str:
    """One model's results as a markdown table (scores in percent)."""
    tasks, protocol, avg = results["tasks"], results["protocol"], results["averages"]
    fc_settings = _fc_settings(list(tasks.values()))
    sha = f", weights sha256 `{results['weights_sha256'][:12]}`" if results.get("weights_sha256") else ""
    lines = [
        f"# {results['label']}",
        "",
        f"`{results['model']}`: {results['kind']}, {results['parameters']:,} parameters, {results['dimensions']}-d, "
        f"max length {results['max_length'] or 'unlimited'}{sha}",
        "",
        f"Classification: {protocol['classification']['name']}, as in "
        f"{protocol['classification']['version_followed']}; MR/CR/SUBJ/MPQA: "
        f"{protocol['kfold_classification']['name']}; STS: {protocol['sts']['name']}.",
        "",
        _row("task", "type", "main score", "accuracy (± std)", "macro-F1", "n_train", "n_test",
             *[f"FC {s}" for s in fc_settings]),
        _row(*["---"] * (7 + len(fc_settings))),
    ]
    for name, task in tasks.items():
        fc = [_pct(task.get("fc", {}).get(s)) for s in fc_settings]
        if task["task_type"] == "sts":
            lines.append(_row(name, "sts", _pct(task["main_score"]), "-", "-", "-", task["n_test"], *fc))
        else:
            lines.append(_row(name, task["task_type"], _pct(task["main_score"]),
                              f"{_pct(task['accuracy'])} ± {_pct(task['accuracy_std'])}", _pct(task["f1"]),
                              task["n_train"], task["n_test"], *fc))
    lines += ["", f"Average classification ({avg.get('n_classification_tasks', 0)} tasks): "
                  f"{_pct(avg.get('classification'))}; average STS Spearman ({avg.get('n_sts_tasks', 0)} tasks): "
                  f"{_pct(avg.get('sts'))}."]
    if results["errors"]:
        lines += ["", "Failed tasks:"] + [f"- {task}: {message}" for task, message in results["errors"].items()]
    return "\n".join(lines) + "\n"


def comparison_markdown(all_results: list[dict]) -> str:
    """Models side by side: main score per task in percent, then the averages (and FC scores, if any)."""
    tasks: list[str] = []
    for results in all_results:
        tasks += [t for t in results["tasks"] if t not in tasks]
    labels = [r["label"] for r in all_results]
    lines = [_row("model", "kind", "parameters", "dimensions", "max length"), _row(*["---"] * 5)]
    lines += [_row(r["label"], r["kind"], f"{r['parameters'] / 1e6:.1f}M", r["dimensions"], r["max_length"] or "-")
              for r in all_results]
    lines += ["", "Main score in percent (accuracy; Spearman for STS).", "",
              _row("task", *labels), _row(*["---"] * (1 + len(labels)))]
    for task in tasks:
        lines.append(_row(task, *[_pct(r["tasks"].get(task, {}).get("main_score")) for r in all_results]))
    for kind in ("classification", "sts"):
        lines.append(_row(f"**average {kind}**", *[_pct(r["averages"].get(kind)) for r in all_results]))
    fc_rows = [(task, setting) for task in tasks
               for setting in _fc_settings([r["tasks"].get(task, {}) for r in all_results])]
    if fc_rows:
        lines += ["", "Asterisk + FC, and logistic regression on the same training rows (`logreg_*`, any model) "
                      "(accuracy, %):", "", _row("task", *labels), _row(*["---"] * (1 + len(labels)))]
        for task, setting in fc_rows:
            lines.append(_row(f"{task} FC {setting}",
                              *[_pct(r["tasks"].get(task, {}).get("fc", {}).get(setting)) for r in all_results]))
    return "\n".join(lines) + "\n"


def write_comparison(all_results: list[dict], output_dir: Path) -> None:
    """comparison.json, comparison.md and comparison.png in `output_dir`."""
    from train.evaluation.plots import bar_chart

    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "comparison.json").write_text(json.dumps({"models": all_results}, indent=2) + "\n")
    (output_dir / "comparison.md").write_text(comparison_markdown(all_results))
    if any(r["tasks"] for r in all_results):
        bar_chart(all_results, output_dir / "comparison.png", title=_chart_title(all_results))


def _chart_title(all_results: list[dict]) -> str:
    protocol = all_results[0]["protocol"]["classification"]
    return (f"Main score: accuracy (MTEB v1 logReg, {protocol['n_experiments']} experiments, "
            f"{protocol['samples_per_label']} per label; SentEval 10-fold CV for MR/CR/SUBJ/MPQA); "
            "Spearman of cosine similarity for STS")


# ------------------------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True,
                        help="model folder, 'teacher', 'wordllama' or LABEL=FOLDER; repeat to compare models")
    parser.add_argument("--tasks", default="all",
                        help="'all' or comma-separated registry names / folders with train.csv + test.csv")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--data_dir", default=None,
                        help="shared data folder (default ../shared/data or $ASTERISK_DATA_DIR)")
    parser.add_argument("--cache_dir", default=None,
                        help="embedding cache (default .cache/embeddings or $ASTERISK_EMBEDDING_CACHE)")
    parser.add_argument("--no_cache", action="store_true", help="do not read or write the embedding cache")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--max_length", type=int, default=None, help="token limit override (default: each model's own)")
    parser.add_argument("--long_texts", choices=("truncate", "chunk"), default="truncate",
                        help="Asterisk models: truncate texts over the token limit (default, as trained) or "
                             "average the embeddings of consecutive windows")
    parser.add_argument("--model_options", action="append", default=[],
                        help="LABEL:key=value[,key=value] for one model: max_length, dtype (sentence-transformers "
                             "models: float32, bfloat16 or auto), prompt_name, truncate_dim (Asterisk models); "
                             "repeatable")
    parser.add_argument("--fc", action="store_true",
                        help="also train Asterisk + FC heads (Asterisk folders; slow) and fit logistic regression on "
                             "the same training rows for every model")
    parser.add_argument("--fc_low_data_samples", type=int, default=FCConfig.low_data_samples)
    parser.add_argument("--fc_full_epochs", type=int, default=FCConfig.full_epochs,
                        help="epochs of the full-data FC settings; 0 runs the low-data settings only")
    parser.add_argument("--overwrite", action="store_true", help="discard earlier results in --output_dir")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.batch_size < 1:
        parser.error("--batch_size must be a positive integer")
    try:
        by_label = evaluate_models(
            args.model, args.tasks, args.output_dir, data_dir=args.data_dir, cache_dir=args.cache_dir,
            use_cache=not args.no_cache, batch_size=args.batch_size, max_length=args.max_length, fc=args.fc,
            fc_config=FCConfig(low_data_samples=args.fc_low_data_samples, full_epochs=args.fc_full_epochs),
            overwrite=args.overwrite, device=args.device, long_texts=args.long_texts,
            model_options=parse_model_options(args.model_options),
        )
    except (ValueError, FileNotFoundError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    failed = False
    for label, results in by_label.items():
        for task, message in results["errors"].items():
            print(f"error: {label}: task {task} failed: {message}", file=sys.stderr)
            failed = True
    print(f"results written to {args.output_dir}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
