"""push_to_hub.py: the dry run for real (assembly, card, fresh-process validation), the refusals, and the upload.

Only `HfApi`'s network methods are replaced, by a recorder (these machines cannot reach the Hub). The model
folder is the real tiny folder with a real evaluation by train/evaluate.py (a TREC slice, a few seconds).
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pandas as pd
import pytest
from huggingface_hub import HfApi, constants

import push_to_hub
from train.evaluate import evaluate_models

from .conftest import REPO_ROOT

FAKE_TOKEN = "hf_FakeTokenForAsteriskTests0123456789"
REPO_ID = "asterisk-tests/asterisk-tiny"
EXPECTED_FILES = {
    "README.md", "config.json", "model.safetensors", "configuration_asterisk.py", "modeling_asterisk.py",
    "tokenizer.json", "tokenizer_config.json", "modules.json", "sentence_bert_config.json", "1_Pooling/config.json",
    "config_sentence_transformers.json", "evaluation/results.json", "evaluation/results.md", "evaluation/results.png",
    "onnx/model.onnx", "onnx/model_qint8.onnx", "onnx/model_quint8_avx2.onnx",
}
CHECKS = ["AutoTokenizer token ids", "AutoModel pooler_output", "AutoModel.encode",
          "AutoModelForSequenceClassification encoder", 'pipeline("feature-extraction") token features',
          'pipeline("feature-extraction") mean of the token features', "SentenceTransformer.encode", "ONNX fp32",
          "ONNX int8 (model_qint8.onnx", "ONNX int8 (model_quint8_avx2.onnx",
          "README.md python blocks run"]


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_of(folder) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def trec_slice(folder, data_dir):
    """A user task folder: a label-stratified slice of real TREC (120 train / 48 test rows, 6 labels)."""
    folder.mkdir(parents=True)
    train = pd.read_csv(data_dir / "trec" / "train.csv").groupby("label", sort=False).head(20)
    test = pd.read_csv(data_dir / "trec" / "test.csv").groupby("label", sort=False).head(8)
    train[["text", "label"]].to_csv(folder / "train.csv", index=False)
    test[["text", "label"]].to_csv(folder / "test.csv", index=False)
    return folder


def evaluated_copy(tiny_model_dir, root, data_dir):
    """The tiny folder plus a real evaluation/ from train/evaluate.py, as a trained folder would have it."""
    folder = root / "model"
    shutil.copytree(tiny_model_dir, folder)
    evaluate_models([str(folder)], str(trec_slice(root / "trec_small", data_dir)), folder / "evaluation",
                    cache_dir=root / "cache")
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_model_dir, data_dir):
    folder = evaluated_copy(tiny_model_dir, tmp_path_factory.mktemp("push"), data_dir)
    # What a training run leaves beside the model, and must stay home.
    (folder / "checkpoints" / "step_8").mkdir(parents=True)
    (folder / "checkpoints" / "step_8" / "optimizer.bin").write_bytes(b"state")
    (folder / "logs").mkdir()
    (folder / "logs" / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\n')
    return folder


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory, model_dir):
    """The scripted interface, run for real: `python push_to_hub.py --model_dir DIR --dry_run --out_dir OUT`."""
    out = tmp_path_factory.mktemp("dry_run") / "release"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_TOKEN": FAKE_TOKEN}
    result = subprocess.run(
        [sys.executable, "push_to_hub.py", "--model_dir", str(model_dir), "--dry_run", "--out_dir", str(out)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, f"dry run failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return out, result


class HubRecorder:
    """Stands in for HfApi's network calls: records what would be sent, including the folder's files."""

    def __init__(self, monkeypatch):
        self.calls = []
        recorder = self

        def create_repo(api, repo_id, **kwargs):
            recorder.calls.append(("create_repo", repo_id, kwargs, api.token))
            return f"https://huggingface.co/{repo_id}"

        def create_branch(api, repo_id, **kwargs):
            recorder.calls.append(("create_branch", repo_id, kwargs, api.token))

        def upload_folder(api, *, repo_id, folder_path, **kwargs):
            from pathlib import Path

            sent = {**kwargs, "files": files_of(Path(folder_path))}  # what the folder holds at upload time
            recorder.calls.append(("upload_folder", repo_id, sent, api.token))
            return SimpleNamespace(commit_url=f"https://huggingface.co/{repo_id}/commit/0123abc")

        for name, function in [("create_repo", create_repo), ("create_branch", create_branch),
                               ("upload_folder", upload_folder)]:
            monkeypatch.setattr(HfApi, name, function)

    def names(self):
        return [call[0] for call in self.calls]


@pytest.fixture
def hub(monkeypatch):
    return HubRecorder(monkeypatch)


@pytest.fixture
def online_with_token(monkeypatch):
    """A real push's environment: a token in HF_TOKEN and offline mode off (the recorder stops the traffic)."""
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


