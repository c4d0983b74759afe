"""Student training speed on a CPU, per training variant, at equal sentences seen: sentences/s and held-out cosine.

    python benchmarks/training_speed.py --output_dir outputs/training-speed [--steps 1875] \\
        [--variants fp32-dense bf16-dense fp32-sparse bf16-sparse-eager] [-- --config cpu ...]

Each variant is one `accelerate launch train/distill.py` run of the `cpu` preset (or whatever follows `--`),
cut to `--steps` optimizer steps (1,875 = one epoch of the preset's 120,000 texts at batch 64), with warm
caches (the first variant pays for the teacher targets; the timing below excludes them). A variant is a
mixed precision (`no` or `bf16` autocast) plus distill settings:

    fp32-dense         the preset as it is (AdamW over everything, sdpa attention)
    bf16-dense         + bf16 autocast
    fp32-sparse        + sparse_token_updates (SparseAdam for the token table)
    bf16-sparse        + both
    bf16-sparse-eager  + both, and eager attention while training

Sentences/s is the run's own training-loop figure (`train_sentences_per_s` in training_info.json: steps only,
no evaluation or checkpoints); the held-out cosine is the final one, on the same 2,000 held-out texts for all.
Writes `<output_dir>/training_speed.json` and `.md`.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VARIANTS = {
    "fp32-dense": ("no", []),
    "bf16-dense": ("bf16", []),
    "fp32-sparse": ("no", ["--sparse_token_updates", "true"]),
    "bf16-sparse": ("bf16", ["--sparse_token_updates", "true"]),
    "bf16-sparse-eager": ("bf16", ["--sparse_token_updates", "true", "--attn_implementation", "eager"]),
}


def run_variant(name: str, output_dir: Path, steps: int, threads: int, distill_args: list[str]) -> dict:
    precision, settings = VARIANTS[name]
    run_dir = output_dir / name
    command = [str(Path(sys.executable).parent / "accelerate"), "launch", "--num_processes", "1", "--num_machines",
               "1", "--mixed_precision", precision, "--dynamo_backend", "no", "--num_cpu_threads_per_process",
               str(threads), "train/distill.py", *distill_args, "--output_dir", str(run_dir), "--max_steps",
               str(steps), "--eval_every", str(steps), "--checkpoint_every", str(steps), *settings]
    log = output_dir / f"{name}.log"
    print(f"{name}: {' '.join(command)}", flush=True)
    with open(log, "w") as handle:
        result = subprocess.run(command, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT,
                                env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if result.returncode != 0:
        raise SystemExit(f"{name} failed (exit {result.returncode}); see {log}")
    info = json.loads((run_dir / "model" / "training_info.json").read_text())
    return {"variant": name, "mixed_precision": precision, "settings": settings, "steps": info["steps"],
            "sentences_seen": info["sentences_seen"], "sentences_per_s": info["train_sentences_per_s"],
            "tokens_per_s": info["train_tokens_per_s"], "train_seconds": info["train_seconds"],
            "heldout_cosine": info["final_heldout_cosine"], "cpu": info["hardware"]["cpu"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--steps", type=int, default=1875)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args, distill_args = parser.parse_known_args()
    distill_args = [a for a in distill_args if a != "--"] or ["--config", "cpu"]
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.variants:
        rows.append(run_variant(name, output_dir, args.steps, args.threads, distill_args))
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]["sentences_per_s"]
    record = {"cpu": rows[0]["cpu"], "cores": os.cpu_count(), "threads": args.threads, "steps": args.steps,
              "distill_args": distill_args, "rows": rows}
    (output_dir / "training_speed.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [f"CPU: {record['cpu']}, {args.threads} threads; {args.steps} steps of `{' '.join(distill_args)}`.", "",
             f"| variant | sentences/s | x {rows[0]['variant']} | held-out cosine |", "|---|---|---|---|"]
    lines += [f"| {r['variant']} | {r['sentences_per_s']:,.0f} | {r['sentences_per_s'] / base:.2f} | "
              f"{r['heldout_cosine']:.4f} |" for r in rows]
    (output_dir / "training_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
