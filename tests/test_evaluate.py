import json
import os
import shutil
import subprocess
import sys
from collections import Counter, defaultdict

import numpy as np
import pandas as pd
import pytest
import torch

import train.evaluate as evaluate_module
from asterisk_embeddings.saving import save_model_folder
from modeling_asterisk import AsteriskModel
from train.evaluate import evaluate_models
from train.evaluation.classification_protocol import (
    MTEBClassificationProtocol,
    SentEvalKFoldProtocol,
    run_mteb_classification,
    run_senteval_kfold,
    sts_scores,
    undersample_experiments,
)
from train.evaluation.embedders import AsteriskEmbedder, EmbeddingCache, load_embedder
from train.evaluation.fc_head import FCConfig, logreg_scores, stale_settings

from .conftest import REPO_ROOT

# MTEB v1 leaderboard, sentence-transformers/all-MiniLM-L6-v2 (accuracy, %).
PUBLISHED_MINILM = {"banking77": 80.04, "emotion": 40.83, "imdb": 61.76}


def _mteb_v1_reference(labels, samples_per_label, n_experiments, seed=42):
    """MTEB 1.1.0's own loop: global np.random seeded by AbsTask/Evaluator, `_undersample_data` verbatim in spirit."""
    state = np.random.get_state()
    try:
        picks, idxs = [], None
        for _ in range(n_experiments):
            np.random.seed(seed)  # AbsTask.__init__ before the first experiment, Evaluator.__init__ after each
            if idxs is None:
                idxs = np.arange(len(labels))
            np.random.shuffle(idxs)
            counter, chosen = defaultdict(int), []
            for i in idxs:
                if counter[labels[i]] < samples_per_label:
                    chosen.append(i)
                    counter[labels[i]] += 1
            picks.append(chosen)
        return picks
    finally:
        np.random.set_state(state)


@pytest.fixture(scope="module")
def trec_folder(tmp_path_factory, data_dir):
    """A user task folder: a label-stratified slice of real TREC (120 train / 48 test rows, 6 labels)."""
    folder = tmp_path_factory.mktemp("tasks") / "trec_small"
    folder.mkdir()
    train = pd.read_csv(data_dir / "trec" / "train.csv").groupby("label", sort=False).head(20)
    test = pd.read_csv(data_dir / "trec" / "test.csv").groupby("label", sort=False).head(8)
    train[["text", "label"]].to_csv(folder / "train.csv", index=False)
    test[["text", "label"]].to_csv(folder / "test.csv", index=False)
    return folder


@pytest.fixture
def bad_labels_folder(tmp_path):
    folder = tmp_path / "bad_labels"
    folder.mkdir()
    pd.DataFrame({"text": ["a b", "c d", "e f"], "label": [0, 1, 1]}).to_csv(folder / "train.csv", index=False)
    pd.DataFrame({"text": ["g h", "i j"], "label": [0, 2]}).to_csv(folder / "test.csv", index=False)
    return folder


# ------------------------------------------------------------------------------------------- protocol


def test_undersampling_takes_samples_per_label_and_matches_mteb():
    rng = np.random.RandomState(0)
    labels = rng.choice(5, size=300, p=[0.4, 0.3, 0.2, 0.08, 0.02])
    labels[:3] = 4  # label 4 is rare: it has fewer rows than samples_per_label
    experiments = undersample_experiments(labels, samples_per_label=8, n_experiments=10, seed=42)
    available = Counter(labels.tolist())
    for rows in experiments:
        assert len(set(rows.tolist())) == len(rows)
        assert Counter(labels[rows].tolist()) == {label: min(8, n) for label, n in available.items()}
    assert len({tuple(rows) for rows in experiments}) == 10  # each experiment draws a new sample
    assert [r.tolist() for r in experiments] == _mteb_v1_reference(labels, 8, 10)  # same rows, same order


