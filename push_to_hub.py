"""Publish an Asterisk model folder as a complete Hugging Face Hub repository, after proving that it loads.

    python push_to_hub.py --model_dir outputs/asterisk --repo_id USER/asterisk [--private] [--revision R]
                          [--commit_message M]
    python push_to_hub.py --model_dir outputs/asterisk --dry_run --out_dir release/   # everything but the upload

1. Checks before any work: a valid `user/name` repo id and a token (`HF_TOKEN` or the cached login) for a
   real push; an `--out_dir` that does not exist or is empty; an Asterisk folder with weights, code and
   tokenizer; an evaluation JSON written for these very weights (sha256), unless `--allow_missing_eval`.
2. `assemble_release`: copies the model's files (weights byte for byte), the evaluation and training
   records, exports ONNX (fp32 + int8), renders README.md from `model_card/`, all into a staging folder
   beside OUT; `validate_release` then loads that folder in a fresh Python process that cannot import
   `modeling_asterisk` (AutoModel, AutoModelForSequenceClassification, pipeline("feature-extraction"),
   SentenceTransformer, ONNX Runtime, the README's code) and compares every output with the source
   model. Only a folder that passes is renamed to OUT.
3. `upload_release`: `create_repo(exist_ok=True)`, then one `upload_folder` commit that makes the
   repository (or `--revision` branch) hold exactly OUT's files.

The token is handed to `HfApi` and nowhere else: it is never printed, logged or written.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from huggingface_hub import HfApi, constants, get_token  # noqa: E402
from huggingface_hub.errors import HfHubHTTPError  # noqa: E402
from huggingface_hub.utils import HFValidationError, validate_repo_id  # noqa: E402
from transformers.utils import logging as transformers_logging  # noqa: E402

from asterisk_embeddings.hashing import sha256_file  # noqa: E402
from asterisk_embeddings.onnx_encoder import FP32_FILE_NAME, INT8_AVX2_FILE_NAME, INT8_FILE_NAME  # noqa: E402
from asterisk_embeddings.saving import sentence_transformers_files, write_sentence_transformers_files  # noqa: E402
from model_card import DEFAULT_LICENSE, PLACEHOLDER_REPO_ID, count_parameters, render_model_card  # noqa: E402

logger = logging.getLogger("asterisk.push_to_hub")

REPO_ROOT = Path(__file__).resolve().parent
FRESH_PROCESS_SCRIPT = REPO_ROOT / "validate_release.py"
# What goes to the Hub, by name: a training run's checkpoints/, logs/ or anything else in the folder stays home.
MODEL_FILES = ("config.json", "model.safetensors", "configuration_asterisk.py", "modeling_asterisk.py")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
OPTIONAL_TOKENIZER_FILES = ("special_tokens_map.json", "added_tokens.json", "vocab.json", "merges.txt")
TRAINING_FILES = ("training_info.json", "training_curves.png")  # written by train/distill.py
EVALUATION_FILES = ("results.json", "results.md", "results.png")  # written by train/evaluate.py
AUTO_CLASSES = ("AutoConfig", "AutoModel", "AutoModelForSequenceClassification")
# Short and long, so padding, truncation and per-text vs batched paths all get compared.
VALIDATION_TEXTS = [
    "Asterisk turns a sentence into a vector.",
    "I would like to cancel the card I ordered yesterday, it has not arrived and I no longer need it.",
    "ok",
    "A text far longer than the model's window, so that every loader has to truncate it the same way. " * 12,
]
VALIDATION_LABELS = [0, 1, 2, 0]
ATOL = 1e-4  # float32 outputs of the same weights through different loaders
INT8_MIN_COSINE = 0.9  # int8 weights are an approximation: each vector must still point the same way
FP16_MIN_COSINE = 0.9999  # float16 storage of float32 weights: the same vectors up to rounding


class ReleaseError(RuntimeError):
    """The model folder cannot be published as it is; the message says why."""


# --------------------------------------------------------------------------------------------- checks


def check_repo_id(repo_id: str) -> str:
    """`repo_id` if it is a valid `user/name` Hub model id, else `ReleaseError`."""
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ReleaseError(f"Invalid --repo_id {repo_id!r}: {error}") from error
    if repo_id.count("/") != 1:
        raise ReleaseError(f"Invalid --repo_id {repo_id!r}: expected the form user/name (e.g. your-username/asterisk).")
    return repo_id


def check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ReleaseError(f"--out_dir {out_dir} exists and is not an empty folder; choose a new one (nothing was "
                           "written).")


def check_model_folder(model_dir: Path) -> dict:
    """The folder's config, after checking that it is a complete, Hub-ready Asterisk folder."""
    if not (model_dir / "config.json").is_file():
        raise ReleaseError(f"{model_dir} is not a model folder: it has no config.json.")
    config = json.loads((model_dir / "config.json").read_text())
    if config.get("model_type") != "asterisk":
        raise ReleaseError(f"{model_dir} is not an Asterisk model (model_type {config.get('model_type')!r}); "
                           "push_to_hub.py publishes Asterisk folders only.")
    missing = [name for name in MODEL_FILES + TOKENIZER_FILES if not (model_dir / name).is_file()]
    if missing:
        what = "tokenizer files" if set(missing) <= set(TOKENIZER_FILES) else "files"
        raise ReleaseError(f"{model_dir} lacks {what} {missing}; save it with asterisk_embeddings.saving."
                           "save_model_folder(model, build_tokenizer(), ...) to get a complete folder.")
    try:
        count_parameters(model_dir / "model.safetensors")  # reads the header only
    except Exception as error:  # noqa: BLE001 - safetensors raises its own error type
        raise ReleaseError(f"{model_dir}/model.safetensors cannot be read ({error}); save or download it "
                           "again.") from error
    auto_map = config.get("auto_map") or {}
    if not all(name in auto_map for name in AUTO_CLASSES):
        raise ReleaseError(f"{model_dir}/config.json has no complete auto_map ({sorted(auto_map)}); Hub users could "
                           "not load it with trust_remote_code. Save it again with save_model_folder.")
    return config


