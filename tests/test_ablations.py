"""benchmarks/ablations.py: references read from an earlier harness run are used as such, and say so."""

import json

import pytest

from benchmarks import ablations


def test_a_recorded_reference_comes_from_its_file_and_is_marked(tmp_path, monkeypatch):
    comparison = {"models": [
        {"label": "other", "averages": {"classification": 0.5}, "tasks": {}},
        {"label": "teacher-x", "averages": {"classification": 0.7, "sts": 0.8},
         "tasks": {"trec": {"main_score": 0.6}, "stsb": {"main_score": 0.8}}},
    ]}
    (tmp_path / "comparison.json").write_text(json.dumps(comparison))
    monkeypatch.setattr(ablations, "REPO", tmp_path)
    reference = {"label": "teacher-x", "recorded": "comparison.json"}
    assert ablations.recorded_results(reference)["averages"]["classification"] == 0.7
    with pytest.raises(SystemExit, match="no model labelled 'missing'"):
        ablations.recorded_results({"label": "missing", "recorded": "comparison.json"})

    rows = [{"variant": "v", "teachers": [{"name": "t", "texts": 40000}], "heldout_cosine": 0.85,
             "classification_average": 0.62, "sts_average": 0.66, "wins": 0, "n_classification": 1,
             "train_seconds": 300, "per_task": {"trec": 0.55, "stsb": 0.66}}]
    references = [{"label": "teacher-x", "recorded": "comparison.json", "classification_average": 0.7,
                   "sts_average": 0.8, "per_task": {"trec": 0.6, "stsb": 0.8}}]
    markdown = ablations.table(rows, references)
    assert "| *teacher-x* (recorded comparison.json) | - | - | 70.00 | 80.00 |" in markdown
    assert "| v | t (40,000) | 0.8500 | 62.00 | 66.00 | 0/1 | 5.0 min | 55.00 | 66.00 |" in markdown


def test_every_preset_parses_and_the_release_preset_is_the_study_row_it_names():
    from dataclasses import asdict

    import yaml

    from train.distill import BOOKKEEPING_KEYS, DistillConfig
    from train.distillation.config import parse_config

    for preset in ("tiny", "cpu", "paper", "release"):
        parse_config(DistillConfig, ["--config", preset])
    spec = yaml.safe_load((ablations.REPO / "benchmarks" / "study_teachers.yaml").read_text())
    row = next(v for v in spec["variants"] if v["name"] == "minilm all + nomic 200k, 7 epochs")
    args = [a for key, value in {**spec["common"], **row["args"]}.items()
            for a in (f"--{key}", json.dumps(value) if isinstance(value, (list, dict)) else str(value))]
    study = parse_config(DistillConfig, ["--config", spec["base"], *args])
    release = parse_config(DistillConfig, ["--config", "release"])

    def decisive(cfg):  # what decides the trained weights: the run settings and each teacher's identity and share
        settings = {k: v for k, v in asdict(cfg).items() if k not in {*BOOKKEEPING_KEYS, "extra_teachers", "config"}}
        teachers = [({**asdict(t), "batch_size": None}, texts, weight) for t, texts, weight in cfg.teachers()]
        return settings, teachers

    assert decisive(release) == decisive(study)


def test_the_release_beside_its_teachers_compares_the_same_tasks(tmp_path):
    """The chart restricts every model to the tasks the strong teacher was scored on, averages included."""
    from benchmarks import release_vs_teachers

    def results(label, scores):
        tasks = {name: {"task_type": "sts" if name == "stsb" else "classification", "main_score": score}
                 for name, score in scores.items()}
        return {"label": label, "kind": "x", "parameters": 1, "dimensions": 2, "tasks": tasks,
                "averages": release_vs_teachers.averages(tasks)}

    release = results("asterisk", {"trec": 0.5, "imdb": 0.9, "stsb": 0.7})
    minilm = {"models": [results("all-MiniLM-L6-v2", {"trec": 0.6, "imdb": 0.1, "stsb": 0.8})]}
    teacher = results("nomic", {"trec": 0.7, "stsb": 0.9})
    for name, data in (("release.json", release), ("minilm.json", minilm), ("teacher.json", teacher)):
        (tmp_path / name).write_text(json.dumps(data))
    assert release["averages"]["classification"] == pytest.approx(0.7)
    assert release_vs_teachers.on_tasks(release, ["trec", "stsb"])["averages"]["classification"] == 0.5

    out = tmp_path / "chart.png"
    release_vs_teachers.main(["--release", str(tmp_path / "release.json"), "--minilm", str(tmp_path / "minilm.json"),
                              "--teacher", str(tmp_path / "teacher.json"), "--out", str(out)])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit, match="no model labelled 'nomic'"):
        release_vs_teachers.main(["--teacher", str(tmp_path / "release.json"), "--out", str(out)])