def test_undersampling_is_deterministic_in_the_seed():
    labels = np.repeat(np.arange(4), 50)
    first = undersample_experiments(labels, 8, 10, seed=42)
    again = undersample_experiments(labels, 8, 10, seed=42)
    other = undersample_experiments(labels, 8, 10, seed=7)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_mteb_classification_embeds_only_sampled_rows_and_is_deterministic():
    rng = np.random.RandomState(1)
    centers = rng.randn(3, 16) * 3
    train_labels, test_labels = rng.randint(0, 3, 200), rng.randint(0, 3, 90)
    train_x = centers[train_labels] + rng.randn(200, 16)
    test_x = centers[test_labels] + rng.randn(90, 16)
    calls = []

    def embed_train(rows):
        calls.append(rows)
        return train_x[rows]

    protocol = MTEBClassificationProtocol()
    scores = run_mteb_classification(embed_train, train_labels, test_x, test_labels, protocol)
    assert len(calls) == 1 and len(calls[0]) <= 10 * 3 * 8  # one call, only rows some experiment uses
    assert scores["n_train"] == 24 and scores["n_test"] == 90 and len(scores["scores_per_experiment"]) == 10
    assert scores["accuracy"] > 0.9 and 0 <= scores["f1"] <= 1 and scores["main_score"] == scores["accuracy"]
    assert scores == run_mteb_classification(lambda rows: train_x[rows], train_labels, test_x, test_labels, protocol)


def test_senteval_kfold_and_sts():
    rng = np.random.RandomState(2)
    labels = rng.randint(0, 2, 400)
    x = rng.randn(400, 8) + 2.5 * labels[:, None]
    scores = run_senteval_kfold(x, labels, SentEvalKFoldProtocol(kfold=4, regularization=(0.25, 4.0)))
    assert len(scores["scores_per_fold"]) == 4 and scores["accuracy"] > 0.9
    assert scores["n_train"] + scores["n_test"] == 400 and set(scores["chosen_C"]) <= {0.25, 4.0}
    a = rng.randn(50, 6)
    gold = np.arange(50, dtype=float)
    b = a + (50 - gold)[:, None] * 0.05 * rng.randn(50, 6)  # the closer the pair, the higher its gold score
    result = sts_scores(a, b, gold)
    assert result["main_score"] == result["spearman"] > 0.5 and -1 <= result["pearson"] <= 1


# ------------------------------------------------------------------------------------- embedding cache


def test_embedding_cache_hits_on_rerun_and_misses_after_new_weights(tmp_path, tiny_model_dir, tokenizer):
    folder = tmp_path / "model"
    save_model_folder(AsteriskModel.from_pretrained(tiny_model_dir), tokenizer, folder)
    cache = EmbeddingCache(tmp_path / "cache")
    texts = ["What is a cache?", "Where is it?", "What is a cache?", ""]
    first = cache.embed(AsteriskEmbedder(folder), texts, "demo-test")
    assert (cache.hits, cache.misses) == (0, 3)
    again = cache.embed(AsteriskEmbedder(folder), texts, "demo-test")
    assert (cache.hits, cache.misses) == (4, 3)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(first, AsteriskEmbedder(folder).embed(texts).vectors, atol=1e-6)

    changed = AsteriskModel.from_pretrained(folder)
    with torch.no_grad():
        changed.pooler.projection.bias.add_(1.0)
    save_model_folder(changed, tokenizer, folder, overwrite=True)  # same folder, new weights
    retrained = AsteriskEmbedder(folder)
    retrained_key = retrained.cache_key
    after = cache.embed(retrained, texts, "demo-test")
    assert cache.misses == 6  # nothing reused from the old weights
    assert not np.allclose(after, first)

    # Same weights, another tokenizer.json: the vectors would differ, so the cache must not serve them.
    data = json.loads((folder / "tokenizer.json").read_text())
    data["model"]["vocab"]["What"], data["model"]["vocab"]["Where"] = (data["model"]["vocab"]["Where"],
                                                                       data["model"]["vocab"]["What"])
    (folder / "tokenizer.json").write_text(json.dumps(data))
    swapped = AsteriskEmbedder(folder)
    assert swapped.cache_key != retrained_key
    cache.embed(swapped, texts, "demo-test")
    assert cache.misses == 9