def find_evaluation(model_dir: Path, eval_dir: Path | None, allow_missing: bool) -> Path | None:
    """The folder holding results.json for exactly these weights, or None with `allow_missing`."""
    eval_dir = eval_dir or model_dir / "evaluation"
    results_path = eval_dir / "results.json"
    if not results_path.is_file():
        if allow_missing:
            logger.warning("No %s: publishing without evaluation results (--allow_missing_eval).", results_path)
            return None
        hint = (f" It holds a comparison of several models: pass --eval_dir {eval_dir}/<label>."
                if (eval_dir / "comparison.json").is_file() else "")
        raise ReleaseError(
            f"No evaluation results at {results_path}.{hint} Run `python train/evaluate.py --model {model_dir} "
            f"--tasks all --output_dir {eval_dir}`, point --eval_dir at them, or pass --allow_missing_eval."
        )
    try:
        results = json.loads(results_path.read_text())
    except json.JSONDecodeError as error:
        raise ReleaseError(f"{results_path} is not valid JSON ({error}); run train/evaluate.py again.") from error
    weights_sha256 = sha256_file(model_dir / "model.safetensors")
    if results.get("weights_sha256") != weights_sha256:
        problem = (f"{results_path} belongs to other weights (weights_sha256 {results.get('weights_sha256')!r}, "
                   f"but {model_dir}/model.safetensors has {weights_sha256})")
        if allow_missing:
            logger.warning("%s: publishing without evaluation results (--allow_missing_eval).", problem)
            return None
        raise ReleaseError(f"{problem}. Evaluate these weights again, or pass --allow_missing_eval to publish "
                           "without results.")
    if results.get("kind") != "asterisk" or not results.get("tasks"):
        raise ReleaseError(f"{results_path} is not an Asterisk evaluation with task scores (kind "
                           f"{results.get('kind')!r}, {len(results.get('tasks', {}))} tasks).")
    return eval_dir


