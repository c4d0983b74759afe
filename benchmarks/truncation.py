"""Classification accuracy of an Asterisk model's embedding variants: fewer dimensions, or int8 ONNX.

    python benchmarks/truncation.py --model DIR --task trec [--dims 64 128 256] [--int8] [--output_json PATH]

For each variant of the same model, a logistic regression is trained on the task's full train split and
scored on its test split (accuracy, in points): the embedding cut to its first `dims` dimensions and
re-normalised (`encode(truncate_dim=...)`, Matryoshka style), and, with `--int8`, the int8 ONNX graph
(the one that suits this CPU, `onnx_encoder.int8_file_name()`, written by `asterisk_embeddings.onnx_export.export_onnx`)
against PyTorch fp32.
Variants see identical texts, labels and classifier settings, so their differences are the variant's.
A task is any folder of the shared data with `train.csv` and `test.csv` (columns `text`, `label`): trec,
sst2, emotion, banking77, ...

This is a quick paired comparison, not the MTEB protocol (for that, see train/evaluate.py).
"""

import argparse
import csv
import json
import os
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: make modeling_asterisk and train importable
    sys.path.insert(0, str(REPO_ROOT))


def load_task(name: str, data_dir: str | Path | None = None) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """(train texts, train labels, test texts, test labels) of `data_dir/name/{train,test}.csv`."""
    if data_dir is None:
        from train.data_paths import data_root

        data_dir = data_root()
    splits = []
    for split in ("train", "test"):
        path = Path(data_dir) / name / f"{split}.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: a task needs {split}.csv with text,label columns.")
        with open(path, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        splits += [[row["text"] for row in rows], np.array([int(row["label"]) for row in rows])]
    return tuple(splits)


def probe_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> float:
    """Test accuracy (points) of a standardised logistic regression fitted on (train_x, train_y)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=0))
    # One BLAS thread: these matrices are small, and on a busy machine two threads run ~50x slower.
    with threadpool_limits(limits=1):
        classifier.fit(np.asarray(train_x, dtype=np.float64), train_y)
        predictions = classifier.predict(np.asarray(test_x, dtype=np.float64))
    return 100.0 * float((predictions == test_y).mean())


def truncation_accuracies(model, task, dims: list[int], tokenizer=None, batch_size: int = 256) -> dict[int, float]:
    """{dims: accuracy} for `model` (an AsteriskModel) with its embeddings cut to each of `dims`."""
    train_texts, train_y, test_texts, test_y = task
    full_dim = model.config.projection_dim
    raw = [
        model.encode(texts, tokenizer=tokenizer, batch_size=batch_size, normalize=False).numpy()
        for texts in (train_texts, test_texts)
    ]
    accuracies = {}
    for dim in dims:
        if not 0 < dim <= full_dim:
            raise ValueError(f"dims must be in [1, {full_dim}], got {dim}.")
        # As encode(truncate_dim=dim) does: cut, then L2-normalise (one encode pass serves every dim).
        cut = [x[:, :dim] / np.maximum(np.linalg.norm(x[:, :dim], axis=1, keepdims=True), 1e-12) for x in raw]
        accuracies[dim] = probe_accuracy(cut[0], train_y, cut[1], test_y)
    return accuracies


def int8_accuracy(
    model, onnx_dir, task, tokenizer=None, batch_size: int = 256, num_threads: int | None = None
) -> dict[str, float]:
    """Accuracy with PyTorch fp32 embeddings and with the int8 ONNX graph's, and their difference (points).

    Each variant gets its own classifier, trained and tested on its own embeddings.
    """
    from asterisk_embeddings.onnx_encoder import AsteriskOnnxEncoder, int8_file_name

    train_texts, train_y, test_texts, test_y = task
    encoder = AsteriskOnnxEncoder(onnx_dir, int8_file_name(onnx_dir), num_threads=num_threads)
    fp32 = [model.encode(x, tokenizer=tokenizer, batch_size=batch_size).numpy() for x in (train_texts, test_texts)]
    int8 = [encoder.encode(texts, batch_size=batch_size) for texts in (train_texts, test_texts)]
    pytorch_fp32 = probe_accuracy(fp32[0], train_y, fp32[1], test_y)
    onnx_int8 = probe_accuracy(int8[0], train_y, int8[1], test_y)
    return {"pytorch_fp32": pytorch_fp32, "onnx_int8": onnx_int8, "difference": onnx_int8 - pytorch_fp32}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="an Asterisk model folder")
    parser.add_argument("--task", default="trec", help="a folder of the shared data with train.csv and test.csv")
    parser.add_argument("--dims", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--int8", action="store_true", help="also compare the int8 ONNX graph with PyTorch fp32")
    parser.add_argument("--onnx_dir", default=None, help="folder holding the int8 ONNX graphs (default: --model)")
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--output_json", type=Path, default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import modeling_asterisk  # noqa: F401  (registers the Auto classes)
    from modeling_asterisk import AsteriskModel

    model = AsteriskModel.from_pretrained(args.model).eval()
    task = load_task(args.task, args.data_dir)
    report = {
        "model": args.model,
        "task": args.task,
        "num_train": len(task[0]),
        "num_test": len(task[2]),
        "truncation_accuracy": {str(d): round(a, 2) for d, a in truncation_accuracies(model, task, args.dims).items()},
    }
    if args.int8:
        scores = int8_accuracy(model, args.onnx_dir or args.model, task)
        report["int8_accuracy"] = {name: round(value, 2) for name, value in scores.items()}
    text = json.dumps(report, indent=2)
    if args.output_json:
        args.output_json.parent.mkdir(parents=True, exist_ok=True)
        args.output_json.write_text(text + "\n")
    print(text)
    return report


if __name__ == "__main__":
    main()
