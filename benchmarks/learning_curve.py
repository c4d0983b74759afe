"""Learning curve: held-out cosine to the teacher against sentences seen, for several distillation runs.

    python benchmarks/learning_curve.py --run "cpu preset=outputs/bench-cpu" --run "release=outputs/asterisk-release" \
        --output docs/figures/learning_curve.png

Reads each run's `logs/metrics.jsonl` (held-out cosine per evaluation step) and `training_info.json` (global
batch size, corpus size), and plots cosine against sentences seen on a log axis, so runs of different
lengths and batch sizes share one picture. Prints the points as a markdown table.
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def curve(run_dir: Path) -> tuple[list[int], list[float], dict]:
    info = json.loads((run_dir / "training_info.json").read_text())
    batch = info["global_batch_size"]
    lines = (run_dir / "logs" / "metrics.jsonl").read_text().splitlines()
    points = [json.loads(line) for line in lines if line.strip()]
    points = [p for p in points if "heldout_cosine" in p]
    return [p["step"] * batch for p in points], [p["heldout_cosine"] for p in points], info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", required=True, help="LABEL=RUN_DIR (repeat)")
    parser.add_argument("--output", type=Path, required=True, help="PNG to write")
    args = parser.parse_args()

    fig, ax = plt.subplots(figsize=(7, 4))
    print("| run | distinct training texts | batch | sentences seen | held-out cosine |\n|---|---|---|---|---|")
    for value in args.run:
        label, _, folder = value.partition("=")
        seen, cosine, info = curve(Path(folder))
        ax.plot(seen, cosine, marker="o", markersize=3, label=f"{label} ({info['train_sentences']:,} texts)")
        for s, c in zip(seen, cosine):
            print(f"| {label} | {info['train_sentences']:,} | {info['global_batch_size']} | {s:,} | {c:.4f} |")
    ax.set(xscale="log", xlabel="sentences seen (log scale)", ylabel="held-out cosine to teacher",
           title="Asterisk distillation: quality vs sentences seen")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=120)
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