def test_truncation_is_counted_by_the_embedder_not_read_from_warnings(tiny_model_dir):
    long_text = "word " * 100  # over the tiny model's 40 tokens
    embedded = AsteriskEmbedder(tiny_model_dir).embed(["short", long_text, long_text])
    assert embedded.truncated == 2 and embedded.vectors.shape == (3, 24)
    teacher = load_embedder("teacher", max_length=16)
    assert teacher.embed(["short", long_text]).truncated == 1


def test_chunked_long_texts_are_their_own_cache_entry(tmp_path, tiny_model_dir):
    """--long_texts chunk embeds long texts differently, so it must neither share cache rows nor results."""
    long_text = " ".join(f"word{i}" for i in range(400))  # far over the tiny model's 40 tokens
    texts = ["short one", long_text]
    cache = EmbeddingCache(tmp_path / "cache")
    truncating, chunking = AsteriskEmbedder(tiny_model_dir), load_embedder(str(tiny_model_dir), long_texts="chunk")
    assert truncating.cache_key != chunking.cache_key
    assert chunking.describe()["long_texts"] == "chunk" and "long_texts" not in truncating.describe()
    plain = cache.embed(truncating, texts, "demo-test")
    chunked = cache.embed(chunking, texts, "demo-test")
    assert cache.hits == 0 and cache.misses == 4
    np.testing.assert_allclose(plain[0], chunked[0], atol=1e-6)
    assert not np.allclose(plain[1], chunked[1], atol=1e-3)
    with pytest.raises(ValueError, match="long_texts must be"):
        AsteriskEmbedder(tiny_model_dir, long_texts="mean")


def test_wordllama_caps_batches_by_characters():
    embedder = load_embedder("wordllama")
    texts = ["short", "a much longer text " * 30, "", "mid length text here", "x" * 300]
    expected = embedder.embed(texts).vectors
    embedder.max_batch_chars = 40  # forces one text per batch for the long ones
    np.testing.assert_allclose(embedder.embed(texts).vectors, expected, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(expected[[0, 1, 3, 4]], axis=1), 1.0, atol=1e-5)
    assert np.all(expected[2] == 0)  # the empty text


def test_not_an_embedding_model_is_named(tmp_path, tiny_model_dir):
    with pytest.raises(ValueError, match=r"is not an embedding model: it has no config\.json"):
        load_embedder(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "asterisk"}))
    with pytest.raises(ValueError, match=r"is not an embedding model: it has no weights"):
        load_embedder(str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"'no/such/folder' is neither 'teacher', 'wordllama' nor"):
        load_embedder("no/such/folder")
    with pytest.raises(ValueError, match=r"max_length must be in \[1, 40\]"):
        load_embedder(str(tiny_model_dir), max_length=41)


# ------------------------------------------------------------------------------------- the entry point


def test_cli_writes_the_interface_json(tmp_path, tiny_model_dir, trec_folder):
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "train/evaluate.py", "--model", str(tiny_model_dir), "--tasks", str(trec_folder),
         "--output_dir", str(out), "--cache_dir", str(tmp_path / "cache")],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert {"model", "protocol", "tasks"} <= set(results)
    task = results["tasks"]["trec_small"]
    assert 0 <= task["accuracy"] <= 1 and 0 <= task["f1"] <= 1 and task["main_score"] == task["accuracy"]
    assert (task["n_train"], task["n_test"], task["task_type"]) == (48, 48, "classification")
    assert results["kind"] == "asterisk" and results["dimensions"] == 24 and results["max_length"] == 40
    assert len(results["weights_sha256"]) == 64
    protocol = results["protocol"]["classification"]
    assert (protocol["n_experiments"], protocol["samples_per_label"], protocol["max_iter"], protocol["seed"]) == (
        10, 8, 100, 42)
    assert "mteb 1.1.0" in protocol["version_followed"]
    assert "fc" not in task
    assert (out / "results.md").is_file() and (out / "results.png").stat().st_size > 1000


