"""Write a complete, self-contained Asterisk model folder, atomically.

A folder holds the weights (`model.safetensors`), `config.json` with `auto_map`, the two code files for
`trust_remote_code`, the tokenizer (truncating at the model's token limit), and the sentence-transformers
files that make `SentenceTransformer(folder, trust_remote_code=True).encode` return the L2-normalised
`pooler_output`, as `AsteriskModel.encode` does.
Everything is written to a temporary sibling folder that is renamed into place at the end, so an
interrupted save never leaves a folder that looks complete. Not shipped to the Hub.
"""

import copy
import json
import os
import shutil
from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase

# sentence-transformers >= 6: the standard Transformer -> mean Pooling -> Normalize stack. The model's token
# features are already in the embedding space, so plain mean pooling gives `pooler_output`; Normalize makes
# sentence-transformers return the same unit vectors as `AsteriskModel.encode` and the evaluation harness.
MODULES = [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.base.modules.transformer.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling",
     "type": "sentence_transformers.sentence_transformer.modules.pooling.Pooling"},
    {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.base.modules.normalize.Normalize"},
]
REQUIRED_FILES = (
    "config.json", "model.safetensors", "configuration_asterisk.py", "modeling_asterisk.py", "tokenizer.json",
)


def sentence_transformers_files(config) -> dict[str, dict | list]:
    """The sentence-transformers files of a model with `config` (an `AsteriskConfig` or its dict), by path."""
    config = config if isinstance(config, dict) else config.to_dict()
    return {
        "modules.json": MODULES,
        "sentence_bert_config.json": {
            "transformer_task": "feature-extraction",
            "modality_config": {"text": {"method": "forward", "method_output_name": "last_hidden_state"}},
            "module_output_name": "token_embeddings",
            "max_seq_length": config["max_position_embeddings"],
        },
        "1_Pooling/config.json": {"embedding_dimension": config["projection_dim"], "pooling_mode": "mean",
                                  "include_prompt": True},
        "config_sentence_transformers.json": {
            "model_type": "SentenceTransformer",
            "prompts": {"query": "", "document": ""},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    }


def write_sentence_transformers_files(folder: str | os.PathLike, config) -> None:
    """Write the sentence-transformers module description into an existing model folder."""
    for name, content in sentence_transformers_files(config).items():
        path = Path(folder) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content, indent=2) + "\n")


def set_tokenizer_limit(tokenizer_json: Path, limit: int) -> None:
    """tokenizer.json truncates at the model's token limit and pads nothing, whatever the tokenizer was last used
    for: runtimes that read the file alone (ONNX, Rust, JS) then never feed the model more than it accepts."""
    data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    data["truncation"] = {"direction": "Right", "max_length": limit, "strategy": "LongestFirst", "stride": 0}
    data["padding"] = None
    tokenizer_json.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def check_model_folder(folder: str | os.PathLike) -> None:
    """Raise a clear error, naming the file, if `folder` is not a complete, readable Asterisk model folder.

    Checks what a load would otherwise report obscurely or not at all: missing files, a weights file that
    cannot be read (truncated, corrupt), a folder without its tokenizer (which loads as an empty tokenizer).
    """
    from safetensors import safe_open

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} is not a model folder: it has no config.json.")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        hint = " (without it the model cannot tokenise text)" if "tokenizer.json" in missing else ""
        raise FileNotFoundError(f"{folder} lacks {', '.join(missing)}{hint}; save it with save_model_folder.")
    weights = folder / "model.safetensors"
    try:
        with safe_open(str(weights), framework="np") as handle:
            handle.keys()
    except Exception as error:  # noqa: BLE001 - safetensors raises its own error type
        raise ValueError(f"Cannot read the weights file {weights} ({error}): it is corrupt or incomplete; save or "
                         "download the model again.") from error


def _drop_loading_flags(tokenizer_config: Path) -> None:
    """transformers records how *this* tokenizer was loaded (`is_local`, `local_files_only`): not the model's
    business."""
    config = json.loads(tokenizer_config.read_text())
    for key in ("is_local", "local_files_only"):
        config.pop(key, None)
    tokenizer_config.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")


def save_model_folder(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    output_dir: str | os.PathLike,
    extra_files: dict[str, str | bytes] | None = None,
    overwrite: bool = False,
) -> Path:
    """Save `model` + `tokenizer` (+ `extra_files`, relative name -> content) as a complete folder at `output_dir`.

    A new folder is staged beside `output_dir` and renamed into place. An existing folder (with
    `overwrite=True`) is updated in place: its `config.json` is removed first and written back last, so
    until the update is complete the folder does not look like a model; files not part of the model
    (a training run's `checkpoints/`, say) are kept. Raises `FileExistsError` if `output_dir` exists and
    `overwrite` is False.
    """
    output_dir = Path(output_dir)
    if output_dir.exists() and not overwrite:
        raise FileExistsError(f"{output_dir} already exists; pass overwrite=True to replace the model in it.")
    staging = output_dir.with_name(f".{output_dir.name}.partial")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)

    model.save_pretrained(staging, safe_serialization=True)
    tokenizer = copy.deepcopy(tokenizer)  # the caller's tokenizer keeps its own settings
    tokenizer.model_max_length = model.config.max_position_embeddings
    tokenizer.save_pretrained(staging)
    _drop_loading_flags(staging / "tokenizer_config.json")
    set_tokenizer_limit(staging / "tokenizer.json", model.config.max_position_embeddings)
    write_sentence_transformers_files(staging, model.config)
    for name, content in (extra_files or {}).items():
        path = staging / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    missing = [name for name in REQUIRED_FILES if not (staging / name).is_file()]
    if missing:
        raise RuntimeError(f"Saving to {staging} did not produce {missing}; is the model an Asterisk model?")

    if not output_dir.exists():
        os.replace(staging, output_dir)
        return output_dir
    (output_dir / "config.json").unlink(missing_ok=True)
    # Exports derived from the previous weights (onnx/) would no longer match the new ones.
    for derived in ("onnx",):
        if (output_dir / derived).is_dir() and not (staging / derived).exists():
            shutil.rmtree(output_dir / derived)
    staged = sorted(p for p in staging.rglob("*") if p.is_file() and p.name != "config.json")
    for path in staged + [staging / "config.json"]:
        target = output_dir / path.relative_to(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
    shutil.rmtree(staging)
    return output_dir