# ------------------------------------------------------------------------------------------------ dry run


def test_dry_run_assembles_exactly_the_hub_folder(dry_run, model_dir):
    out, result = dry_run
    files = files_of(out)
    assert set(files) == EXPECTED_FILES  # no checkpoints/, logs/ or stray files
    for name in ("model.safetensors", "config.json", "modeling_asterisk.py", "tokenizer.json"):
        assert files[name] == sha256(model_dir / name)  # copied byte for byte, never re-saved
    assert files["evaluation/results.json"] == sha256(model_dir / "evaluation" / "results.json")
    config = json.loads((out / "config.json").read_text())
    assert set(config["auto_map"]) == {"AutoConfig", "AutoModel", "AutoModelForSequenceClassification"}
    assert not (out.parent / f".{out.name}.partial").exists()
    assert f"Release folder: {out}" in result.stdout
    assert f"Not published from {model_dir}: checkpoints, logs" in result.stderr


def test_dry_run_validated_every_loader_in_a_fresh_process(dry_run):
    _, result = dry_run
    for check in CHECKS:
        assert f"ok: {check}" in result.stderr, f"check {check!r} did not pass:\n{result.stderr[-4000:]}"


def test_dry_run_card_holds_the_real_figures(dry_run, model_dir):
    out, _ = dry_run
    card = (out / "README.md").read_text()
    results = json.loads((model_dir / "evaluation" / "results.json").read_text())
    task = results["tasks"]["trec_small"]
    assert f"value: {round(100 * task['accuracy'], 4)}" in card  # model-index, in percent
    assert f"**{100 * task['accuracy']:.2f}**" in card  # the table
    assert f"{results['parameters']:,}" in card and sha256(out / "model.safetensors") in card
    assert "Untrained checkpoint" in card  # the tiny folder has no training_info.json
    assert "![Main score per task](evaluation/results.png)" in card
    assert "your-username/asterisk" in card  # no --repo_id: the placeholder the validation substituted


def test_token_never_appears_in_output_or_files(dry_run):
    out, result = dry_run
    assert FAKE_TOKEN not in result.stdout + result.stderr
    for path in out.rglob("*"):
        if path.is_file():
            assert FAKE_TOKEN.encode() not in path.read_bytes(), path


# ------------------------------------------------------------------------------------------------- upload


def test_upload_sends_the_release_with_its_options(dry_run, hub, capsys):
    out, _ = dry_run
    commit = push_to_hub.upload_release(out, REPO_ID, private=True, revision="v0.1", commit_message="First release",
                                        token=FAKE_TOKEN)
    assert commit.commit_url.startswith(f"https://huggingface.co/{REPO_ID}/commit/")
    assert hub.names() == ["create_repo", "create_branch", "upload_folder"]
    (_, repo, create, token), (_, _, branch, _), (_, uploaded_repo, upload, _) = hub.calls
    assert repo == uploaded_repo == REPO_ID and token == FAKE_TOKEN
    assert create == {"repo_type": "model", "private": True, "exist_ok": True}
    assert branch == {"branch": "v0.1", "repo_type": "model", "exist_ok": True}
    assert upload["revision"] == "v0.1" and upload["commit_message"] == "First release"
    assert upload["delete_patterns"] == "*"  # the repository ends up holding exactly this release
    assert upload["files"] == files_of(out)
    assert FAKE_TOKEN not in "".join(capsys.readouterr())


def test_upload_defaults_public_main_and_a_commit_message_naming_the_weights(dry_run, hub):
    out, _ = dry_run
    push_to_hub.upload_release(out, REPO_ID, token=FAKE_TOKEN)
    assert hub.names() == ["create_repo", "upload_folder"]
    assert hub.calls[0][2]["private"] is None  # the Hub's default visibility
    upload = hub.calls[1][2]
    assert upload["revision"] is None
    assert sha256(out / "model.safetensors")[:12] in upload["commit_message"]


