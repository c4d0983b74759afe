"""benchmarks/encode.py: a smoke run of the CLI on tiny settings (no timing is asserted), data, GPU path and the
torch-free ONNX worker; benchmarks/training_speed.py: a smoke run of its variants."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from asterisk_embeddings.onnx_encoder import FP32_FILE_NAME, INT8_FILE_NAME
from asterisk_embeddings.text_batching import pad_right
from benchmarks.encode import (
    METRICS,
    import_libraries,
    load_model,
    load_sentences,
    measure_pretokenized,
    prepare_asterisk,
)
from train.evaluation.embedders import AsteriskEmbedder, AsteriskOnnxEmbedder

from .conftest import REPO_ROOT

ROW_KEYS = {"model", "setting", "data", "batch_size", "mean_tokens", "tokenize_s", "tokenize_share", *METRICS}


@pytest.fixture(scope="module")
def tiny_onnx_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model's ONNX graphs, exported as the benchmark exports them (beside copies, not in the model)."""
    return prepare_asterisk(str(tiny_model_dir), tmp_path_factory.mktemp("speed"))[1]


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
                            capture_output=True, text=True, timeout=600, check=False)
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
    spec = {"kind": "asterisk", "setting": "pretokenized-bf16-cpu", "path": str(tiny_model_dir), "threads": 1,
            "device": "cpu", "dtype": "bfloat16", "compile": False}
    texts = ["a short text", "another, somewhat longer text to embed", "", "x"] * 3
    try:
        import_libraries(spec)  # sets torch's thread count
        model = load_model(spec)
        row = measure_pretokenized(model, texts, batch_size=4, repeats=1, device="cpu")
        with torch.inference_mode():
            forward = model.forward(*map(torch.from_numpy, pad_right(model.tokenize(texts[:4]), model.pad_id)))
    finally:
        torch.set_num_threads(threads)
    assert row["num_texts"] == 36 and row["sentences_per_s"] > 0 and row["tokenize_s"] is None  # 3 x 12 texts
    assert next(model.module.parameters()).dtype == torch.bfloat16
    # The forward pass on padded ids gives encode's (unit) vectors, up to bf16 rounding.
    np.testing.assert_allclose(forward.numpy(), model.encode(texts[:4]), atol=0.02)


def test_onnx_embedder_matches_the_pytorch_one(tiny_model_dir, tiny_onnx_dir):
    texts = ["a short text", "", "日本語のテキスト", "long " * 60]
    reference = AsteriskEmbedder(tiny_model_dir).embed(texts)
    fp32, int8 = AsteriskOnnxEmbedder(tiny_onnx_dir, num_threads=1), AsteriskOnnxEmbedder(tiny_onnx_dir, INT8_FILE_NAME)
    embedded = fp32.embed(texts)
    assert embedded.truncated == reference.truncated == 1
    np.testing.assert_allclose(embedded.vectors, reference.vectors, atol=1e-5)
    with pytest.warns(UserWarning, match="1 of 4 texts were longer than 40 tokens"):  # as a user's call warns
        np.testing.assert_allclose(fp32.encode(texts), reference.vectors, atol=1e-5)
    with pytest.warns(UserWarning, match="truncated"):
        assert fp32.tokenize(texts) == AsteriskEmbedder(tiny_model_dir).tokenize(texts)
    assert fp32.file_name == FP32_FILE_NAME and fp32.cache_key != int8.cache_key and fp32.kind == "onnx"
    described = int8.describe()
    assert described["dimensions"] == 24 and described["max_length"] == 40 and described["parameters"] > 0
    assert described["file_name"] == INT8_FILE_NAME and len(described["weights_sha256"]) == 64
    with pytest.raises(ValueError, match="max_length"):
        AsteriskOnnxEmbedder(tiny_onnx_dir, max_length=41)


def test_onnx_worker_imports_neither_torch_nor_transformers(tiny_model_dir, tiny_onnx_dir, tmp_path):
    """An ONNX setting's worker process, run as the CLI runs it, loads no torch or transformers."""
    onnx_dir = tiny_onnx_dir
    texts_file, spec_file, result_file = tmp_path / "texts.json", tmp_path / "spec.json", tmp_path / "result.json"
    texts_file.write_text(json.dumps({"short": ["a short text", "x", ""] * 2, "long": ["a longer text " * 30] * 3}))
    spec_file.write_text(json.dumps({
        "model": "tiny", "name": str(tiny_model_dir), "kind": "asterisk", "setting": "onnx-int8",
        "path": str(onnx_dir), "onnx_file": INT8_FILE_NAME, "threads": 1, "thread_wait": "passive", "repeats": 1,
        "latency_calls": 2, "batch_sizes": [2], "device": "cpu", "dtype": "float32", "compile": False,
        "texts_file": str(texts_file), "result_file": str(result_file),
    }))
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / "encode.py"), "--worker", str(spec_file)]
    result = subprocess.run(command, cwd=REPO_ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    worker = json.loads(result_file.read_text())
    assert worker["heavy_modules"] == [] and "onnxruntime" in worker["versions"] and "torch" not in worker["versions"]
    assert [(row["data"], row["batch_size"]) for row in worker["rows"]] == [("short", 2), ("long", 2)]
    assert all(row["sentences_per_s"] > 0 for row in worker["rows"])


def test_training_speed_cli_runs_each_variant_at_equal_steps(tmp_path, corpus_file):
    """benchmarks/training_speed.py on the tiny preset: one real `accelerate launch` per variant, one table."""
    command = [sys.executable, "benchmarks/training_speed.py", "--output_dir", str(tmp_path), "--steps", "6",
               "--threads", "1", "--variants", "fp32-dense", "bf16-sparse-eager", "--", "--config", "tiny",
               "--corpus", str(corpus_file), "--cache_dir", str(tmp_path / "cache")]
    result = subprocess.run(command, cwd=REPO_ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    record = json.loads((tmp_path / "training_speed.json").read_text())
    assert [row["variant"] for row in record["rows"]] == ["fp32-dense", "bf16-sparse-eager"]
    for row in record["rows"]:
        assert row["steps"] == 6 and row["sentences_seen"] == 6 * 32 and row["sentences_per_s"] > 0
        assert -1 <= row["heldout_cosine"] <= 1
    assert record["rows"][1]["mixed_precision"] == "bf16"
    assert "| bf16-sparse-eager |" in (tmp_path / "training_speed.md").read_text()


def test_int8_graphs_benchmark_compares_every_setting_with_the_fp32_graph(tiny_model_dir, tmp_path):
    """benchmarks/int8_graphs.py on the tiny model: each quantisation setting against the fp32 graph, on real texts."""
    from asterisk_embeddings.onnx_encoder import int8_file_name
    from benchmarks import int8_graphs

    record = int8_graphs.main(["--model", str(tiny_model_dir), "--output_dir", str(tmp_path), "--num_short", "8",
                               "--num_long", "2"])
    assert [row["graph"] for row in record["rows"]] == ["fp32 (model.onnx)", *int8_graphs.SETTINGS]
    assert all(row["texts_per_s"] > 0 and -1 <= row["cosine_min"] <= row["cosine_mean"] <= 1.0001
               for row in record["rows"])
    assert record["int8_file_name"] == int8_file_name()
    assert not (tiny_model_dir / "onnx").exists()  # the graphs went to the output folder, not the model's
    assert "| uint8 weights (model_quint8_avx2.onnx) |" in (tmp_path / "int8_graphs.md").read_text()
