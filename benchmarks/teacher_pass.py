"""How fast a teacher scores corpus texts on this CPU, per forward dtype, and how close each dtype's targets are.

    python benchmarks/teacher_pass.py --teacher ~/.cache/asterisk-teachers/nomic-embed-text-v1.5 \
        --texts 512 --threads 2 --output outputs/teacher-pass.json

The texts are the ones the teacher pass reads: a seeded sample of the distillation corpus, each cut to the
student's 128 GPT-2 tokens and decoded back (as `train/distill.py` does). Each dtype is timed over the same
texts after one warm-up batch; fidelity is the cosine of each text's vector to its float32 vector (mean and
minimum). Writes JSON and prints a markdown table.
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from asterisk_embeddings.tokenizer import build_tokenizer  # noqa: E402
from train.data_paths import corpus_texts  # noqa: E402
from train.distillation.teacher import Teacher, TeacherSpec  # noqa: E402


def corpus_sample(n: int, max_length: int, seed: int = 0) -> list[str]:
    """`n` corpus texts (seeded), truncated to the student's token limit as the teacher pass sees them."""
    lines = corpus_texts()
    rng = np.random.default_rng(seed)
    picked = [lines[i] for i in rng.choice(len(lines), size=n, replace=False)]
    tokenizer = build_tokenizer(max_length)
    ids = tokenizer(picked, truncation=True, max_length=max_length)["input_ids"]
    return tokenizer.batch_decode(ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--max_length", type=int, default=128, help="the student's token limit")
    parser.add_argument("--output", default="outputs/teacher-pass.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    texts = corpus_sample(args.texts, args.max_length)
    rows, vectors = [], {}
    for dtype in args.dtypes.split(","):
        teacher = Teacher(TeacherSpec(args.teacher, dtype=dtype, batch_size=args.batch_size))
        teacher.encode(texts[: args.batch_size])  # warm-up
        started = time.perf_counter()
        vectors[dtype] = teacher.encode(texts)
        seconds = time.perf_counter() - started
        rows.append({"dtype": dtype, "texts_per_second": len(texts) / seconds, "seconds": seconds})
        del teacher
    if "float32" in vectors:
        reference = vectors["float32"] / np.linalg.norm(vectors["float32"], axis=1, keepdims=True)
        for row in rows:
            v = vectors[row["dtype"]] / np.linalg.norm(vectors[row["dtype"]], axis=1, keepdims=True)
            cosine = (v * reference).sum(axis=1)
            row.update(cosine_to_float32_mean=float(cosine.mean()), cosine_to_float32_min=float(cosine.min()))

    record = {"teacher": args.teacher, "texts": len(texts), "threads": args.threads, "batch_size": args.batch_size,
              "cpu": platform.processor() or platform.machine(), "torch": torch.__version__, "rows": rows}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(record, indent=2) + "\n")
    print(f"| dtype | texts/s ({args.threads} threads, batch {args.batch_size}) | cosine to fp32 (mean / min) |")
    print("|---|---|---|")
    for row in rows:
        fidelity = (f"{row['cosine_to_float32_mean']:.5f} / {row['cosine_to_float32_min']:.5f}"
                    if "cosine_to_float32_mean" in row else "-")
        print(f"| {row['dtype']} | {row['texts_per_second']:.1f} | {fidelity} |")


if __name__ == "__main__":
    main()
