"""Render the Hub model card (README.md) of an assembled Asterisk release, from the files in that folder only.

`render_model_card(folder, repo_id)` reads `config.json`, `model.safetensors` (parameter count and sha256),
`training_info.json` and `training_curves.png` (written by `train/distill.py`), `evaluation/results.json`
and `evaluation/results.png` (written by `train/evaluate.py`) and `onnx/`, and fills `template.md` through
huggingface_hub's `ModelCard.from_template`. No figure is typed here: a file that is absent leaves its
section out, and a folder without `training_info.json` is labelled untrained at the top of the card.

The YAML header is a `ModelCardData`; its `model-index` follows the format MTEB writes to model cards
(scores in percent). Tasks that reproduce an MTEB task name MTEB's Hub dataset (`mteb/banking77`, ...)
without a `revision`: the scores were computed on local copies of the same splits, not on that revision.
Other tasks (SentEval, TREC, user folders...) have no Hub dataset id; their `dataset.type` is the task's name
in `results.json` and their `dataset.name` says it is a local copy.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import torch
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from asterisk_embeddings.hashing import sha256_file
from asterisk_embeddings.onnx_encoder import FP32_FILE_NAME, INT8_FILE_NAMES
from modeling_asterisk import AsteriskConfig, AsteriskModel

TEMPLATE = Path(__file__).with_name("template.md")
DEFAULT_LICENSE = "apache-2.0"  # the project's license (pyproject.toml)
PLACEHOLDER_REPO_ID = "your-username/asterisk"
PAPER = {"arxiv": "2411.05691", "title": "Asterisk*: Keep it Simple", "author": "Andrew Semenov", "year": 2024}

# MTEB task name (results.json "mteb_name") -> the Hub dataset MTEB v1 evaluates it on.
MTEB_DATASETS = {
    "Banking77Classification": "mteb/banking77",
    "EmotionClassification": "mteb/emotion",
    "ImdbClassification": "mteb/imdb",
    "STSBenchmark": "mteb/stsbenchmark-sts",
    "SICK-R": "mteb/sickr-sts",
}
# results.json task_type -> the model-index task type (MTEB's names).
TASK_TYPES = {"classification": "Classification", "kfold-classification": "Classification", "sts": "STS"}
# Corpus files of train/distill.py (relative to the data folder) that the card can describe in words.
KNOWN_CORPORA = {
    "distill_corpus/sentences.tsv.gz": (
        "the project's distillation corpus of unique English texts: the train splits and unlabelled text of "
        "public datasets (IMDB reviews, Schema-Guided Dialogue, 20 Newsgroups, Reuters-21578, TweetEval, "
        "Flickr8k captions, Emotion, CLINC150, Banking77, SNIPS and others), with every validation and test "
        "text of those datasets and of the evaluation sets removed. It contains the *training texts* (not "
        "the labels) of some evaluation tasks, Banking77 and Emotion among them"
    ),
}
ARCHITECTURE_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                       "hidden_act", "max_position_embeddings", "projection_dim")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Teachers rebuilt offline into local folders (../shared/teachers) are these Hub models.
KNOWN_TEACHER_FOLDERS = {
    "nomic-embed-text-v1.5": "nomic-ai/nomic-embed-text-v1.5",
    "all-mpnet-base-v2": "sentence-transformers/all-mpnet-base-v2",
    "all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2",
}


def teacher_hub_id(name: str) -> str | None:
    """The Hub id of a teacher named by Hub id or by a local folder of a known model, else None."""
    if HUB_ID.match(name) and not Path(name).expanduser().exists():
        return name
    return KNOWN_TEACHER_FOLDERS.get(Path(name.rstrip("/")).name)


def render_model_card(
    folder: str | os.PathLike,
    repo_id: str | None = None,
    license: str = DEFAULT_LICENSE,
    datasets: list[str] | tuple[str, ...] = (),
) -> ModelCard:
    """The model card of the release in `folder` (write it with `card.save(folder / "README.md")`).

    Args:
        folder: an assembled release (config.json, model.safetensors, optional training and evaluation files).
        repo_id: the Hub repository the usage examples load from (default: a placeholder).
        license: the `license` metadata (a Hub license id).
        datasets: Hub dataset ids of the training data, added to those `training_info.json` names as
            `hub:owner/name` corpus entries (a local corpus file has no Hub id).
    """
    facts = release_facts(folder)
    repo_id = repo_id or PLACEHOLDER_REPO_ID
    model_name = repo_id.split("/")[-1]
    card_data = build_card_data(facts, model_name, license, datasets)
    card = ModelCard.from_template(card_data, template_path=str(TEMPLATE), repo_id=repo_id, model_name=model_name,
                                   paper=PAPER, **facts)
    # The template's {% if %} lines leave runs of blank lines; Markdown collapses them anyway.
    return ModelCard(re.sub(r"\n{3,}", "\n\n", str(card)).rstrip() + "\n")


def release_facts(folder: str | os.PathLike) -> dict:
    """Everything the card states, read from the files in `folder` and formatted for the template."""
    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    weights = folder / "model.safetensors"
    parameters = count_parameters(weights)
    paper_config, paper_parameters = _paper_reference()
    architecture = {name: config.get(name) for name in ARCHITECTURE_FIELDS}
    training = _read_json(folder / "training_info.json")
    evaluation = _read_json(folder / "evaluation" / "results.json")
    files = [(name, _megabytes(folder / name)) for name in ("model.safetensors", FP32_FILE_NAME, *INT8_FILE_NAMES)
             if (folder / name).is_file()]
    return {
        "config": config,
        "architecture": architecture,
        "parameters": parameters,
        "parameters_text": f"{parameters:,}",
        "weights_sha256": sha256_file(weights),
        "weights_float16": _stored_in_float16(weights),
        "files": files,
        "has_onnx": (folder / FP32_FILE_NAME).is_file(),
        "has_int8": all((folder / name).is_file() for name in INT8_FILE_NAMES),
        "paper_size": architecture == paper_config,
        "paper_config": paper_config,
        "paper_parameters_text": f"{paper_parameters:,}",
        "trained": training is not None,
        "training": _training_facts(training) if training else None,
        "has_training_curves": (folder / "training_curves.png").is_file(),
        "evaluation": _evaluation_facts(evaluation) if evaluation else None,
        "has_evaluation_chart": (folder / "evaluation" / "results.png").is_file(),
    }


def build_card_data(facts: dict, model_name: str, license: str, datasets=()) -> ModelCardData:
    """The YAML header: library, pipeline, tags, license, datasets, teacher as base_model, model-index."""
    training = facts["training"] or {}
    hub_datasets = list(dict.fromkeys([*training.get("hub_datasets", []), *datasets]))
    tags = ["sentence-transformers", "custom_code", "feature-extraction", "sentence-embeddings", "text-embeddings",
            "asterisk"]
    tags.append("knowledge-distillation" if facts["trained"] else "untrained")
    if facts["has_onnx"]:
        tags.append("onnx")
    if facts["evaluation"]:
        tags.append("mteb")
    results = eval_results(facts["evaluation"]["raw"]) if facts["evaluation"] else []
    return ModelCardData(
        language="en",
        license=license,
        library_name="transformers",
        pipeline_tag="feature-extraction",
        tags=tags,
        datasets=hub_datasets or None,
        base_model=training.get("teacher_hub_id"),
        model_name=model_name if results else None,  # only the model-index uses it
        eval_results=results or None,
    )


def eval_results(results: dict) -> list[EvalResult]:
    """`EvalResult`s for the model-index, one per task and metric, in percent as MTEB reports them."""
    out = []
    for name, task in results.get("tasks", {}).items():
        task_type = TASK_TYPES.get(task.get("task_type"))
        if task_type is None:
            continue
        dataset = _hub_dataset(name, task)
        if task_type == "STS":
            metrics = [("cos_sim_spearman", task.get("spearman")), ("cos_sim_pearson", task.get("pearson"))]
        else:
            metrics = [("accuracy", task.get("accuracy")), ("f1", task.get("f1")), ("ap", task.get("ap"))]
        metrics.append(("main_score", task.get("main_score")))
        for metric, value in metrics:
            if value is not None:
                out.append(EvalResult(task_type=task_type, metric_type=metric, metric_value=round(100 * value, 4),
                                      **dataset))
    return out


def count_parameters(weights: str | os.PathLike) -> int:
    """Number of values in a safetensors file (the model's parameters), read from its header."""
    from safetensors import safe_open

    with safe_open(str(weights), framework="np") as handle:
        return sum(math.prod(handle.get_slice(name).get_shape()) for name in handle.keys())


# ------------------------------------------------------------------------------------------------ helpers


def _hub_dataset(name: str, task: dict) -> dict:
    """EvalResult dataset fields: MTEB's Hub dataset for MTEB tasks, a described local copy otherwise."""
    mteb_name = task.get("mteb_name")
    if mteb_name in MTEB_DATASETS:
        return {"dataset_type": MTEB_DATASETS[mteb_name], "dataset_name": f"MTEB {mteb_name}",
                "dataset_config": "default", "dataset_split": "test"}
    description = task.get("description") or name
    return {"dataset_type": name, "dataset_name": f"{description} (local copy, no Hub dataset)",
            "dataset_split": task.get("test_split", "test")}


def _training_facts(info: dict) -> dict:
    teacher = info.get("teacher") or ""
    hub_id = teacher_hub_id(teacher)
    corpus = [entry[len("hub:"):] if entry.startswith("hub:") else entry for entry in info.get("corpus", [])]
    hardware = info.get("hardware", {})
    device = hardware.get("gpu") or hardware.get("cpu") or hardware.get("device", "unknown")
    processes = hardware.get("num_processes", 1)
    precision = hardware.get("mixed_precision") or "no"
    config = info.get("config", {})
    loss = info.get("loss", {})
    loss_terms = [f"{weight:g} × {term}" for term, weight in loss.items()
                  if term in ("cosine", "mse", "relational") and weight]
    stats = info.get("corpus_stats", {})
    teachers = []
    for entry in info.get("teachers") or [{"name": teacher, "dim": info.get("teacher_dim")}]:
        entry_hub_id = teacher_hub_id(entry.get("name") or "")
        name = entry_hub_id or entry.get("name") or ""
        teachers.append({**entry, "name": name, "link": f"[{entry_hub_id}](https://huggingface.co/{entry_hub_id})"
                         if entry_hub_id else f"`{name}`", "texts_scored": _int(entry.get("texts_scored")) or "all"})
    return {
        "teachers": teachers,
        "raw": info,
        "teacher": teacher,
        "teacher_hub_id": hub_id,
        "teacher_link": f"[{hub_id}](https://huggingface.co/{hub_id})" if hub_id else f"`{teacher}`",
        "corpus": corpus,
        "corpus_descriptions": [KNOWN_CORPORA[c] for c in corpus if c in KNOWN_CORPORA],
        "hub_datasets": [c for c, entry in zip(corpus, info.get("corpus", [])) if entry.startswith("hub:")],
        "corpus_read": _int(stats.get("read")),
        "corpus_kept": _int(stats.get("kept")),
        "train_sentences": _int(info.get("train_sentences")),
        "heldout_sentences": _int(info.get("heldout_sentences")),
        "max_length": info.get("max_length"),
        "steps": _int(info.get("steps")),
        "epochs": info.get("epochs"),
        "sentences_seen": _int(info.get("sentences_seen")),
        "global_batch_size": info.get("global_batch_size"),
        "learning_rate": config.get("learning_rate"),
        "lr_scheduler": config.get("lr_scheduler"),
        "warmup_ratio": config.get("warmup_ratio"),
        "weight_decay": config.get("weight_decay"),
        "seed": config.get("seed"),
        "init": info.get("init"),
        "target_space": info.get("target_space"),
        "loss": " + ".join(loss_terms) or "-",
        "hardware": f"{processes} × {device}" + (f", {precision} mixed precision" if precision != "no" else ", fp32"),
        "train_time": _duration(info.get("train_seconds")),
        "targets_time": _duration(info.get("teacher_targets_seconds")),
        "wall_time": _duration(info.get("wall_seconds")),
        "sentences_per_s": _int(info.get("train_sentences_per_s")),
        "final_heldout_cosine": info.get("final_heldout_cosine"),
        "nonfinite_steps_skipped": info.get("nonfinite_steps_skipped"),
        "resumed": info.get("resumed_from") is not None,
        "command": info.get("command"),
        "preset": config.get("config"),
    }


def _evaluation_facts(results: dict) -> dict:
    tasks = results.get("tasks", {})
    classification, sts, fc_rows = [], [], []
    for name, task in tasks.items():
        label = task.get("mteb_name") or name
        row = {"name": name, "label": label, "description": task.get("description", ""),
               "main_score": _pct(task.get("main_score")), "n_test": _int(task.get("n_test"))}
        if task.get("task_type") == "sts":
            sts.append({**row, "spearman": _pct(task.get("spearman")), "pearson": _pct(task.get("pearson"))})
        else:
            protocol = "SentEval 10-fold" if task.get("task_type") == "kfold-classification" else "MTEB logReg"
            classification.append({**row, "protocol": protocol, "accuracy": _pct(task.get("accuracy")),
                                   "accuracy_std": _pct(task.get("accuracy_std")), "f1": _pct(task.get("f1")),
                                   "n_train": _int(task.get("n_train"))})
        if task.get("fc"):
            fc_rows.append({"label": label, "scores": {s: _pct(v) for s, v in task["fc"].items()}})
    fc_settings = sorted({s for row in fc_rows for s in row["scores"]}, key=lambda s: (s.endswith("full"), s))
    averages = results.get("averages", {})
    protocol = results.get("protocol", {})
    ranked = sorted(classification, key=lambda r: float(r["main_score"]))
    return {
        "raw": results,
        "classification": classification,
        "sts": sts,
        "fc_rows": fc_rows,
        "fc_settings": fc_settings,
        "fc_protocol": protocol.get("fc"),
        "average_classification": _pct(averages.get("classification")),
        "n_classification": averages.get("n_classification_tasks", len(classification)),
        "average_sts": _pct(averages.get("sts")),
        "n_sts": averages.get("n_sts_tasks", len(sts)),
        "weakest": ranked[:2] if len(ranked) > 2 else [],
        "classification_protocol": protocol.get("classification", {}),
        "sts_protocol": protocol.get("sts", {}),
        "errors": results.get("errors", {}),
        "task_names": ",".join(tasks),
        "environment": results.get("environment", {}),
    }


def _paper_reference() -> tuple[dict, int]:
    """The paper's configuration (AsteriskConfig's defaults) and its parameter count."""
    config = AsteriskConfig()
    with torch.device("meta"):  # shapes only, no memory, no initialisation cost
        parameters = AsteriskModel(config).num_parameters()
    return {name: getattr(config, name) for name in ARCHITECTURE_FIELDS}, parameters


def _stored_in_float16(weights: Path) -> bool:
    from safetensors import safe_open

    with safe_open(str(weights), framework="np") as handle:
        return any(handle.get_slice(name).get_dtype() == "F16" for name in handle.keys())


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _megabytes(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.1f} MB"


def _pct(value) -> str | None:
    return None if value is None else f"{100 * value:.2f}"


def _int(value) -> str | None:
    return None if value is None else f"{int(round(value)):,}"


def _duration(seconds) -> str | None:
    if seconds is None:
        return None
    if seconds < 10:
        return f"{seconds:.1f} s"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


__all__ = ["render_model_card", "release_facts", "build_card_data", "eval_results", "count_parameters",
           "DEFAULT_LICENSE", "PLACEHOLDER_REPO_ID", "MTEB_DATASETS"]
