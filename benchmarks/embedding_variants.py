"""Accuracy of an Asterisk model's cheaper variants over the whole evaluation suite: fewer dimensions
(Matryoshka truncation) and int8 ONNX graphs, each against the model itself (PyTorch fp32, all dimensions).

    python benchmarks/embedding_variants.py --model release --output_dir outputs/variants \\
        [--dims 128 64 32] [--int8 dynamic dynamic-per-channel matmul-only static] [--tasks all]

Every variant is scored by the evaluation harness (train/evaluate.py: MTEB v1 classification, SentEval, STS)
on identical texts, so differences are the variant's. The int8 graphs are written into a scratch copy of the
model folder (`<output_dir>/graphs/`); "static" is calibrated on `--calibration_texts` corpus texts, tokenised
as the model reads them. Writes `<output_dir>/variants.json` and `variants.md`: per variant the classification
and STS averages, their change, and the largest per-task loss.
"""

import argparse
import gzip
import json
import os
import random
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from train.evaluate import evaluate_models  # noqa: E402


def calibration_batches(model_dir: Path, count: int, batch_size: int = 32, seed: int = 0) -> list[tuple]:
    """`count` random corpus texts, tokenised and padded as the model reads them, in length-sorted batches."""
    from tokenizers import Tokenizer

    from asterisk_embeddings.text_batching import length_sorted_batches, tokenize_to_limit
    from train.data_paths import data_root

    config = json.loads((model_dir / "config.json").read_text())
    with gzip.open(data_root() / "distill_corpus" / "sentences.tsv.gz", "rt", encoding="utf-8") as handle:
        lines = handle.read().splitlines()[1:]
    texts = [line.split("\t", 1)[1] for line in random.Random(seed).sample(lines, count)]
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))

    def encode_batch(batch, limit):
        tokenizer.enable_truncation(max_length=limit)
        return [e.ids for e in tokenizer.encode_batch(batch, add_special_tokens=False)]

    ids = tokenize_to_limit(encode_batch, texts, config["max_position_embeddings"]).ids
    return [(input_ids, mask) for _, input_ids, mask in length_sorted_batches(ids, batch_size, config["pad_token_id"])]


def write_int8_graphs(model_dir: Path, out: Path, methods: list[str], calibration_texts: int) -> dict[str, Path]:
    from asterisk_embeddings.onnx_export import export_onnx, quantize_onnx

    out.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json"):
        shutil.copyfile(model_dir / name, out / name)
    fp32 = out / "onnx" / "model.onnx"
    if not fp32.is_file():
        export_onnx(model_dir, out, quantize=False)
    graphs = {"onnx-fp32": fp32}
    for method in methods:
        path = out / "onnx" / f"model_{method}.onnx"
        if not path.is_file():
            calibration = calibration_batches(model_dir, calibration_texts) if method == "static" else None
            quantize_onnx(fp32, path, method=method, calibration=calibration)
        graphs[f"int8-{method}"] = path
    return graphs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="an Asterisk model folder")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--tasks", default="all")
    parser.add_argument("--dims", type=int, nargs="*", default=[128, 64, 32])
    parser.add_argument("--int8", nargs="*", default=["dynamic", "dynamic-per-channel", "matmul-only", "static"])
    parser.add_argument("--calibration_texts", type=int, default=1024)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model_dir, output_dir = Path(args.model).resolve(), Path(args.output_dir)

    models, options = [f"full={model_dir}"], {}
    for dim in args.dims:
        models.append(f"dim{dim}={model_dir}")
        options[f"dim{dim}"] = {"truncate_dim": dim}
    graphs = write_int8_graphs(model_dir, output_dir / "graphs", args.int8, args.calibration_texts) if args.int8 else {}
    models += [f"{label}={path}" for label, path in graphs.items()]
    results = evaluate_models(models, args.tasks, output_dir / "evaluation", model_options=options)

    full = results["full"]
    rows = []
    for label, scores in results.items():
        deltas = {t: 100 * (e["main_score"] - full["tasks"][t]["main_score"]) for t, e in scores["tasks"].items()
                  if e["task_type"] != "sts" and t in full["tasks"]}
        worst = min(deltas, key=deltas.get) if deltas else None
        rows.append({"variant": label, "dimensions": scores["dimensions"],
                     "classification": scores["averages"]["classification"], "sts": scores["averages"]["sts"],
                     "classification_change": 100 * (scores["averages"]["classification"]
                                                     - full["averages"]["classification"]),
                     "worst_task": worst, "worst_task_change": deltas.get(worst), "per_task_change": deltas})
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "variants.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = ["| variant | dims | classification avg | change | largest task loss | STS avg |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        worst = f"{row['worst_task_change']:+.2f} ({row['worst_task']})" if row["worst_task"] else "-"
        lines.append(f"| {row['variant']} | {row['dimensions']} | {100 * row['classification']:.2f} | "
                     f"{row['classification_change']:+.2f} | {worst} | {100 * row['sts']:.2f} |")
    (output_dir / "variants.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
