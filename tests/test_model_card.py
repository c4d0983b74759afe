"""model_card/: the card states what the files in the folder say, in the Hub's and MTEB's formats.

The folder is the real tiny model, a real evaluation by train/evaluate.py (TREC slice), an STS entry scored by
the harness's own `sts_scores` on real STS-B pairs, and a training record written by train/distill.py's own
`training_info`. Rendering reads files only, so these tests are fast; the README's code is run by the
fresh-process validation of tests/test_push_to_hub.py.
"""

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results

from model_card import count_parameters, eval_results, render_model_card
from modeling_asterisk import AsteriskModel
from train.distill import DistillConfig, training_info
from train.distillation.corpus import CorpusStats
from train.distillation.tracking import plot_training_curves
from train.evaluate import averages
from train.evaluation.classification_protocol import sts_scores

from .test_push_to_hub import evaluated_copy

REPO_ID = "asterisk-tests/asterisk-tiny"


@pytest.fixture(scope="module")
def folder(tmp_path_factory, tiny_model_dir, data_dir):
    """The tiny model with evaluation/ from train/evaluate.py, plus STS-B scored with the harness's sts_scores."""
    root = tmp_path_factory.mktemp("card")
    folder = evaluated_copy(tiny_model_dir, root, data_dir)
    pairs = pd.read_csv(data_dir / "stsb" / "test.csv").head(200)
    model = AsteriskModel.from_pretrained(folder)
    first = model.encode(pairs["sentence1"].tolist()).numpy()
    second = model.encode(pairs["sentence2"].tolist()).numpy()
    path = folder / "evaluation" / "results.json"
    results = json.loads(path.read_text())
    results["tasks"]["stsb"] = {**sts_scores(first, second, pairs["score"].to_numpy()), "task_type": "sts",
                                "mteb_name": "STSBenchmark"}
    results["averages"] = averages(results["tasks"])
    path.write_text(json.dumps(results, indent=2))
    return folder


@pytest.fixture(scope="module")
def trained_folder(tmp_path_factory, folder):
    """`folder` plus training_info.json from distill.training_info and training_curves.png from its plotter."""
    trained = tmp_path_factory.mktemp("trained") / "model"
    shutil.copytree(folder, trained)
    cfg = DistillConfig(output_dir=str(trained), max_sentences=2400, batch_size=32, max_steps=24)
    accelerator = SimpleNamespace(device=torch.device("cpu"), num_processes=1, mixed_precision="no")
    progress = {"step": 24, "batches": 24, "sentences": 768, "tokens": 13_000, "train_seconds": 754.3,
                "nonfinite_skipped": 0}
    teacher = SimpleNamespace(dim=384, has=np.ones(2400, dtype=bool),
                              description={"name": cfg.teacher, "prompt": "", "dim": 384, "modules": ["Transformer"]})
    info = training_info(cfg, accelerator, CorpusStats(read=927_636, kept=2400), 2200, 200, progress, [0.61234],
                         12.4, 801.0, None, [teacher])
    (trained / "training_info.json").write_text(json.dumps(info, indent=2))
    metrics = trained / "metrics.jsonl"
    rows = [{"step": 8, "loss": 0.9}, {"step": 16, "loss": 0.7}, {"step": 24, "loss": 0.6, "heldout_cosine": 0.61234}]
    metrics.write_text("".join(json.dumps(row) + "\n" for row in rows))
    plot_training_curves(metrics, trained / "training_curves.png")
    metrics.unlink()
    return trained


def test_metadata_is_what_the_hub_expects(folder):
    data = render_model_card(folder, REPO_ID).data
    assert data.library_name == "transformers" and data.pipeline_tag == "feature-extraction"
    assert {"sentence-transformers", "custom_code", "feature-extraction", "untrained", "mteb"} <= set(data.tags)
    assert data.license == "apache-2.0" and data.language == "en"
    assert data.base_model is None  # no training record, no teacher to name


def test_model_index_follows_mteb_and_parses_back(folder):
    results = json.loads((folder / "evaluation" / "results.json").read_text())
    card = render_model_card(folder, REPO_ID)
    name, parsed = model_index_to_eval_results(ModelCard(str(card)).data.to_dict()["model-index"])
    assert name == "asterisk-tiny"
    by_key = {(r.dataset_type, r.metric_type): r for r in parsed}
    sts = results["tasks"]["stsb"]
    spearman = by_key[("mteb/stsbenchmark-sts", "cos_sim_spearman")]
    assert (spearman.task_type, spearman.dataset_name, spearman.dataset_config, spearman.dataset_split) == (
        "STS", "MTEB STSBenchmark", "default", "test")
    assert spearman.metric_value == round(100 * sts["spearman"], 4)  # percent, as MTEB reports
    assert by_key[("mteb/stsbenchmark-sts", "cos_sim_pearson")].metric_value == round(100 * sts["pearson"], 4)
    trec = results["tasks"]["trec_small"]
    accuracy = by_key[("trec_small", "accuracy")]  # a local task: its own name, said to be a local copy
    assert accuracy.task_type == "Classification" and "local copy" in accuracy.dataset_name
    assert accuracy.metric_value == round(100 * trec["accuracy"], 4)
    assert by_key[("trec_small", "f1")].metric_value == round(100 * trec["f1"], 4)
    assert by_key[("trec_small", "main_score")].metric_value == round(100 * trec["main_score"], 4)


