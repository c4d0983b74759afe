"""Distillation end to end: the `tiny` preset through a real `accelerate launch`, one and two processes, a prompted
teacher of another dimension beside the default one, kill-and-resume, one writer per run folder, and the
exported folder loaded in a fresh process."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from train.data_paths import REPO_ROOT

from .conftest import build_tiny_teacher, run_fresh_python

ACCELERATE = str(Path(sys.executable).parent / "accelerate")
TINY = str(REPO_ROOT / "train" / "configs" / "tiny.yaml")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_command(output_dir, *extra, processes=1, mixed_precision="no") -> list[str]:
    flags = ["--num_processes", str(processes), "--num_machines", "1", "--mixed_precision", mixed_precision,
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


def run_failing(command, timeout=300) -> str:
    """Run a command that must fail; returns its error: the last line of stderr for the script run by Python,
    the script's own `error:` line under `accelerate launch` (which adds its traceback after it)."""
    result = subprocess.run(command, cwd=REPO_ROOT, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert result.returncode != 0, f"{' '.join(command)} should have failed:\n{result.stdout[-2000:]}"
    lines = result.stderr.strip().splitlines()
    if command[0] == ACCELERATE:
        return next((line for line in lines if line.startswith("error: ")), result.stderr[-3000:])
    return lines[-1]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def prompted_teacher(tmp_path_factory):
    """A tiny sentence-transformers teacher unlike MiniLM: BERT 16-d -> mean -> Dense 12-d -> Normalize, with
    prompts and a default prompt (as nomic-embed-text has), built here with sentence-transformers itself."""
    return build_tiny_teacher(tmp_path_factory.mktemp("teacher"), prompts={"classification": "classify: ",
                              "query": "query: "}, default_prompt="classification")


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, corpus_file, cache_dir):
    """The tiny preset, one process, uninterrupted."""
    output_dir = tmp_path_factory.mktemp("runs") / "reference"
    result = run(launch_command(output_dir, "--corpus", corpus_file, "--cache_dir", cache_dir))
    return output_dir, result