def onnx_export_available() -> bool:
    """Whether `asterisk_embeddings.onnx_export` and the packages it needs are installed."""
    needed = ("onnx", "onnxruntime", "onnxscript", "asterisk_embeddings.onnx_export")
    return all(importlib.util.find_spec(name) is not None for name in needed)


# ------------------------------------------------------------------------------------------- assembly


def assemble_release(
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    repo_id: str | None = None,
    eval_dir: str | os.PathLike | None = None,
    allow_missing_eval: bool = False,
    onnx: bool | None = None,
    license: str = DEFAULT_LICENSE,
    datasets: list[str] | tuple[str, ...] = (),
    weights_dtype: str = "float32",
) -> Path:
    """Build the folder that goes to the Hub at `out_dir` and return it.

    Everything is written to `.<out_dir name>.partial` beside `out_dir` and renamed into place only after
    `validate_release` passed, so `out_dir` never holds a half-built or broken release. A release that fails
    validation is left in the `.partial` folder for inspection; any other failure removes it.

    Args:
        model_dir: the Asterisk model folder (from `save_model_folder` or `train/distill.py`).
        out_dir: where the release goes; must not exist or be empty.
        repo_id: the repository the card's examples load from (default: a placeholder).
        eval_dir: folder with results.json / .md / .png (default `model_dir/evaluation`).
        allow_missing_eval: publish without evaluation results when there are none.
        onnx: export `onnx/model.onnx` + the int8 graphs `onnx/model_qint8.onnx` and `onnx/model_quint8_avx2.onnx`
            (default: when the ONNX packages are installed).
        license, datasets: card metadata (see `model_card.render_model_card`).
        weights_dtype: "float32" (the weights byte for byte) or "float16" (half the size; `config.json` keeps
            `dtype: float32`, so every loader still computes in float32; the fresh-process check compares the
            stored model with the source, cosine >= `FP16_MIN_COSINE`).
    """
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    check_out_dir(out_dir)
    check_model_folder(model_dir)
    evaluation = find_evaluation(model_dir, Path(eval_dir) if eval_dir else None, allow_missing_eval)
    if onnx is None:
        onnx = onnx_export_available()
    elif onnx and not onnx_export_available():
        raise ReleaseError("ONNX export needs onnx, onnxruntime and onnxscript (pip install -c constraints.txt "
                           "onnx onnxruntime onnxscript); or pass --no_onnx.")

    staging = out_dir.with_name(f".{out_dir.name}.partial")
    logger.info("Assembling the release of %s in %s...", model_dir, staging)
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    if weights_dtype not in ("float32", "float16"):
        raise ReleaseError(f"--weights_dtype must be float32 or float16, got {weights_dtype!r}.")
    try:
        _copy_model_files(model_dir, staging)
        if weights_dtype == "float16":
            store_weights_in_float16(staging)
        for name in TRAINING_FILES:
            if (model_dir / name).is_file():
                shutil.copyfile(model_dir / name, staging / name)
        if evaluation is not None:
            (staging / "evaluation").mkdir()
            for name in EVALUATION_FILES:
                if (evaluation / name).is_file():
                    shutil.copyfile(evaluation / name, staging / "evaluation" / name)
        if onnx:
            logger.info("Exporting ONNX (fp32 and int8)...")
            from asterisk_embeddings.onnx_export import export_onnx

            try:
                export_onnx(staging, output_dir=staging, quantize=True)
            except (OSError, RuntimeError, ValueError) as error:
                raise ReleaseError(f"ONNX export of {model_dir} failed ({type(error).__name__}: {error}); "
                                   "pass --no_onnx to publish without ONNX files.") from error
        render_model_card(staging, repo_id, license=license, datasets=datasets).save(str(staging / "README.md"))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

    try:
        validate_release(staging, model_dir, repo_id=repo_id)
    except ReleaseError as error:
        raise ReleaseError(f"{error}\nThe rejected folder is kept at {staging} for inspection.") from error
    if out_dir.exists():
        out_dir.rmdir()  # empty (checked above); os.replace cannot replace a directory on every platform
    os.replace(staging, out_dir)
    return out_dir


