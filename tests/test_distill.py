"""Distillation end to end: the `tiny` preset through a real `accelerate launch`, one and two processes,
kill-and-resume, and the exported folder loaded in a fresh process."""

import gzip
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from train.paths import REPO_ROOT

from .conftest import run_fresh_python

ACCELERATE = str(Path(sys.executable).parent / "accelerate")
TINY = str(REPO_ROOT / "train" / "configs" / "tiny.yaml")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_command(output_dir, *extra, processes=1) -> list[str]:
    flags = ["--num_processes", str(processes), "--num_machines", "1", "--mixed_precision", "no",
             "--dynamo_backend", "no"]
    if processes > 1:
        flags = ["--multi_gpu", *flags, "--main_process_port", str(_free_port())]
    return [ACCELERATE, "launch", *flags, "train/distill.py", "--config", TINY, "--output_dir", str(output_dir),
            *map(str, extra)]


def _env(processes=1):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    if processes > 1:
        env["OMP_NUM_THREADS"] = "1"  # two processes on two cores
    return env


def run(command, processes=1, timeout=600) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=REPO_ROOT, env=_env(processes), capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory, data_dir):
    """2,600 real lines sampled from the shared distillation corpus (loading all 927k would dominate the test)."""
    with gzip.open(data_dir / "distill_corpus" / "sentences.tsv.gz", "rt") as handle:
        header, *lines = handle.read().splitlines()
    path = tmp_path_factory.mktemp("corpus") / "sample.tsv"
    path.write_text("\n".join([header, *random.Random(0).sample(lines, 2600)]) + "\n")
    return path


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, corpus_file, cache_dir):
    """The tiny preset, one process, uninterrupted."""
    output_dir = tmp_path_factory.mktemp("runs") / "reference"
    result = run(launch_command(output_dir, "--corpus", corpus_file, "--cache_dir", cache_dir))
    return output_dir, result


def test_tiny_run_exports_a_complete_model(reference_run, tmp_path):
    output_dir, result = reference_run
    assert "computed in" in result.stdout  # first run: teacher targets encoded
    info = json.loads((output_dir / "training_info.json").read_text())
    for key in ("teacher", "corpus", "train_sentences", "steps", "train_seconds", "hardware", "final_heldout_cosine"):
        assert key in info
    assert info["steps"] == 24 and info["hardware"]["num_processes"] == 1 and info["teacher_dim"] == 384
    assert info["train_sentences"] == 2200 and info["heldout_sentences"] == 200
    assert (output_dir / "training_curves.png").stat().st_size > 10_000
    metrics = [json.loads(line) for line in (output_dir / "logs" / "metrics.jsonl").read_text().splitlines()]
    cosines = [m["heldout_cosine"] for m in metrics if "heldout_cosine" in m]
    assert len(cosines) == 3 and cosines[-1] > cosines[0]  # it learns
    losses = [m["loss"] for m in metrics if "loss" in m]
    assert losses[-1] < losses[0] / 2
    assert all(m["sentences_per_s"] > 0 for m in metrics if "sentences_per_s" in m)
    assert sorted(p.name for p in (output_dir / "checkpoints").iterdir()) == [
        "step_00000008", "step_00000016", "step_00000024"]

    run_fresh_python(
        f"""
        import torch
        from transformers import AutoModel, AutoTokenizer
        from sentence_transformers import SentenceTransformer
        folder = {str(output_dir)!r}
        model = AutoModel.from_pretrained(folder, trust_remote_code=True)
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
        texts = ["a distilled sentence", "another one, a little longer"]
        with torch.no_grad():
            pooled = model(**tokenizer(texts, padding=True, return_tensors="pt")).pooler_output
        st = SentenceTransformer(folder, trust_remote_code=True, device="cpu")
        torch.testing.assert_close(st.encode(texts, convert_to_tensor=True), pooled, atol=1e-5, rtol=0)
        """,
        cwd=tmp_path,
    )


def test_second_run_reuses_cached_targets(reference_run, corpus_file, cache_dir, tmp_path):
    result = run(launch_command(tmp_path / "again", "--corpus", corpus_file, "--cache_dir", cache_dir,
                                "--max_steps", 2, "--init", "random"))
    assert "read from cache" in result.stdout and "computed in" not in result.stdout
    assert "Loading weights" not in result.stderr  # the teacher was never loaded