def test_tiny_run_exports_the_model_apart_from_the_run(reference_run, tmp_path):
    output_dir, result = reference_run
    assert "encoded now" in result.stdout  # first run: teacher targets encoded
    model_dir = output_dir / "model"
    assert sorted(p.name for p in output_dir.iterdir() if not p.name.startswith(".")) == [
        "checkpoints", "logs", "model", "run.json"]
    assert not (model_dir / "checkpoints").exists() and not (model_dir / "logs").exists()
    info = json.loads((model_dir / "training_info.json").read_text())
    for key in ("teacher", "teachers", "corpus", "train_sentences", "steps", "train_seconds", "hardware",
                "final_heldout_cosine"):
        assert key in info
    assert info["steps"] == 24 and info["hardware"]["num_processes"] == 1 and info["teacher_dim"] == 384
    assert info["train_sentences"] == 2200 and info["heldout_sentences"] == 200
    assert info["teachers"][0]["prompt"] == "" and info["teachers"][0]["dim"] == 384
    # The token limit has one source: the preset's max_length is the exported model's limit.
    config = json.loads((model_dir / "config.json").read_text())
    assert config["max_position_embeddings"] == 32
    assert json.loads((model_dir / "tokenizer.json").read_text())["truncation"]["max_length"] == 32
    assert (model_dir / "training_curves.png").stat().st_size > 10_000
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
        folder = {str(model_dir)!r}
        model = AutoModel.from_pretrained(folder, trust_remote_code=True)
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
        texts = ["a distilled sentence", "another one, a little longer"]
        with torch.no_grad():
            pooled = model(**tokenizer(texts, padding=True, return_tensors="pt")).pooler_output
        st = SentenceTransformer(folder, trust_remote_code=True, device="cpu")
        expected = torch.nn.functional.normalize(pooled, dim=-1)
        torch.testing.assert_close(st.encode(texts, convert_to_tensor=True), expected, atol=1e-5, rtol=0)
        """,
        cwd=tmp_path,
    )


def test_second_run_reuses_cached_targets(reference_run, corpus_file, cache_dir, tmp_path):
    result = run(launch_command(tmp_path / "again", "--corpus", corpus_file, "--cache_dir", cache_dir,
                                "--max_steps", 2, "--init", "random"))
    assert "(read from cache)" in result.stdout and "encoded now" not in result.stdout


def test_a_prompted_teacher_of_another_size_beside_the_default_one(prompted_teacher, corpus_file, tmp_path):
    """Two teachers: the prompted 12-d one scores 500 training texts, MiniLM all of them; each has its own head."""
    cache = tmp_path / "cache"
    extra = "[{name: sentence-transformers/all-MiniLM-L6-v2, dim: 384, dtype: float32}]"
    result = run(launch_command(tmp_path / "two", "--corpus", corpus_file, "--cache_dir", cache,
                                "--teacher", prompted_teacher, "--teacher_dim", 12, "--teacher_max_texts", 500,
                                "--extra_teachers", extra, "--init", "teacher_tokens", "--max_steps", 8))
    info = json.loads((tmp_path / "two" / "model" / "training_info.json").read_text())
    main, minilm = info["teachers"]
    assert (main["dim"], main["prompt"], main["prompt_name"]) == (12, "classify: ", "classification")
    assert main["modules"] == ["Transformer", "Pooling", "Dense", "Normalize"] and main["texts_scored"] == 500
    assert (minilm["dim"], minilm["texts_scored"]) == (384, 2200) and info["train_sentences"] == 2200
    assert info["teacher_prompt"] == "classify: " and info["teacher_dim"] == 12
    metrics = [json.loads(line) for line in (tmp_path / "two" / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert any("heldout_cosine_t1" in m for m in metrics) and any("loss_cosine_t1" in m for m in metrics)
    assert "Teacher" in result.stdout

    # Another prompt is another teacher: a new store, never the first one's vectors.
    run(launch_command(tmp_path / "query", "--corpus", corpus_file, "--cache_dir", cache, "--teacher",
                       prompted_teacher, "--teacher_prompt_name", "query", "--teacher_max_texts", 100,
                       "--init", "random", "--targets_only"))
    stores = sorted(p.name for p in (cache / "teacher_targets").iterdir())
    assert len(stores) == 3, stores  # prompted-classification, prompted-query, MiniLM
    message = run_failing(launch_command(tmp_path / "bad", "--corpus", corpus_file, "--cache_dir", cache,
                                         "--teacher", prompted_teacher, "--teacher_prompt_name", "summary"))
    assert "has no prompt named 'summary'" in message and "classification" in message
    message = run_failing(launch_command(tmp_path / "bad2", "--corpus", corpus_file, "--cache_dir", cache,
                                         "--teacher", prompted_teacher, "--teacher_dim", 384))
    assert "gives 12-d embeddings, but teacher_dim is 384" in message


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
    assert not (output_dir / "model").exists(), "a killed run must not leave a model folder"
    assert not (output_dir / "checkpoints" / "step_00000024").exists()

    # Run again without --resume_from_checkpoint: refused, and nothing is overwritten.
    message = run_failing(command)
    assert "holds an earlier run (2 checkpoints)" in message and "--resume_from_checkpoint latest" in message
    # Resume with other settings: refused, naming what changed.
    message = run_failing(command + ["--resume_from_checkpoint", "latest", "--batch_size", "16"])
    assert "Cannot resume" in message and "batch_size: 32 -> 16" in message

    result = run(command + ["--resume_from_checkpoint", "latest"])
    assert "Resumed from" in result.stdout and "at step 16" in result.stdout
    info = json.loads((output_dir / "model" / "training_info.json").read_text())
    assert info["steps"] == 24 and info["resumed_from"].endswith("step_00000016")
    # Resuming replays exactly the remaining batches: the result equals the uninterrupted run.
    resumed = load_file(output_dir / "model" / "model.safetensors")
    reference = load_file(reference_dir / "model" / "model.safetensors")
    for name, tensor in reference.items():
        assert (resumed[name] - tensor).abs().max() < 1e-5, name


def test_one_writer_per_run_folder_and_no_orphan_after_a_launcher_kill(corpus_file, cache_dir, tmp_path):
    output_dir = tmp_path / "locked"
    command = launch_command(output_dir, "--corpus", corpus_file, "--cache_dir", cache_dir, "--max_steps", 2000,
                             "--checkpoint_every", 1000)
    launcher = subprocess.Popen(command, cwd=REPO_ROOT, env=_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        lock = output_dir / ".lock-rank0"
        deadline = time.time() + 120
        while not (lock.exists() and lock.read_text().strip()) and time.time() < deadline:
            time.sleep(0.1)
        child = int(lock.read_text())
        assert child != launcher.pid  # the training process, started by accelerate launch
        message = run_failing(command + ["--resume_from_checkpoint", "latest"])
        assert f"Another run (pid {child}) is writing to" in message

        launcher.kill()  # SIGKILL to `accelerate launch` alone, as `kill -9 <pid>` does
        launcher.wait()
        deadline = time.time() + 30
        while _alive(child) and time.time() < deadline:
            time.sleep(0.1)
        assert not _alive(child), "the training process outlived its launcher"
    finally:
        launcher.kill()
    # The dead run's lock does not hold the folder: a new run may start over in it.
    run(command[:-4] + ["--max_steps", "2", "--overwrite_output_dir"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())  # a zombie has exited


def test_a_folder_that_is_not_a_run_is_left_alone(corpus_file, tmp_path):
    user_folder = tmp_path / "mine"
    (user_folder / "onnx").mkdir(parents=True)
    (user_folder / "config.json").write_text('{"mine": true}')
    (user_folder / "onnx" / "model.onnx").write_bytes(b"user data")
    message = run_failing([sys.executable, "train/distill.py", "--config", TINY, "--output_dir", str(user_folder),
                           "--corpus", str(corpus_file)])
    assert "is not an Asterisk run folder" in message
    assert (user_folder / "config.json").read_text() == '{"mine": true}'
    assert (user_folder / "onnx" / "model.onnx").read_bytes() == b"user data"


def test_two_processes_train_and_match_one_process(reference_run, corpus_file, tmp_path):
    """Two real gloo processes (fresh cache: targets encoded in shards) give the single-process model."""
    reference_dir, _ = reference_run
    output_dir = tmp_path / "ddp"
    result = run(launch_command(output_dir, "--corpus", corpus_file, "--cache_dir", tmp_path / "cache",
                                processes=2), processes=2)
    for rank in (0, 1):
        assert f"[rank {rank}/2] trained 24 batches of 16 texts" in result.stdout
    info = json.loads((output_dir / "model" / "training_info.json").read_text())
    assert info["hardware"]["num_processes"] == 2 and info["global_batch_size"] == 32
    shards = [p for p in (tmp_path / "cache" / "teacher_targets").glob("*/*.json") if p.name != "identity.json"]
    assert len(shards) == 5  # 2,400 texts in shards of 512, shared between the two processes
    ddp = load_file(output_dir / "model" / "model.safetensors")
    single = load_file(reference_dir / "model" / "model.safetensors")
    for name, tensor in single.items():
        assert (ddp[name] - tensor).abs().max() < 2e-3, name


def test_fast_cpu_recipe_sparse_table_bf16_eager_attention_resumes_exactly(reference_run, corpus_file, cache_dir,
                                                                           tmp_path):
    """SparseAdam for the token table, bf16 autocast and eager attention while training (the fast CPU settings):
    it learns, exports a plain sdpa model, and its two optimisers checkpoint and resume as one."""
    # bf16 from the distill setting, which overrides the launcher's "no" (so a preset can carry it).
    fast = ["--corpus", corpus_file, "--cache_dir", cache_dir, "--sparse_token_updates", "true",
            "--attn_implementation", "eager", "--mixed_precision", "bf16"]
    run(launch_command(tmp_path / "fast", *fast))
    model_dir = tmp_path / "fast" / "model"
    info = json.loads((model_dir / "training_info.json").read_text())
    assert info["config"]["sparse_token_updates"] and info["hardware"]["mixed_precision"] == "bf16"
    assert "eager" not in (model_dir / "config.json").read_text()
    metrics = [json.loads(line) for line in (tmp_path / "fast" / "logs" / "metrics.jsonl").read_text().splitlines()]
    cosines = [m["heldout_cosine"] for m in metrics if "heldout_cosine" in m]
    assert cosines[-1] > cosines[0]
    assert sorted(p.name for p in (tmp_path / "fast" / "checkpoints" / "step_00000016").iterdir()
                  if p.name.startswith(("optimizer", "scheduler"))) == [
        "optimizer.bin", "optimizer_1.bin", "scheduler.bin", "scheduler_1.bin"]

    # The run folder as a kill after step 16 leaves it, resumed: the same model as the uninterrupted run.
    killed = tmp_path / "killed"
    shutil.copytree(tmp_path / "fast", killed, ignore=shutil.ignore_patterns("model", "step_00000024", ".lock-*"))
    result = run(launch_command(killed, *fast, "--resume_from_checkpoint", "latest"))
    assert "at step 16" in result.stdout
    resumed = load_file(killed / "model" / "model.safetensors")
    uninterrupted = load_file(model_dir / "model.safetensors")
    for name, tensor in uninterrupted.items():
        assert (resumed[name] - tensor).abs().max() < 1e-5, name

    message = run_failing(launch_command(tmp_path / "two", *fast, processes=2))
    assert "sparse_token_updates needs a single training process, not 2" in message
    # A teacher pass alone trains nothing, so the same settings run it on two processes (the release recipe's way).
    own_cache = [tmp_path / "pass-cache" if value == cache_dir else value for value in fast]
    result = run(launch_command(tmp_path / "pass", *own_cache, "--targets_only", processes=2), processes=2)
    assert "encoded now" in result.stdout and "no training" in result.stdout


def test_plain_python_runs_with_pca_targets_relational_loss_and_matryoshka(corpus_file, cache_dir, tmp_path,
                                                                         reference_run, prompted_teacher):
    # Token initialisation from the tiny teacher: MiniLM over the 50,257 GPT-2 tokens would cost this test ~100 s.
    result = run([sys.executable, "train/distill.py", "--config", TINY, "--output_dir", str(tmp_path / "pca"),
                  "--corpus", str(corpus_file), "--cache_dir", str(cache_dir), "--max_steps", "4",
                  "--target_space", "pca", "--relational_weight", "0.5", "--init", "teacher_tokens",
                  "--init_teacher", str(prompted_teacher), "--matryoshka_dims", "[16, 8]"])
    assert "Saved the student" in result.stdout
    metrics = [json.loads(line) for line in (tmp_path / "pca" / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert any("loss_relational" in m for m in metrics)
    assert any("loss_cosine_d16" in m and "loss_cosine_d8" in m for m in metrics)  # each prefix has its loss
    config = json.loads((tmp_path / "pca" / "model" / "config.json").read_text())
    assert config["matryoshka_dims"] == [24, 16, 8]  # the full size first; what the card and users read


def test_corrupt_cached_targets_are_named_not_used(reference_run, corpus_file, cache_dir, tmp_path):
    store = next(p for p in (cache_dir / "teacher_targets").iterdir() if p.name.startswith("all-MiniLM"))
    copy = tmp_path / "cache" / "teacher_targets" / store.name
    shutil.copytree(store, copy)
    vectors = sorted(copy.glob("*.vectors.npy"))[0]
    data = bytearray(vectors.read_bytes())
    data[-100:] = b"\x00" * 100  # finite garbage: only the checksum can tell
    vectors.write_bytes(bytes(data))
    message = run_failing([sys.executable, "train/distill.py", "--config", TINY, "--output_dir",
                           str(tmp_path / "out"), "--corpus", str(corpus_file), "--cache_dir", str(tmp_path / "cache")])
    assert "is corrupt" in message and vectors.name in message and "delete" in message
    assert not (tmp_path / "out" / "model").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--corpus", "no/such/file.tsv"], "does not exist"),
        (["--learning_rate", "1e30", "--max_nonfinite_steps", "3"], "consecutive non-finite steps"),
        (["--learning_rate", "1e30", "--max_nonfinite_steps", "1000"], "Nothing was exported"),
        (["--batch_size", "1e1"], "batch_size takes an integer, got '1e1'"),
        (["--teacher", "./no/such/teacher"], "Teacher folder ./no/such/teacher does not exist"),
    ],
)
def test_bad_input_fails_with_a_clear_error(args, message, corpus_file, cache_dir, tmp_path):
    """Through the CLI; the other bad inputs (config keys and types) are tested in-process. The shared cache spares
    each case a teacher pass."""
    command = [sys.executable, "train/distill.py", "--config", TINY, "--output_dir", str(tmp_path / "out"),
               "--corpus", str(corpus_file), "--cache_dir", str(cache_dir), *args]
    assert message in run_failing(command)
    assert not (tmp_path / "out" / "model").exists()