def store_weights_in_float16(folder: Path) -> None:
    """Rewrite `folder/model.safetensors` in float16; `config.json` says float32, the dtype loaders compute in."""
    from safetensors.torch import load_file, save_file

    weights = load_file(folder / "model.safetensors")
    save_file({name: tensor.half() if tensor.is_floating_point() else tensor for name, tensor in weights.items()},
              folder / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((folder / "config.json").read_text())
    config["dtype"] = "float32"
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _copy_model_files(model_dir: Path, staging: Path) -> None:
    """Weights, config, code, tokenizer and sentence-transformers files, copied byte for byte."""
    names = MODEL_FILES + TOKENIZER_FILES + tuple(n for n in OPTIONAL_TOKENIZER_FILES if (model_dir / n).is_file())
    for name in names:
        shutil.copyfile(model_dir / name, staging / name)
    if sha256_file(staging / "model.safetensors") != sha256_file(model_dir / "model.safetensors"):
        raise ReleaseError(f"Copying {model_dir}/model.safetensors changed its bytes; is the disk full?")
    config = json.loads((model_dir / "config.json").read_text())
    st_files = sentence_transformers_files(config)
    if all((model_dir / name).is_file() for name in st_files):
        for name in st_files:
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(model_dir / name, staging / name)
    else:  # a folder saved the standard way (save_pretrained), without them: write the standard ones
        write_sentence_transformers_files(staging, config)
    for name in ("configuration_asterisk.py", "modeling_asterisk.py"):
        if (model_dir / name).read_bytes() != (REPO_ROOT / "modeling_asterisk" / name).read_bytes():
            logger.info("%s in %s differs from the package's current file; the folder's own copy is published "
                        "(the fresh-process check runs it).", name, model_dir)
    shipped = {*names, *(name.split("/")[0] for name in st_files), *TRAINING_FILES, "evaluation", "onnx"}
    left_out = sorted(p.name for p in model_dir.iterdir() if p.name not in shipped)
    if left_out:
        logger.info("Not published from %s: %s", model_dir, ", ".join(left_out))


# ----------------------------------------------------------------------------------------- validation


def validate_release(release_dir: str | os.PathLike, model_dir: str | os.PathLike, repo_id: str | None = None,
                     timeout: int = 600) -> list[str]:
    """Load `release_dir` as a Hub user would, in a fresh process, and compare with the model in `model_dir`.

    The fresh process (`validate_release.py`) cannot import `modeling_asterisk` and has
    no token and no network. It loads the folder through AutoTokenizer + AutoModel,
    AutoModelForSequenceClassification, pipeline("feature-extraction"), SentenceTransformer and ONNX
    Runtime, and runs the README's python blocks (`repo_id`, the card's repository, replaced by the folder).
    This process computes the reference with the project's `AsteriskModel` on the source folder.

    Returns one line per passed check; raises `ReleaseError` listing every failed one.
    """
    release_dir, model_dir = Path(release_dir).resolve(), Path(model_dir).resolve()
    try:
        source = _reference_outputs(model_dir)
    except (OSError, RuntimeError, ValueError) as error:
        raise ReleaseError(f"The source model {model_dir} does not load: {type(error).__name__}: {error}") from error
    # The loaders are compared with the project's own model on the release's files (float16 weights, if so
    # stored), and that model with the source.
    reference = _reference_outputs(release_dir) if _is_float16(release_dir) else source
    with tempfile.TemporaryDirectory(prefix="asterisk-release-check-") as scratch:
        scratch = Path(scratch)
        request = {"texts": VALIDATION_TEXTS, "labels": VALIDATION_LABELS, "repo_id": repo_id or PLACEHOLDER_REPO_ID}
        (scratch / "request.json").write_text(json.dumps(request))
        workdir = scratch / "cwd"
        workdir.mkdir()
        env = {key: value for key, value in os.environ.items()
               if key not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "PYTHONPATH", "HF_TOKEN_PATH")}
        env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(scratch / "hf_home"),
                   HF_MODULES_CACHE=str(scratch / "modules"), TOKENIZERS_PARALLELISM="false")
        logger.info("Loading %s in a fresh Python process...", release_dir)
        try:
            process = subprocess.run(
                [sys.executable, str(FRESH_PROCESS_SCRIPT), str(release_dir), str(scratch / "request.json"),
                 str(scratch / "result.npz")],
                cwd=workdir, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
            )
        except subprocess.TimeoutExpired as error:
            raise ReleaseError(f"The fresh-process check of {release_dir} took longer than {timeout} s.") from error
        if process.returncode != 0 or not (scratch / "result.json").is_file():
            raise ReleaseError(f"The fresh-process check of {release_dir} could not run (exit {process.returncode}):\n"
                               f"{process.stderr[-3000:]}")
        errors = json.loads((scratch / "result.json").read_text())
        with np.load(scratch / "result.npz") as loaded:
            fresh = dict(loaded)

    failures = [f"{check}: {message}" for check, message in errors.items()]
    passed = []
    if reference is not source:
        cosine = _cosine(reference["encode"], source["encode"]).min()
        check = f"float16 weights vs the float32 source (cosine >= {cosine:.6f})"
        (passed if cosine >= FP16_MIN_COSINE else failures).append(
            check if cosine >= FP16_MIN_COSINE else f"{check}: below {FP16_MIN_COSINE}")
    for check, problem in _comparisons(fresh, reference, release_dir):
        (failures if problem else passed).append(f"{check}: {problem}" if problem else check)
    if "README.md code" not in errors:
        passed.append("README.md python blocks run")
    if failures:
        raise ReleaseError(f"{release_dir} does not load like the source model {model_dir}; refusing to publish it:\n"
                           + "\n".join(f"  - {line}" for line in failures))
    for line in passed:
        logger.info("ok: %s", line)
    return passed