def test_failing_task_keeps_the_others_and_rerun_skips_finished(tmp_path, tiny_model_dir, trec_folder,
                                                                 bad_labels_folder, monkeypatch):
    out, cache = tmp_path / "out", tmp_path / "cache"
    tasks = [str(trec_folder), str(bad_labels_folder)]
    with pytest.raises(evaluate_module.EvaluationError, match=r"bad_labels.*label sets of train .* differ"):
        evaluate_models([str(tiny_model_dir)], tasks, out, cache_dir=cache, raise_on_error=True)
    written = json.loads((out / "results.json").read_text())
    assert list(written["tasks"]) == ["trec_small"]
    assert "only in test ['2']" in written["errors"]["bad_labels"]

    pd.DataFrame({"text": ["g h", "i j"], "label": [0, 1]}).to_csv(bad_labels_folder / "test.csv", index=False)
    loaded = []
    real_load = evaluate_module.load_task
    monkeypatch.setattr(evaluate_module, "load_task", lambda spec, data_dir=None: loaded.append(spec.name)
                        or real_load(spec, data_dir))
    results = evaluate_models([str(tiny_model_dir)], tasks, out, cache_dir=cache)[tiny_model_dir.name]
    assert loaded == ["bad_labels"]  # the finished task was not even read again
    assert results["tasks"]["trec_small"] == written["tasks"]["trec_small"]
    assert set(results["tasks"]) == {"trec_small", "bad_labels"} and not results["errors"]


def test_rerun_refuses_results_of_other_weights(tmp_path, tiny_model_dir, trec_folder, tokenizer):
    out = tmp_path / "out"
    evaluate_models([str(tiny_model_dir)], str(trec_folder), out, cache_dir=tmp_path / "cache")
    other = tmp_path / "other"
    torch.manual_seed(1)
    model = AsteriskModel.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        model.pooler.projection.weight.mul_(2)
    save_model_folder(model, tokenizer, other)
    with pytest.raises(ValueError, match=r"weights_sha256"):
        evaluate_models([str(other)], str(trec_folder), out, cache_dir=tmp_path / "cache")


def test_several_models_compare_on_the_same_texts_with_fc(tmp_path, tiny_model_dir, trec_folder):
    out = tmp_path / "out"
    fc_config = FCConfig(low_data_samples=30, low_data_epochs=1, full_epochs=1, batch_size=16)
    by_label = evaluate_models([f"tiny={tiny_model_dir}", "wordllama"], str(trec_folder), out,
                               cache_dir=tmp_path / "cache", fc=True, fc_config=fc_config)
    assert set(by_label) == {"tiny", "wordllama"}
    for label in by_label:
        results = json.loads((out / label / "results.json").read_text())
        assert results["tasks"]["trec_small"]["n_test"] == 48
    tiny_task = by_label["tiny"]["tasks"]["trec_small"]
    assert set(tiny_task["fc"]) == {"logreg_30", "logreg_full", "frozen_30", "finetune_30", "lpft_30", "selected_30",
                                    "frozen_full", "finetune_full"}
    assert all(0 <= acc <= 1 for acc in tiny_task["fc"].values())
    assert tiny_task["fc_details"]["frozen_30"]["n_train"] == 30
    # Asterisk + FC: the recipe chosen by cross-validation on the 30 rows, scored by that recipe's own test run
    selected = tiny_task["fc_details"]["selected_30"]
    assert set(selected["cv_accuracy"]) == {"frozen", "finetune", "lpft"} and selected["folds"] == 3
    assert selected["choice"] == max(selected["cv_accuracy"], key=selected["cv_accuracy"].get)
    assert selected["setting"] == f"{selected['choice']}_30"
    assert tiny_task["fc"]["selected_30"] == tiny_task["fc"][selected["setting"]]
    static_task = by_label["wordllama"]["tasks"]["trec_small"]
    assert set(static_task["fc"]) == {"logreg_30", "logreg_full"}  # the FC head trains Asterisk folders only
    # the baseline sees exactly the FC head's rows: logistic regression on them, by hand, gives the same score
    from train.evaluation.embedders import load_embedder
    from train.evaluation.fc_head import logreg_scores, low_data_rows
    from train.evaluation.tasks import load_task, resolve_tasks

    data = load_task(resolve_tasks(str(trec_folder))[0])
    rows = low_data_rows(len(data.train_texts), 30, fc_config.seed)
    embedder = load_embedder("wordllama")
    by_hand = logreg_scores(embedder.embed([data.train_texts[i] for i in rows]).vectors, data.train_labels[rows],
                            embedder.embed(data.test_texts).vectors, data.test_labels)
    assert static_task["fc"]["logreg_30"] == pytest.approx(by_hand["accuracy"])
    assert static_task["fc_details"]["logreg_30"]["n_train"] == 30
    assert by_label["wordllama"]["kind"] == "static" and by_label["wordllama"]["dimensions"] == 256
    comparison = json.loads((out / "comparison.json").read_text())
    assert [m["label"] for m in comparison["models"]] == ["tiny", "wordllama"]
    assert "| trec_small |" in (out / "comparison.md").read_text()
    assert (out / "comparison.png").stat().st_size > 1000