def test_kill_and_resume_loses_only_the_steps_since_the_checkpoint(reference_run, corpus_file, cache_dir, tmp_path):
    reference_dir, _ = reference_run
    output_dir = tmp_path / "killed"
    command = launch_command(output_dir, "--corpus", corpus_file, "--cache_dir", cache_dir)
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    checkpoint = output_dir / "checkpoints" / "step_00000016" / "progress.json"
    deadline = time.time() + 300
    while not checkpoint.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert checkpoint.exists(), "the run never reached its second checkpoint"
    os.killpg(process.pid, signal.SIGKILL)  # mid-epoch: 24 steps are a third of one epoch
    process.wait()
    assert not (output_dir / "config.json").exists(), "a killed run must not leave a folder that looks complete"
    assert not (output_dir / "checkpoints" / "step_00000024").exists()

    result = run(command + ["--resume_from_checkpoint", "latest"])
    assert "Resumed from" in result.stdout and "at step 16" in result.stdout
    info = json.loads((output_dir / "training_info.json").read_text())
    assert info["steps"] == 24 and info["resumed_from"].endswith("step_00000016")
    # Resuming replays exactly the remaining batches: the result equals the uninterrupted run.
    resumed, reference = load_file(output_dir / "model.safetensors"), load_file(reference_dir / "model.safetensors")
    for name, tensor in reference.items():
        assert (resumed[name] - tensor).abs().max() < 1e-5, name


def test_two_processes_train_and_match_one_process(reference_run, corpus_file, tmp_path):
    """Two real gloo processes (fresh cache: targets encoded in shards) give the single-process model."""
    reference_dir, _ = reference_run
    output_dir = tmp_path / "ddp"
    result = run(launch_command(output_dir, "--corpus", corpus_file, "--cache_dir", tmp_path / "cache",
                                processes=2), processes=2)
    for rank in (0, 1):
        assert f"[rank {rank}/2] trained 24 batches of 16 texts" in result.stdout
    info = json.loads((output_dir / "training_info.json").read_text())
    assert info["hardware"]["num_processes"] == 2 and info["global_batch_size"] == 32
    chunks = list((tmp_path / "cache" / "teacher_targets").glob("*/chunks_done/*.done"))
    assert len(chunks) == 5  # 2,400 rows in chunks of 512, shared between the two processes
    ddp, single = load_file(output_dir / "model.safetensors"), load_file(reference_dir / "model.safetensors")
    for name, tensor in single.items():
        assert (ddp[name] - tensor).abs().max() < 2e-3, name


def test_plain_python_runs_with_pca_targets_and_relational_loss(corpus_file, cache_dir, tmp_path, reference_run):
    result = run([sys.executable, "train/distill.py", "--config", TINY, "--output_dir", str(tmp_path / "pca"),
                  "--corpus", str(corpus_file), "--cache_dir", str(cache_dir), "--max_steps", "4",
                  "--target_space", "pca", "--relational_weight", "0.5", "--init", "teacher_tokens"])
    assert "Saved the student" in result.stdout
    metrics = [json.loads(line) for line in (tmp_path / "pca" / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert any("loss_relational" in m for m in metrics)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--corpus", "no/such/file.tsv"], "does not exist"),
        (["--learning_rate", "1e30", "--max_nonfinite_steps", "3"], "consecutive non-finite steps"),
    ],
)
def test_bad_input_fails_with_a_clear_error(args, message, corpus_file, tmp_path):
    """Through the CLI; the other bad inputs (config keys, teacher path and size) are tested in-process."""
    command = [sys.executable, "train/distill.py", "--config", TINY, "--output_dir", str(tmp_path / "out"),
               "--corpus", str(corpus_file), "--cache_dir", str(tmp_path / "cache"), *args]
    result = subprocess.run(command, cwd=REPO_ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert message in result.stderr.strip().splitlines()[-1], result.stderr[-2000:]
    assert not (tmp_path / "out" / "config.json").exists()