def _reference_outputs(model_dir: Path) -> dict[str, np.ndarray]:
    """The source model's outputs on VALIDATION_TEXTS, through the project's own package."""
    from transformers import AutoTokenizer

    from modeling_asterisk import AsteriskModel

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AsteriskModel.from_pretrained(model_dir).eval()
    batch = tokenizer(VALIDATION_TEXTS, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        output = model(**batch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the long validation text is truncated on purpose
        encoded = model.encode(VALIDATION_TEXTS, tokenizer=tokenizer).numpy()
    return {"input_ids": batch["input_ids"].numpy(), "attention_mask": batch["attention_mask"].numpy(),
            "last_hidden_state": output.last_hidden_state.numpy(), "pooler_output": output.pooler_output.numpy(),
            "encode": encoded}


def _comparisons(fresh: dict, ref: dict, release_dir: Path):
    """(check, problem or None) for every output the fresh process produced."""
    mask = ref["attention_mask"].astype(bool)
    pooled = ref["pooler_output"]
    if "input_ids" in fresh:
        same = np.array_equal(fresh["input_ids"], ref["input_ids"]) and np.array_equal(fresh["attention_mask"],
                                                                                         ref["attention_mask"])
        yield "AutoTokenizer token ids", None if same else "token ids differ from the source tokenizer's"
    if "auto_model_pooler_output" in fresh:
        yield "AutoModel last_hidden_state", _differ(fresh["auto_model_last_hidden_state"][mask],
                                                     ref["last_hidden_state"][mask])
        yield "AutoModel pooler_output", _differ(fresh["auto_model_pooler_output"], pooled)
        yield "AutoModel.encode", _differ(fresh["auto_model_encode"], ref["encode"])
    if "sequence_classification_pooler_output" in fresh:
        yield "AutoModelForSequenceClassification encoder", _differ(fresh["sequence_classification_pooler_output"],
                                                                    pooled)
    if "pipeline_sentence_embedding" in fresh:
        for i, length in enumerate(mask.sum(axis=1)):
            problem = _differ(fresh[f"pipeline_features_{i}"], ref["last_hidden_state"][i, :length])
            if problem:
                yield f'pipeline("feature-extraction") token features of text {i}', problem
                break
        else:
            yield 'pipeline("feature-extraction") token features', None
        yield 'pipeline("feature-extraction") mean of the token features', _differ(fresh["pipeline_sentence_embedding"],
                                                                                   pooled)
    if "sentence_transformers_encode" in fresh:
        yield "SentenceTransformer.encode", _differ(fresh["sentence_transformers_encode"], ref["encode"])
    if (release_dir / FP32_FILE_NAME).is_file():
        yield "ONNX fp32", _differ(fresh["onnx_fp32"], pooled) if "onnx_fp32" in fresh else "not run"
    for key, file_name in (("onnx_int8", INT8_FILE_NAME), ("onnx_int8_avx2", INT8_AVX2_FILE_NAME)):
        if not (release_dir / file_name).is_file():
            continue
        name = Path(file_name).name
        if key not in fresh:
            yield f"ONNX int8 ({name})", "not run"
        else:
            cosine = _cosine(fresh[key], pooled)
            yield (f"ONNX int8 ({name}: cosine to fp32 >= {cosine.min():.4f})",
                   None if cosine.min() >= INT8_MIN_COSINE else f"cosine to the source embedding {cosine.min():.4f} "
                                                                f"< {INT8_MIN_COSINE}")


def _is_float16(folder: Path) -> bool:
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), framework="np") as handle:
        return any(handle.get_slice(name).get_dtype() == "F16" for name in handle.keys())


