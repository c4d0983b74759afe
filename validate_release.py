"""Load an assembled Asterisk release the way a Hub user would, in a process that cannot import `modeling_asterisk`.

    python validate_release.py RELEASE_DIR REQUEST.json RESULT.npz

`push_to_hub.validate_release` runs this with the same Python, in an empty working directory, with a
private `HF_HOME` / `HF_MODULES_CACHE`, `HF_HUB_OFFLINE=1` and no token in the environment. REQUEST.json
holds `{"texts": [...], "labels": [...], "repo_id": "user/name"}`. Every loader a user would try runs
on the same texts:

- `AutoTokenizer` (token ids), `AutoModel` (`last_hidden_state`, `pooler_output`, `encode`);
- `AutoModelForSequenceClassification` (encoder weights found, head new, loss and gradients finite);
- `pipeline("feature-extraction")` (token features, and their mean: the sentence vector);
- `SentenceTransformer` (`encode`);
- ONNX Runtime on `onnx/model.onnx` and the int8 graphs (`onnx/model_qint8.onnx`, `onnx/model_quint8_avx2.onnx`)
  when they are in the folder;
- every ```python block of the folder's README.md, in order, with `repo_id` replaced by the folder.

RESULT.npz receives the arrays (compared with the source model by the caller, which has the reference) and
RESULT.json maps each check that raised to its error. The exit status is 0 whenever the checks ran, pass or
fail; only a process that could not start its checks exits non-zero.
"""

import sys

sys.modules["modeling_asterisk"] = None  # as for a Hub user: `import modeling_asterisk` raises ImportError

import contextlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

CODE_BLOCK = re.compile(r"^```python[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)


def main(release: Path, request: dict, result_path: Path) -> None:
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    texts, labels = request["texts"], request["labels"]
    arrays: dict[str, np.ndarray] = {}
    errors: dict[str, str] = {}

    def run(name, check):
        try:
            check()
        except Exception as error:  # noqa: BLE001 - every failure is reported, the other checks still run
            last = traceback.extract_tb(error.__traceback__)[-1]
            errors[name] = f"{type(error).__name__}: {error} (at {Path(last.filename).name}:{last.lineno})"

    def tokenizer_and_auto_model():
        from transformers import AutoModel, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(release, trust_remote_code=True)
        batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        model = AutoModel.from_pretrained(release, trust_remote_code=True).eval()
        if not type(model).__module__.startswith("transformers_modules"):
            raise RuntimeError(f"AutoModel did not load the folder's own code (got {type(model).__module__}).")
        with torch.no_grad():
            output = model(**batch)
        arrays.update(input_ids=batch["input_ids"].numpy(), attention_mask=batch["attention_mask"].numpy(),
                      auto_model_last_hidden_state=output.last_hidden_state.numpy(),
                      auto_model_pooler_output=output.pooler_output.numpy(),
                      auto_model_encode=model.encode(texts).numpy())

    def sequence_classification():
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(release, trust_remote_code=True)
        batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        model, info = AutoModelForSequenceClassification.from_pretrained(
            release, trust_remote_code=True, num_labels=max(labels) + 1, output_loading_info=True
        )
        not_head = [key for key in info["missing_keys"] if not key.startswith("classifier.")]
        if not_head or info["unexpected_keys"] or info.get("mismatched_keys"):
            raise RuntimeError(f"encoder weights not loaded: missing {not_head}, unexpected {info['unexpected_keys']}, "
                               f"mismatched {info.get('mismatched_keys')}")
        output = model(**batch, labels=torch.tensor(labels))
        if output.logits.shape != (len(texts), max(labels) + 1) or not torch.isfinite(output.loss):
            raise RuntimeError(f"logits {tuple(output.logits.shape)}, loss {output.loss}")
        output.loss.backward()
        if not all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None):
            raise RuntimeError("non-finite gradients")
        model.eval()
        with torch.no_grad():
            arrays["sequence_classification_pooler_output"] = model.asterisk(**batch).pooler_output.numpy()

    def feature_extraction_pipeline():
        from transformers import pipeline

        extractor = pipeline("feature-extraction", model=str(release), trust_remote_code=True)
        sentences = []
        for i, text in enumerate(texts):
            features = extractor(text, return_tensors=True, truncation=True)  # (1, tokens, hidden)
            arrays[f"pipeline_features_{i}"] = features[0].numpy()
            sentences.append(features.mean(dim=1)[0].numpy())  # the card's recipe: the mean of the token features
        arrays["pipeline_sentence_embedding"] = np.stack(sentences)

    def sentence_transformers():
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(release), trust_remote_code=True, device="cpu")
        arrays["sentence_transformers_encode"] = model.encode(texts, convert_to_numpy=True)

    def onnx_runtime():
        import onnxruntime as ort
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(release, trust_remote_code=True)
        batch = tokenizer(texts, padding=True, truncation=True, return_tensors="np")
        feed = {name: batch[name].astype(np.int64) for name in ("input_ids", "attention_mask")}
        for key, name in (("onnx_fp32", "onnx/model.onnx"), ("onnx_int8", "onnx/model_qint8.onnx"),
                          ("onnx_int8_avx2", "onnx/model_quint8_avx2.onnx")):
            if (release / name).is_file():
                session = ort.InferenceSession(str(release / name), providers=["CPUExecutionProvider"])
                arrays[key] = session.run(None, feed)[0]

    def readme_snippets():
        blocks = CODE_BLOCK.findall((release / "README.md").read_text(encoding="utf-8"))
        if not blocks:
            raise RuntimeError("README.md has no ```python code blocks")
        import huggingface_hub

        local = str(release)
        # The README's ONNX recipe downloads the repository; here the repository is this folder.
        huggingface_hub.snapshot_download = lambda repo_id, **kwargs: local if repo_id == local else _no_hub(repo_id)
        for number, code in enumerate(blocks, 1):
            code = code.replace(json.dumps(request["repo_id"]), json.dumps(local))
            try:
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    exec(compile(code, f"README.md python block {number}", "exec"), {"__name__": "__main__"})
            except Exception as error:
                first_line = code.strip().splitlines()[0]
                raise RuntimeError(f"python block {number} ({first_line!r}...) failed: "
                                   f"{type(error).__name__}: {error}") from error

    run("tokenizer + AutoModel", tokenizer_and_auto_model)
    run("AutoModelForSequenceClassification", sequence_classification)
    run('pipeline("feature-extraction")', feature_extraction_pipeline)
    run("SentenceTransformer", sentence_transformers)
    run("ONNX Runtime", onnx_runtime)
    run("README.md code", readme_snippets)
    np.savez(result_path, **arrays)
    result_path.with_suffix(".json").write_text(json.dumps(errors, indent=2))


def _no_hub(repo_id):
    raise RuntimeError(f"README code asked the Hub for {repo_id!r}; only the release folder is available here.")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__.split("\n\n")[1])
    main(Path(sys.argv[1]).resolve(), json.loads(Path(sys.argv[2]).read_text()), Path(sys.argv[3]).resolve())