def test_mteb_tasks_name_mtebs_hub_dataset():
    results = {"tasks": {"banking77": {"task_type": "classification", "mteb_name": "Banking77Classification",
                                       "accuracy": 0.8004, "f1": 0.79, "main_score": 0.8004}}}
    accuracy = next(r for r in eval_results(results) if r.metric_type == "accuracy")
    assert (accuracy.dataset_type, accuracy.dataset_name, accuracy.metric_value) == (
        "mteb/banking77", "MTEB Banking77Classification", 80.04)


def test_untrained_folder_is_labelled_and_figures_come_from_its_files(folder):
    card = str(render_model_card(folder, REPO_ID))
    body = card.split("\n---\n", 1)[1]
    assert "Untrained checkpoint" in body.split("## Model details")[0]  # prominent: before anything else
    assert "## Training" not in body
    parameters = count_parameters(folder / "model.safetensors")
    assert parameters == AsteriskModel.from_pretrained(folder).num_parameters()
    assert f"| Parameters | {parameters:,} |" in body
    assert "smaller than the paper's model" in body and "14,019,584" in body  # the paper's, computed from its config
    results = json.loads((folder / "evaluation" / "results.json").read_text())
    trec = results["tasks"]["trec_small"]
    assert f"| trec_small | MTEB logReg | **{100 * trec['accuracy']:.2f}** | {100 * trec['accuracy_std']:.2f} |" in body
    assert f"| STSBenchmark | **{100 * results['tasks']['stsb']['spearman']:.2f}** |" in body
    assert "![Main score per task](evaluation/results.png)" in body
    assert f'SentenceTransformer("{REPO_ID}", trust_remote_code=True)' in body
    assert "arxiv.org/abs/2411.05691" in body and "@misc{semenov2024asterisk" in body


def test_trained_folder_reports_its_training_record(trained_folder):
    card = render_model_card(trained_folder, REPO_ID, datasets=["asterisk-tests/corpus"])
    info = json.loads((trained_folder / "training_info.json").read_text())
    body = str(card).split("\n---\n", 1)[1]
    assert "Untrained" not in body and "untrained" not in card.data.tags
    assert card.data.base_model == info["teacher"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert card.data.datasets == ["asterisk-tests/corpus"]
    assert f"| Final held-out cosine to the teacher | {info['final_heldout_cosine']} |" in body
    assert f"| Steps | {info['steps']} ({info['epochs']} epochs, {info['sentences_seen']:,} sentences seen) |" in body
    assert "| Time | 12 min 34 s of training" in body and "13 min 21 s in all" in body
    assert info["hardware"]["cpu"] in body
    assert f"learning rate {info['config']['learning_rate']}, cosine schedule" in body
    assert "`distill_corpus/sentences.tsv.gz` (2,400 texts used of 927,636 read)" in body
    assert "training texts* (not the labels)" in body  # the corpus overlaps evaluation tasks' train splits
    assert "![Training loss and held-out cosine similarity to the teacher](training_curves.png)" in body
    assert f"python train/{info['command']}" in body


def test_folder_without_evaluation_says_so_and_has_no_model_index(tmp_path, tiny_model_dir):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    card = render_model_card(folder)
    assert "model-index" not in card.data.to_dict() and "mteb" not in card.data.tags
    assert "No evaluation results were published" in str(card) and "## Evaluation" not in str(card)
    assert "your-username/asterisk" in str(card)


def test_the_card_names_the_trained_matryoshka_dimensions_only_when_there_are_some(tmp_path, tiny_model_dir):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    assert "Matryoshka" not in str(render_model_card(folder))
    config = json.loads((folder / "config.json").read_text())
    config["matryoshka_dims"] = [config["projection_dim"], 8, 4]
    (folder / "config.json").write_text(json.dumps(config))
    body = str(render_model_card(folder))
    assert f"trained Matryoshka-style to be cut to its first {config['projection_dim']}, 8, 4 dimensions" in body


def test_a_two_teacher_card_keeps_the_first_teacher_as_base_model_and_names_both(tmp_path, trained_folder):
    folder = tmp_path / "model"
    shutil.copytree(trained_folder, folder)
    info = json.loads((folder / "training_info.json").read_text())
    second = {**info["teachers"][0], "name": "/home/user/.cache/asterisk-teachers/nomic-embed-text-v1.5", "dim": 768,
              "prompt": "classification: ", "texts_scored": 40000}
    info["teachers"] = [info["teachers"][0], second]
    (folder / "training_info.json").write_text(json.dumps(info))
    card = render_model_card(folder, REPO_ID)
    body = str(card).split("\n---\n", 1)[1]
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"  # the first teacher, not the last
    assert ("distilled from [sentence-transformers/all-MiniLM-L6-v2](https://huggingface.co/sentence-transformers/"
            "all-MiniLM-L6-v2) and [nomic-ai/nomic-embed-text-v1.5]") in body
    assert "| Teacher 2 | [nomic-ai/nomic-embed-text-v1.5]" in body and "prompt `classification: `" in body