# ------------------------------------------------------------------------------- reproduction (slow)


@pytest.mark.slow
@pytest.mark.parametrize("task", [
    "banking77",
    "emotion",
    pytest.param("imdb", marks=pytest.mark.xfail(strict=False, reason=(
        "measured 62.90: the offline IMDB copy lists train reviews by file name, mteb/imdb in the tar archive's "
        "order, so each experiment draws 16 other reviews; 20 other row orders score 61.17 +- 0.63 "
        "(59.93-62.53), see docs/evaluation.md"))),
])
def test_reproduces_published_minilm_scores(task, tmp_path):
    """all-MiniLM-L6-v2 under MTEB v1's protocol within 1 point of the leaderboard (Banking77, Emotion, IMDB).

    Uses the repository's embedding cache (.cache/embeddings): the first run embeds IMDB's 25,000 test
    reviews with the teacher (about 50 minutes on a busy 2-core machine), later runs take seconds.
    """
    results = evaluate_models(["teacher"], task, tmp_path)["all-MiniLM-L6-v2"]
    assert results["max_length"] == 256 and results["normalized"]
    measured, published = 100 * results["tasks"][task]["accuracy"], PUBLISHED_MINILM[task]
    assert abs(measured - published) <= 1.0, f"{task}: measured {measured:.2f}, published {published}"


def test_fc_on_a_senteval_task_uses_one_seeded_stratified_holdout_split(tmp_path, tiny_model_dir):
    """MR, CR, SUBJ and MPQA have no test split: FC (and the LR baseline on the same rows) get a held-out one."""
    from train.evaluation.fc_head import holdout_split, low_data_rows
    from train.evaluation.tasks import REGISTRY, load_task

    data = load_task(REGISTRY["cr"])
    split = holdout_split(data, 0.2, seed=42)
    n = len(data.texts)
    assert len(split.test_texts) == int(np.ceil(0.2 * n)) and len(split.train_texts) + len(split.test_texts) == n
    assert Counter(split.train_texts + split.test_texts) == Counter(data.texts)  # every row once, none twice
    for label in range(len(data.label_names)):  # stratified: each label's share is the same in both parts
        assert abs(np.mean(split.test_labels == label) - np.mean(data.labels == label)) < 2 / len(split.test_labels)
    assert holdout_split(data, 0.2, seed=42).test_texts == split.test_texts
    assert holdout_split(data, 0.2, seed=7).test_texts != split.test_texts
    with pytest.raises(ValueError, match="kfold_test_fraction must be between 0 and 1, got 1.0"):
        FCConfig(kfold_test_fraction=1.0)

    fc_config = FCConfig(low_data_samples=30, low_data_epochs=1, full_epochs=0, batch_size=16, selection_folds=2)
    results = evaluate_models([str(tiny_model_dir)], "cr", tmp_path / "out", cache_dir=tmp_path / "cache", fc=True,
                              fc_config=fc_config)
    task = results[next(iter(results))]["tasks"]["cr"]
    assert "accuracy" in task  # the k-fold score is still there
    assert set(task["fc"]) == {"logreg_30", "frozen_30", "finetune_30", "lpft_30", "selected_30"}
    assert task["fc_details"]["finetune_30"]["n_test"] == len(split.test_texts)
    assert task["fc_details"]["frozen_30"]["n_train"] == 30
    embedder = load_embedder(str(tiny_model_dir))
    rows = low_data_rows(len(split.train_texts), 30, fc_config.seed)
    by_hand = logreg_scores(embedder.embed([split.train_texts[i] for i in rows]).vectors, split.train_labels[rows],
                            embedder.embed(split.test_texts).vectors, split.test_labels)
    assert task["fc"]["logreg_30"] == pytest.approx(by_hand["accuracy"])


