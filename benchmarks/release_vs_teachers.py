"""Draw the release beside its two teachers from recorded harness results (docs/study.md, section 4).

Every model is restricted to the tasks the strong teacher was scored on (its long-text tasks cost hours of a CPU),
so the averages in the chart compare the same tasks.

    python benchmarks/release_vs_teachers.py --out docs/figures/release_vs_teachers.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make train importable
    sys.path.insert(0, str(REPO))

from benchmarks.ablations import recorded_results  # noqa: E402
from train.evaluate import averages  # noqa: E402
from train.evaluation.plots import bar_chart  # noqa: E402


def load_results(path: Path, label: str) -> dict:
    """A results.json, or the model with that label inside a comparison.json."""
    return recorded_results({"label": label, "recorded": str(path)})


def on_tasks(results: dict, tasks: list[str]) -> dict:
    """`results` with only `tasks`, its averages recomputed over them (the input is left as it was)."""
    kept = {name: entry for name, entry in results["tasks"].items() if name in tasks}
    return {**results, "tasks": kept, "averages": averages(kept)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--release", type=Path, default=REPO / "release/evaluation/results.json")
    parser.add_argument("--minilm", type=Path, default=REPO / "docs/release_model/comparison.json",
                        help="results holding the model labelled all-MiniLM-L6-v2")
    parser.add_argument("--teacher", type=Path, default=REPO / "docs/release_eval/nomic-embed-text-v1.5.json")
    parser.add_argument("--out", type=Path, default=REPO / "docs/figures/release_vs_teachers.png")
    args = parser.parse_args(argv)

    teacher = load_results(args.teacher, "nomic")
    tasks = list(teacher["tasks"])
    models = [(load_results(args.release, "asterisk"), "Asterisk release"),
              (load_results(args.minilm, "all-MiniLM-L6-v2"), "all-MiniLM-L6-v2"),
              (teacher, "nomic-embed-text-v1.5")]
    shown = []
    for results, label in models:
        restricted = {**on_tasks(results, tasks), "label": label}
        shown.append(restricted)
        average = restricted["averages"]
        print(f"{label}: classification {100 * average['classification']:.2f} "
              f"({average['n_classification_tasks']} tasks), STS {100 * average['sts']:.2f}")
    left_out = [name for name in models[0][0]["tasks"] if name not in tasks]
    title = ("The release beside its two teachers: main score on the tasks the strong teacher was scored on"
             + (f" ({', '.join(left_out)} left out)" if left_out else ""))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    bar_chart(shown, args.out, title=title)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
