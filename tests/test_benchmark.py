"""benchmarks/encode.py: a smoke run of the CLI on tiny settings (no timing is asserted), data and GPU path."""

import json
import os
import subprocess
import sys

import pytest
import torch

from benchmarks.encode import METRICS, AsteriskTorch, load_sentences, measure_pretokenized

from .conftest import REPO_ROOT

ROW_KEYS = {"model", "setting", "data", "batch_size", "mean_tokens", "tokenize_s", "tokenize_share", *METRICS}


def test_sentences_are_real_short_and_long_texts(data_dir):
    texts = load_sentences(data_dir, num_short=50, num_long=20)
    assert len(texts["short"]) == len(set(texts["short"])) == 50 and len(texts["long"]) == 20
    assert all(12 <= len(text.split()) <= 18 for text in texts["short"])
    assert all(len(text.split()) == 100 and "<br" not in text for text in texts["long"])
    assert load_sentences(data_dir, 50, 20) == texts  # the same sentences in every run
    with pytest.raises(ValueError, match="short texts are available"):
        load_sentences(data_dir, num_short=10**6, num_long=1)


def test_cli_writes_results_with_ratios_to_the_teacher(tiny_model_dir, tmp_path):
    output_dir = tmp_path / "speed"
    command = [
        sys.executable, str(REPO_ROOT / "benchmarks" / "encode.py"), "--output_dir", str(output_dir),
        "--model", str(tiny_model_dir), "wordllama", "--num_short", "12", "--num_long", "6",
        "--batch_sizes", "1", "4", "--repeats", "1", "--latency_calls", "3", "--threads", "1",
    ]
    result = subprocess.run(command, cwd=REPO_ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    report = json.loads((output_dir / "results.json").read_text())
    settings = {(row["model"], row["setting"]) for row in report["results"]}
    assert settings == {
        ("tiny", "pytorch-fp32"), ("tiny", "onnx-fp32"), ("tiny", "onnx-int8"),
        ("wordllama", "static-fp32"), ("all-MiniLM-L6-v2 (teacher)", "pytorch-fp32"),
    }
    assert len(report["results"]) == len(settings) * 2 * 2  # short and long, batch sizes 1 and 4
    for row in report["results"]:
        assert ROW_KEYS <= set(row), ROW_KEYS - set(row)
        assert all(row[m] > 0 for m in METRICS), row
        assert set(row["ratio_to_teacher"]) == set(METRICS) and all(v > 0 for v in row["ratio_to_teacher"].values())
        if row["model"].endswith("(teacher)"):
            assert all(v == pytest.approx(1.0) for v in row["ratio_to_teacher"].values())
    assert {t["target"].split(" ")[0] for t in report["targets"]} >= {"pytorch-fp32", "onnx-fp32", "onnx-int8"}
    meta = report["meta"]
    assert meta["cpu_model"] and meta["data"]["short"]["num_texts"] == 12 and meta["threads"] == 1
    assert (output_dir / "results.md").read_text().startswith("# Encode speed")
    assert (output_dir / "speed.png").stat().st_size > 10_000
    assert not (tiny_model_dir / "onnx").exists()  # the ONNX files went to the output folder, not the model's


def test_pretokenized_path_runs_in_bfloat16(tiny_model_dir):
    """The GPU setting (pre-tokenised, bf16, forward only), exercised on the CPU."""
    threads = torch.get_num_threads()
    backend = AsteriskTorch(str(tiny_model_dir), threads=1)
    try:
        backend.import_libraries()  # sets torch's thread count
        backend.load(device="cpu", dtype="bfloat16")
        texts = ["a short text", "another, somewhat longer text to embed", "", "x"] * 3
        row = measure_pretokenized(backend, texts, batch_size=4, repeats=1, device="cpu")
    finally:
        torch.set_num_threads(threads)
    assert row["num_texts"] == 36 and row["sentences_per_s"] > 0 and row["tokenize_s"] is None  # 3 x 12 texts
    assert next(backend.model.parameters()).dtype == torch.bfloat16