def test_real_push_of_a_broken_model_is_refused_and_nothing_is_uploaded(tmp_path, model_dir, hub,
                                                                         online_with_token, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    code = (broken / "modeling_asterisk.py").read_text()
    pooling = "token_features = self.projection(hidden_states)"
    assert pooling in code
    (broken / "modeling_asterisk.py").write_text(code.replace(pooling, pooling + " + 0.5"))  # shipped code != model
    out = tmp_path / "release"

    status = push_to_hub.main(["--model_dir", str(broken), "--repo_id", REPO_ID, "--out_dir", str(out), "--no_onnx"])

    captured = capsys.readouterr()
    assert status == 2 and hub.calls == []
    assert "refusing to publish" in captured.err
    assert "AutoModel pooler_output: max abs difference" in captured.err
    assert "SentenceTransformer.encode: max abs difference" in captured.err
    assert not out.exists() and (tmp_path / ".release.partial").is_dir()  # kept for inspection, not as OUT
    assert FAKE_TOKEN not in captured.out + captured.err


def test_an_unreachable_hub_gives_one_clear_message_and_publishes_nothing(tmp_path, model_dir, monkeypatch,
                                                                         online_with_token, capsys):
    def unreachable(api, repo_id, **kwargs):
        raise ConnectionError("[Errno 101] Network is unreachable: huggingface.co")

    monkeypatch.setattr(HfApi, "create_repo", unreachable)
    status = push_to_hub.main(["--model_dir", str(model_dir), "--repo_id", REPO_ID, "--out_dir",
                               str(tmp_path / "release"), "--no_onnx"])
    err = capsys.readouterr().err
    assert status == 2
    assert "The upload to asterisk-tests/asterisk-tiny failed (ConnectionError" in err
    assert "nothing was published" in err
    assert "Traceback" not in err and FAKE_TOKEN not in err


# ---------------------------------------------------------------------------------------------- refusals


def _not_asterisk(folder):
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))


def _no_tokenizer(folder):
    (folder / "tokenizer.json").unlink()


def _evaluation_of_other_weights(folder):
    path = folder / "evaluation" / "results.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "weights_sha256": "0" * 64}))


def _no_evaluation(folder):
    shutil.rmtree(folder / "evaluation")


@pytest.mark.parametrize("break_folder, args, message", [
    (_not_asterisk, [], "is not an Asterisk model (model_type 'bert')"),
    (_no_tokenizer, [], "lacks tokenizer files ['tokenizer.json']"),
    (_evaluation_of_other_weights, [], "belongs to other weights"),
    (_no_evaluation, [], "No evaluation results at"),
    (None, ["--repo_id", "not a valid id"], "Invalid --repo_id 'not a valid id'"),
    (None, ["--repo_id", "asterisk"], "expected the form user/name"),
], ids=["not-asterisk", "no-tokenizer", "other-weights", "no-evaluation", "bad-repo-id", "no-namespace"])
def test_bad_input_is_refused_before_anything_is_written(tmp_path, model_dir, hub, online_with_token, capsys,
                                                          break_folder, args, message):
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    if break_folder:
        break_folder(folder)
    out = tmp_path / "release"
    status = push_to_hub.main(["--model_dir", str(folder), "--out_dir", str(out), *(args or ["--repo_id", REPO_ID])])
    err = capsys.readouterr().err
    assert status == 2 and message in err, err
    assert hub.calls == [] and not out.exists() and not (tmp_path / ".release.partial").exists()


def test_no_token_is_refused_before_any_work(tmp_path, model_dir, hub, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))  # no cached login either
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    out = tmp_path / "release"
    status = push_to_hub.main(["--model_dir", str(model_dir), "--repo_id", REPO_ID, "--out_dir", str(out)])
    assert status == 2 and "No Hugging Face token" in capsys.readouterr().err
    assert hub.calls == [] and not out.exists()


def test_offline_mode_refuses_a_real_push(tmp_path, model_dir, hub, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    status = push_to_hub.main(["--model_dir", str(model_dir), "--repo_id", REPO_ID])
    assert status == 2 and "HF_HUB_OFFLINE is set" in capsys.readouterr().err and hub.calls == []


def test_out_dir_that_is_not_empty_is_left_alone(tmp_path, model_dir, capsys):
    out = tmp_path / "release"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    status = push_to_hub.main(["--model_dir", str(model_dir), "--dry_run", "--out_dir", str(out)])
    assert status == 2 and "exists and is not an empty folder" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"


def test_dry_run_needs_an_out_dir(model_dir, capsys):
    assert push_to_hub.main(["--model_dir", str(model_dir), "--dry_run"]) == 2
    assert "--dry_run needs --out_dir" in capsys.readouterr().err


def test_comparison_folder_as_evaluation_points_to_the_model_subfolder(tmp_path, model_dir, capsys):
    evaluations = tmp_path / "eval"
    evaluations.mkdir()
    (evaluations / "comparison.json").write_text("{}")
    status = push_to_hub.main(["--model_dir", str(model_dir), "--dry_run", "--out_dir", str(tmp_path / "out"),
                               "--eval_dir", str(evaluations)])
    assert status == 2 and f"pass --eval_dir {evaluations}/<label>" in capsys.readouterr().err


def test_allow_missing_eval_publishes_without_results_of_other_weights(tmp_path, model_dir):
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    _evaluation_of_other_weights(folder)
    assert push_to_hub.find_evaluation(folder, None, allow_missing=True) is None
    assert push_to_hub.find_evaluation(model_dir, None, allow_missing=True) == model_dir / "evaluation"
