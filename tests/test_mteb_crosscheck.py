"""benchmarks/mteb_crosscheck.py: the mteb library itself and the harness agree on a slice of real Banking77.

Skipped unless the optional extra `crosscheck` (mteb) is installed.
"""

import json

import pandas as pd
import pytest

pytest.importorskip("mteb")

from benchmarks.mteb_crosscheck import crosscheck, local_mteb_task, mteb_sampled_rows  # noqa: E402
from train.evaluation.classification_protocol import undersample_experiments  # noqa: E402


@pytest.fixture(scope="module")
def banking_slice(tmp_path_factory, data_dir):
    """10 train rows of each of 3 labels and 20 test rows of those labels, in file order, as a task folder."""
    folder = tmp_path_factory.mktemp("slice") / "banking77_slice"
    folder.mkdir()
    train = pd.read_csv(data_dir / "banking77" / "train.csv", dtype=str, keep_default_na=False)
    test = pd.read_csv(data_dir / "banking77" / "test.csv", dtype=str, keep_default_na=False)
    labels = sorted(train["label"].unique(), key=int)[:3]
    train = pd.concat([train[train["label"] == label].head(10) for label in labels]).sort_index()
    test = test[test["label"].isin(labels)].head(20)
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    return folder


def test_the_adapter_reads_local_files_and_never_the_hub(banking_slice, monkeypatch):
    from mteb.abstasks.abstask import AbsTask

    def no_hub(*args, **kwargs):
        raise AssertionError("load_data (the Hub) was called")

    monkeypatch.setattr(AbsTask, "load_data", no_hub)
    task = local_mteb_task("Banking77Classification", banking_slice, "v1")
    assert task.data_loaded and set(task.dataset) == {"train", "test"}
    assert len(task.dataset["train"]) == 30 and len(task.dataset["test"]) == 20
    assert task.dataset["train"].features["label"].dtype == "int64"
    assert task.evaluator_model.get_params()["n_jobs"] == -1 and task.evaluator_model.get_params()["max_iter"] == 100
    # mteb's undersampling picks exactly the rows the harness picks (MTEB v1's seeded, cumulative shuffle)
    labels = pd.read_csv(banking_slice / "train.csv")["label"].to_numpy()
    harness_rows = [r.tolist() for r in undersample_experiments(labels, 8, 10, 42)]
    assert mteb_sampled_rows(task) == harness_rows


def test_mteb_and_the_harness_agree_on_a_slice(banking_slice, tiny_model_dir, tmp_path, one_torch_thread):
    report = crosscheck([str(tiny_model_dir)], ["tiny"], {"slice": ("Banking77Classification", banking_slice)},
                        tmp_path / "out", harness_tasks=str(banking_slice))
    (row,) = report["rows"]
    assert row["harness_n_test"] == 20 and row["harness_samples_per_label"] == 8
    assert row["same_sampled_rows"]
    for variant in ("v1", "default"):
        assert abs(row[f"mteb_{variant}"] - row["harness"]) <= 0.005, row
        assert len(row[f"mteb_{variant}_per_experiment"]) == len(row["harness_per_experiment"]) == 10
    assert report["mteb_protocol"]["slice"]["test_rows_evaluated"] == 20
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    assert written["rows"][0]["harness"] == row["harness"]
    assert "| tiny | slice |" in (tmp_path / "out" / "results.md").read_text()