def test_fc_scores_survive_new_setting_names_but_not_new_hyper_parameters(tmp_path, trec_folder):
    """A harness that adds FC settings keeps the finished ones; other FC hyper-parameters make them stale."""
    out, cache = tmp_path / "out", tmp_path / "cache"
    config = FCConfig(low_data_samples=30, full_epochs=0)
    evaluate_models(["wordllama"], str(trec_folder), out, cache_dir=cache, fc=True, fc_config=config)
    path = out / "results.json"
    written = json.loads(path.read_text())
    measured = written["tasks"]["trec_small"]["fc"]["logreg_30"]
    written["tasks"]["trec_small"]["fc"]["logreg_30"] = 0.123  # a marker: recomputing would replace it
    written["protocol"]["fc"]["settings"] = []  # as an older harness with fewer settings wrote it
    path.write_text(json.dumps(written))
    evaluate_models(["wordllama"], str(trec_folder), out, cache_dir=cache, fc=True, fc_config=config)
    assert json.loads(path.read_text())["tasks"]["trec_small"]["fc"]["logreg_30"] == 0.123
    written = json.loads(path.read_text())
    written["protocol"]["fc"]["seed"] = 7  # scores of another low-data sample
    path.write_text(json.dumps(written))
    evaluate_models(["wordllama"], str(trec_folder), out, cache_dir=cache, fc=True, fc_config=config)
    assert json.loads(path.read_text())["tasks"]["trec_small"]["fc"]["logreg_30"] == pytest.approx(measured)


def test_a_low_data_fc_run_extends_to_full_data_without_redoing_the_low_data_settings(tmp_path, trec_folder):
    """`--fc_full_epochs 0` first, the default later: the 1,000-row scores stay, the full-data ones are added."""
    out, cache = tmp_path / "out", tmp_path / "cache"
    evaluate_models(["wordllama"], str(trec_folder), out, cache_dir=cache, fc=True,
                    fc_config=FCConfig(low_data_samples=30, full_epochs=0))
    path = out / "results.json"
    written = json.loads(path.read_text())
    assert set(written["tasks"]["trec_small"]["fc"]) == {"logreg_30"}
    written["tasks"]["trec_small"]["fc"]["logreg_30"] = 0.123  # a marker: recomputing would replace it
    path.write_text(json.dumps(written))
    evaluate_models(["wordllama"], str(trec_folder), out, cache_dir=cache, fc=True,
                    fc_config=FCConfig(low_data_samples=30, full_epochs=2))
    extended = json.loads(path.read_text())
    assert extended["tasks"]["trec_small"]["fc"]["logreg_30"] == 0.123
    assert 0 < extended["tasks"]["trec_small"]["fc"]["logreg_full"] <= 1
    assert extended["protocol"]["fc"]["full_epochs"] == 2


def test_only_a_full_epochs_change_keeps_the_low_data_fc_scores():
    recorded = ["logreg_1000", "selected_1000", "logreg_full", "finetune_full"]
    base = {"seed": 42, "full_epochs": 0, "low_data_epochs": 10}
    assert stale_settings(recorded, base, base) == []
    assert stale_settings(recorded, base, {**base, "full_epochs": 2}) == ["logreg_full", "finetune_full"]
    assert stale_settings(recorded, base, {**base, "full_epochs": 2, "seed": 7}) == recorded
    assert stale_settings(recorded, base, {**base, "low_data_epochs": 5}) == recorded
    assert stale_settings(recorded, {}, base) == recorded  # a file from a run without FC settings