def _differ(actual: np.ndarray, expected: np.ndarray) -> str | None:
    if actual.shape != expected.shape:
        return f"shape {actual.shape}, expected {expected.shape}"
    if not np.all(np.isfinite(actual)):
        return "non-finite values"
    gap = float(np.max(np.abs(actual - expected), initial=0.0))
    return None if gap <= ATOL else f"max abs difference {gap:.3g} from the source model (tolerance {ATOL})"


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-12)


# --------------------------------------------------------------------------------------------- upload


def upload_release(
    release_dir: str | os.PathLike,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    token: str | None = None,
    api: HfApi | None = None,
):
    """Create `repo_id` if needed and make it hold exactly `release_dir`, in one commit.

    Files of an earlier release that this one lacks are deleted in the same commit (`.gitattributes`
    stays), so the repository never mixes two releases. `private` applies when the repository is created;
    an existing repository keeps its visibility. `revision` names a branch, created from main if needed.
    Returns the `CommitInfo` of the upload.
    """
    release_dir = Path(release_dir)
    check_repo_id(repo_id)
    api = api or HfApi(token=token)
    repo_url = api.create_repo(repo_id=repo_id, repo_type="model", private=private or None, exist_ok=True)
    logger.info("Repository %s ready.", repo_url)
    if revision and revision != "main":
        api.create_branch(repo_id=repo_id, branch=revision, repo_type="model", exist_ok=True)
    weights_sha256 = sha256_file(release_dir / "model.safetensors")
    return api.upload_folder(
        repo_id=repo_id,
        repo_type="model",
        folder_path=str(release_dir),
        revision=revision,
        commit_message=commit_message or f"Upload Asterisk (weights sha256 {weights_sha256[:12]})",
        commit_description=f"Assembled and validated by push_to_hub.py. model.safetensors sha256: {weights_sha256}.",
        delete_patterns="*",
    )


