import numpy as np
import pandas as pd
import pytest

from train.tasks import REGISTRY, ClassificationData, TaskSpec, folder_task, load_task, resolve_tasks


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