def test_fc_full_epochs_zero_runs_the_low_data_settings_only():
    assert FCConfig(full_epochs=0).settings() == ("logreg_1000", "frozen_1000", "finetune_1000", "lpft_1000",
                                                  "selected_1000")
    assert FCConfig(full_epochs=0).settings(trainable=False) == ("logreg_1000",)
    assert FCConfig(low_data_samples=500).settings() == ("logreg_500", "logreg_full", "frozen_500", "finetune_500",
                                                         "lpft_500", "selected_500", "frozen_full", "finetune_full")
    with pytest.raises(ValueError, match="selection_folds must be at least 2, got 1"):
        FCConfig(selection_folds=1)


def test_fc_recipe_selection_reads_the_training_rows_only(tiny_model_dir, trec_folder):
    """Asterisk + FC picks its recipe without the test split: another test split leaves the choice unchanged."""
    from train.evaluation.fc_head import fit_and_predict, select_recipe
    from train.evaluation.tasks import ClassificationData, load_task, resolve_tasks

    data = load_task(resolve_tasks(str(trec_folder))[0])
    config = FCConfig(low_data_samples=30, low_data_epochs=1, batch_size=16, selection_folds=2)
    selection = select_recipe(tiny_model_dir, data, config)
    other_test = ClassificationData(train_texts=data.train_texts, train_labels=data.train_labels,
                                    test_texts=["nothing like the real test rows"] * 3,
                                    test_labels=np.zeros(3, dtype=np.int64), label_names=data.label_names)
    again = select_recipe(tiny_model_dir, other_test, config)
    assert again["choice"] == selection["choice"] and again["cv_accuracy"] == selection["cv_accuracy"]
    assert all(0 <= a <= 1 for a in selection["cv_accuracy"].values())
    # a different low-data sample (another seed) is what changes the cross-validation
    reseeded = select_recipe(tiny_model_dir, data, FCConfig(low_data_samples=30, low_data_epochs=1, batch_size=16,
                                                            selection_folds=2, seed=7))
    assert reseeded["cv_accuracy"] != selection["cv_accuracy"]
    with pytest.raises(ValueError, match="Unknown FC recipe 'linear'"):
        fit_and_predict(tiny_model_dir, data.train_texts[:4], data.train_labels[:4], data.test_texts[:2],
                        data.label_names, "linear", 1, config)


def test_model_options_reach_one_model(tiny_model_dir, tmp_path):
    from asterisk_embeddings.onnx_export import export_onnx
    from train.evaluate import parse_model_options

    assert parse_model_options(["a:max_length=16,truncate_dim=8", "b:dtype=bfloat16"]) == {
        "a": {"max_length": 16, "truncate_dim": 8}, "b": {"dtype": "bfloat16"}}
    for bad, message in (("a", "takes LABEL:key=value"), ("a:size=3", "unknown option 'size'"),
                         ("a:max_length=x", "max_length takes an integer")):
        with pytest.raises(ValueError, match=message):
            parse_model_options([bad])
    texts = ["a short text", "another, longer text to embed"]
    cut = load_embedder(str(tiny_model_dir), truncate_dim=8)
    full = load_embedder(str(tiny_model_dir))
    assert cut.dimensions == 8 and cut.cache_key != full.cache_key and cut.describe()["truncate_dim"] == 8
    expected = AsteriskModel.from_pretrained(tiny_model_dir).encode(texts, truncate_dim=8).numpy()
    np.testing.assert_allclose(cut.embed(texts).vectors, expected, atol=1e-6)
    folder = tmp_path / "with_onnx"
    shutil.copytree(tiny_model_dir, folder)
    export_onnx(folder)
    int8 = load_embedder(str(folder / "onnx" / "model_qint8.onnx"))
    assert int8.kind == "onnx" and int8.dimensions == 24
    assert (int8.embed(texts).vectors * full.embed(texts).vectors).sum(1).min() > 0.9
    with pytest.raises(ValueError, match="unknown|no --model"):
        evaluate_models([f"x={tiny_model_dir}"], "trec", tmp_path / "out", model_options={"y": {"max_length": 8}})
