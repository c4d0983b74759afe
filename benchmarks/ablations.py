"""Run distillation variants and score each with the evaluation harness: the ablation table.

    python benchmarks/ablations.py --spec benchmarks/ablations.yaml --output_dir outputs/ablations

The spec names a base preset, settings common to every variant, the evaluation tasks, and the variants
(each a name plus `--key value` overrides for train/distill.py). Every variant trains into
`<output_dir>/<slug>/` and is evaluated into `<slug>/evaluation/`; finished variants are skipped, so the
script can be stopped and re-run. Writes `<output_dir>/ablations.json` and `ablations.md`: per variant the
held-out cosine to the teacher, the classification average (MTEB v1 protocol), STS-B Spearman, and time.
"""

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from train.evaluate import evaluate_models  # noqa: E402


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def train_variant(base: str, settings: dict, output_dir: Path) -> dict:
    if not (output_dir / "training_info.json").is_file():
        args = [a for key, value in settings.items() for a in (f"--{key}", json.dumps(value) if isinstance(value, (list, dict)) else str(value))]
        resume = ["--resume_from_checkpoint", "latest"] if list(output_dir.glob("checkpoints/step_*/progress.json")) else []
        command = [sys.executable, "train/distill.py", "--config", base, *args, "--output_dir", str(output_dir), *resume]
        print("$", " ".join(command), flush=True)
        subprocess.run(command, cwd=REPO, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return json.loads((output_dir / "training_info.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default="benchmarks/ablations.yaml")
    parser.add_argument("--output_dir", default="outputs/ablations")
    parser.add_argument("--only", help="comma-separated variant slugs to run (default: all)")
    args = parser.parse_args()
    spec = yaml.safe_load(Path(args.spec).read_text())
    output_dir = Path(args.output_dir)
    only = set(args.only.split(",")) if args.only else None

    rows = []
    for variant in spec["variants"]:
        name = variant["name"]
        if only and slug(name) not in only:
            continue
        folder = output_dir / slug(name)
        info = train_variant(spec["base"], {**spec.get("common", {}), **variant.get("args", {})}, folder)
        results = evaluate_models([f"{slug(name)}={folder}"], spec["eval_tasks"], str(folder / "evaluation"))[slug(name)]
        tasks = results["tasks"]
        rows.append({
            "variant": name,
            "settings": variant.get("args", {}),
            "heldout_cosine": info["final_heldout_cosine"],
            "classification_average": results["averages"].get("classification"),
            "stsb_spearman": tasks.get("stsb", {}).get("spearman"),
            "per_task": {task: scores.get("main_score") for task, scores in tasks.items()},
            "train_seconds": info["train_seconds"],
            "sentences_seen": info["sentences_seen"],
        })

    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "ablations.json").write_text(json.dumps({"spec": spec, "rows": rows}, indent=2) + "\n")
    task_names = sorted({t for row in rows for t in row["per_task"]})
    lines = [
        "| variant | held-out cosine | classification avg | STS-B | " + " | ".join(task_names) + " | train time |",
        "|---|---|---|---|" + "---|" * len(task_names) + "---|",
    ]
    for row in rows:
        pct = lambda v: "-" if v is None else f"{100 * v:.2f}"  # noqa: E731
        lines.append(f"| {row['variant']} | {row['heldout_cosine']:.4f} | {pct(row['classification_average'])} | "
                     f"{pct(row['stsb_spearman'])} | " + " | ".join(pct(row["per_task"].get(t)) for t in task_names)
                     + f" | {row['train_seconds'] / 60:.1f} min |")
    (output_dir / "ablations.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