# ------------------------------------------------------------------------------------------------ CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--model_dir", required=True, help="the Asterisk model folder to publish")
    parser.add_argument("--repo_id", help="user/name on the Hub (required unless --dry_run)")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--revision", help="branch to commit to (created if missing; default main)")
    parser.add_argument("--commit_message", help="commit message of the upload")
    parser.add_argument("--dry_run", action="store_true", help="assemble and validate into --out_dir, upload nothing")
    parser.add_argument("--out_dir", help="where the release folder is assembled (required with --dry_run; "
                                          "must not exist or be empty)")
    parser.add_argument("--eval_dir", help="folder with results.json from train/evaluate.py "
                                           "(default MODEL_DIR/evaluation)")
    parser.add_argument("--allow_missing_eval", action="store_true", help="publish without evaluation results")
    parser.add_argument("--no_onnx", action="store_true",
                        help="do not export the ONNX graphs (onnx/)")
    parser.add_argument("--weights_dtype", choices=("float32", "float16"), default="float32",
                        help="store the weights as float32 (default, byte for byte) or float16 (half the size; "
                             "loaders still compute in float32)")
    parser.add_argument("--license", default=DEFAULT_LICENSE, help=f"license metadata (default {DEFAULT_LICENSE})")
    parser.add_argument("--datasets", default="",
                        help="comma-separated Hub dataset ids of the training data, for the card's metadata")
    args = parser.parse_args(argv)
    # This script's progress at INFO; the libraries' (the ONNX exporter is chatty) at WARNING.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logger.setLevel(logging.INFO)
    transformers_logging.disable_progress_bar()
    try:
        return _run(args)
    except ReleaseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _run(args) -> int:
    # Everything that can be refused without work is refused first.
    if args.dry_run and not args.out_dir:
        raise ReleaseError("--dry_run needs --out_dir: the folder to assemble the release into.")
    if not args.dry_run and not args.repo_id:
        raise ReleaseError("--repo_id is required to publish (or pass --dry_run --out_dir OUT).")
    if args.repo_id:
        check_repo_id(args.repo_id)
    token = None
    if not args.dry_run:
        token = get_token()
        if not token:
            raise ReleaseError("No Hugging Face token: set HF_TOKEN or run `hf auth login` (nothing was done).")
        if constants.HF_HUB_OFFLINE:
            raise ReleaseError("HF_HUB_OFFLINE is set: unset it to publish, or use --dry_run.")
    if args.out_dir:
        check_out_dir(Path(args.out_dir))
    options = dict(repo_id=args.repo_id, eval_dir=args.eval_dir, allow_missing_eval=args.allow_missing_eval,
                   onnx=False if args.no_onnx else None, license=args.license,
                   datasets=[d.strip() for d in args.datasets.split(",") if d.strip()],
                   weights_dtype=args.weights_dtype)

    if args.dry_run:
        release = assemble_release(args.model_dir, args.out_dir, **options)
        _print_release(release)
        print(f"Dry run: nothing uploaded. Release folder: {release}")
        return 0
    with tempfile.TemporaryDirectory(prefix="asterisk-release-") as scratch:
        release = assemble_release(args.model_dir, args.out_dir or Path(scratch) / "release", **options)
        _print_release(release)
        try:
            commit = upload_release(release, args.repo_id, private=args.private, revision=args.revision,
                                    commit_message=args.commit_message, token=token)
        except (HfHubHTTPError, OSError, ConnectionError, TimeoutError) as error:
            # OSError covers the network stack's errors (unreachable host, DNS, TLS, timeouts).
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            kept = f" The validated release stays in {release}." if args.out_dir else ""
            raise ReleaseError(f"The upload to {args.repo_id} failed ({type(error).__name__}: {reason}); nothing was "
                               f"published.{kept} Check the network and the token, then try again.") from None
    print(f"Published {args.repo_id}: {getattr(commit, 'commit_url', commit)}")
    return 0


def _print_release(release: Path) -> None:
    for path in sorted(p for p in release.rglob("*") if p.is_file()):
        print(f"  {path.relative_to(release)}  ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    sys.exit(main())
