import dataclasses
import logging
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score

from train.evaluation.classification_protocol import MTEBClassificationProtocol, run_mteb_classification
from train.evaluation.tasks import REGISTRY, ClassificationData, TaskSpec, folder_task, load_task, resolve_tasks


def _write_task(folder, train: pd.DataFrame, test: pd.DataFrame):
    folder.mkdir(parents=True, exist_ok=True)
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    return folder


def test_every_registry_file_exists(data_dir):
    for spec in REGISTRY.values():
        for entries in spec.files.values():
            for entry in [entries] if isinstance(entries, str) else entries:
                assert (data_dir / entry).is_file(), f"{spec.name}: {entry} missing from {data_dir}"


def test_resolve_all_and_lists():
    assert [s.name for s in resolve_tasks("all")] == list(REGISTRY)
    assert [s.name for s in resolve_tasks("emotion, banking77")] == ["emotion", "banking77"]
    assert REGISTRY["emotion"].samples_per_label == 16  # MTEB's EmotionClassification metadata
    assert REGISTRY["banking77"].samples_per_label is None  # MTEB default (8)


def test_unknown_task_name_is_named():
    with pytest.raises(ValueError, match=r"Unknown task 'bankin77'.*banking77"):
        resolve_tasks("banking77,bankin77")


def test_folder_without_test_csv_is_named(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    pd.DataFrame({"text": ["a"], "label": [0]}).to_csv(folder / "train.csv", index=False)
    with pytest.raises(FileNotFoundError, match=r"no test\.csv"):
        resolve_tasks(str(folder))


def test_missing_data_file_is_named(tmp_path):
    files = {"train": "nope/train.csv", "test": "nope/test.csv"}
    spec = TaskSpec(name="ghost", task_type="classification", files=files)
    with pytest.raises(FileNotFoundError, match=r"ghost.*nope/train\.csv does not exist"):
        load_task(spec, tmp_path)


def test_missing_label_column_is_named(tmp_path):
    folder = _write_task(tmp_path / "nolabel", pd.DataFrame({"text": ["a", "b"], "category": [0, 1]}),
                         pd.DataFrame({"text": ["c"], "label": [0]}))
    with pytest.raises(ValueError, match=r"train\.csv has no column 'label'.*category"):
        load_task(folder_task(folder))


def test_label_sets_that_differ_are_named(tmp_path):
    folder = _write_task(tmp_path / "drift", pd.DataFrame({"text": ["a", "b", "c"], "label": ["x", "y", "y"]}),
                         pd.DataFrame({"text": ["d", "e"], "label": ["x", "z"]}))
    with pytest.raises(ValueError, match=r"label sets of train .* differ: only in train \['y'\], only in test \['z'\]"):
        load_task(folder_task(folder))


def test_user_folder_task_keeps_order_and_string_labels(tmp_path):
    folder = _write_task(
        tmp_path / "strings",
        pd.DataFrame({"text": ["NA", "", "b", "c"], "label": ["pos", "neg", "pos", "neg"]}),
        pd.DataFrame({"text": ["d", "e"], "label": ["neg", "pos"]}),
    )
    data = load_task(folder_task(folder))
    assert isinstance(data, ClassificationData)
    assert data.train_texts == ["NA", "", "b", "c"]  # "NA" and empty fields stay text
    assert data.label_names == ["neg", "pos"]
    np.testing.assert_array_equal(data.train_labels, [1, 0, 1, 0])
    np.testing.assert_array_equal(data.test_labels, [0, 1])


def test_real_tasks_load(data_dir):
    emotion = load_task(REGISTRY["emotion"], data_dir)
    assert (len(emotion.train_texts), len(emotion.test_texts)) == (16000, 2000)
    assert emotion.label_names == ["sadness", "joy", "love", "anger", "fear", "surprise"]  # dair-ai order
    sick = load_task(REGISTRY["sickr"], data_dir)
    assert len(sick.scores) == 9927  # MTEB's SICK-R: all of SICK
    cr = load_task(REGISTRY["cr"], data_dir)
    assert len(cr.texts) == 3775 and set(np.unique(cr.labels)) == {0, 1}


def test_a_datasets_loadable_task_is_one_entry(tmp_path, data_dir):
    files = {"train": str(data_dir / "trec" / "train.csv"), "test": str(data_dir / "trec" / "test.csv")}
    spec = TaskSpec(name="trec_hf", task_type="classification", hf_dataset={"path": "csv", "data_files": files,
                                                                               "cache_dir": str(tmp_path)})
    data = load_task(spec)
    assert (len(data.train_texts), len(data.test_texts), len(data.label_names)) == (5452, 500, 6)


# ------------------------------------------------------------------ reliability (docs/reliability.md)


def test_labels_only_in_train_are_scored_as_mteb_does(tmp_path):
    """Intent datasets have test splits that lack some training labels; MTEB scores them, so do we."""
    folder = _write_task(tmp_path / "intents",
                         pd.DataFrame({"text": ["a", "b", "c", "d"], "label": ["pay", "card", "lost", "card"]}),
                         pd.DataFrame({"text": ["e", "f"], "label": ["pay", "card"]}))
    data = load_task(folder_task(folder))
    assert data.label_names == ["card", "lost", "pay"]  # every training label, "lost" included
    np.testing.assert_array_equal(data.train_labels, [2, 0, 1, 0])
    np.testing.assert_array_equal(data.test_labels, [2, 0])


def test_test_labels_unseen_in_training_are_refused_naming_both_files(tmp_path):
    folder = _write_task(tmp_path / "unseen", pd.DataFrame({"text": ["a", "b", "c"], "label": ["x", "y", "y"]}),
                         pd.DataFrame({"text": ["d", "e"], "label": ["x", "new"]}))
    message = (r"unseen/train\.csv\) and test \(.*unseen/test\.csv\) differ: only in train \['y'\], "
               r"only in test \['new'\]\. Test labels that train lacks cannot be predicted")
    with pytest.raises(ValueError, match=message):
        load_task(folder_task(folder))


def _three_row_task(tmp_path):
    return _write_task(tmp_path / "tiny3", pd.DataFrame({"text": ["good", "bad", "great"], "label": [1, 0, 1]}),
                       pd.DataFrame({"text": ["nice", "awful", "fine", "poor"], "label": [1, 0, 1, 0]}))


def test_too_few_training_rows_warn_how_many_are_used(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="train.evaluation.tasks"):
        data = load_task(folder_task(_three_row_task(tmp_path)))
    assert len(data.train_texts) == 3
    message = " ".join(record.getMessage() for record in caplog.records)
    assert re.search(r"'tiny3': .*tiny3/train\.csv has fewer than samples_per_label=8 training rows for 2 of 2 "
                     r"labels \(0: 1, 1: 2\); as in MTEB, each experiment trains on the rows there are: 3 rows "
                     r"instead of 16 \(so every experiment trains on the same rows\)", message), message

    caplog.clear()
    folder = _write_task(tmp_path / "short", pd.DataFrame({"text": list("abcdefghijkl"), "label": [0] * 10 + [1] * 2}),
                         pd.DataFrame({"text": ["m", "n"], "label": [0, 1]}))
    spec = dataclasses.replace(folder_task(folder), samples_per_label=4)
    with caplog.at_level(logging.WARNING, logger="train.evaluation.tasks"):
        load_task(spec)
    assert "samples_per_label=4 training rows for 1 of 2 labels (1: 2)" in caplog.text
    assert "6 rows instead of 8." in caplog.text

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="train.evaluation.tasks"):
        load_task(dataclasses.replace(spec, samples_per_label=2))
    assert not caplog.records  # enough rows: no warning


def test_too_few_training_rows_still_get_the_correct_mteb_score(tmp_path):
    """MTEB's undersampling takes the rows there are; the score is a real logistic regression on them, not 0.0."""
    data = load_task(folder_task(_three_row_task(tmp_path)))
    rng = np.random.RandomState(0)
    train_vectors = np.array([[2.0, 0.1], [-2.0, 0.0], [1.5, -0.2]]) + 0.01 * rng.randn(3, 2)
    test_vectors = np.array([[1.8, 0.0], [-1.9, 0.1], [0.2, 0.3], [0.1, -0.4]])
    protocol = MTEBClassificationProtocol()
    scores = run_mteb_classification(lambda rows: train_vectors[rows], data.train_labels, test_vectors,
                                     data.test_labels, protocol)
    assert scores["n_train"] == 3 and scores["n_train_texts_embedded"] == 3
    expected = LogisticRegression(random_state=42, max_iter=100).fit(train_vectors, data.train_labels)
    assert scores["accuracy"] == pytest.approx(accuracy_score(data.test_labels, expected.predict(test_vectors)))
    assert scores["accuracy"] > 0 and scores["accuracy_std"] == 0.0  # ten identical experiments
