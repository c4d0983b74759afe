"""Run distillation variants and score them with the evaluation harness, beside reference models: the study table.

    python benchmarks/ablations.py --spec benchmarks/study_teachers.yaml --output_dir outputs/study-teachers

The spec names a base preset, settings common to every variant, the evaluation tasks, reference models
(evaluated in the same harness run, e.g. the teachers, or, where a reference costs more CPU than the study has,
read from an earlier harness run's `comparison.json` / `results.json` with `recorded: PATH`, and marked so in
the table) and the variants (each a name plus `--key value`
overrides for train/distill.py). Every variant trains into `<output_dir>/<slug>/` (a run folder; the model
is `<slug>/model`); finished variants are skipped and a killed one resumes, so the script can be stopped and
re-run. All models are then evaluated together into `<output_dir>/evaluation/` (per-model results, the
harness's comparison table and chart). Writes `<output_dir>/ablations.json` and `ablations.md`: per variant the
teachers and texts, held-out cosine, classification and STS averages, per-task scores, the tasks won against the
first reference, and the training time.
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


def train_variant(base: str, settings: dict, run_dir: Path) -> dict:
    info_path = run_dir / "model" / "training_info.json"
    if not info_path.is_file():
        args = [a for key, value in settings.items()
                for a in (f"--{key}", json.dumps(value) if isinstance(value, (list, dict)) else str(value))]
        started = list(run_dir.glob("checkpoints/step_*/progress.json"))
        resume = ["--resume_from_checkpoint", "latest"] if started else []
        command = [sys.executable, "train/distill.py", "--config", base, *args, "--output_dir", str(run_dir),
                   *resume]
        print("$", " ".join(command), flush=True)
        subprocess.run(command, cwd=REPO, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return json.loads(info_path.read_text())


def recorded_results(reference: dict) -> dict:
    """A reference's scores from an earlier harness run: a results.json, or that label's model in a comparison.json."""
    data = json.loads((REPO / reference["recorded"]).read_text())
    for results in data.get("models", [data]):
        if results.get("label") == reference["label"]:
            return results
    raise SystemExit(f"{reference['recorded']} holds no model labelled {reference['label']!r}.")


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def table(rows: list[dict], references: list[dict]) -> str:
    tasks = list(dict.fromkeys(t for row in rows + references for t in row["per_task"]))
    first = references[0]["label"] if references else None
    header = ["model", "teachers (texts scored)", "held-out cosine", "classification avg", "STS avg",
              f"classification tasks won vs {first}" if first else "", "train time", *tasks]
    lines = ["| " + " | ".join(h for h in header if h != "") + " |", "|" + "---|" * len([h for h in header if h])]
    for row in references:
        kind = f"recorded {row['recorded']}" if row.get("recorded") else "reference"
        cells = [f"*{row['label']}* ({kind})", "-", "-", _pct(row["classification_average"]),
                 _pct(row["sts_average"]), *(["-"] if first else []), "-",
                 *[_pct(row["per_task"].get(t)) for t in tasks]]
        lines.append("| " + " | ".join(cells) + " |")
    for row in rows:
        teachers = "; ".join(f"{t['name']} ({t['texts']:,})" for t in row["teachers"])
        cells = [row["variant"], teachers, f"{row['heldout_cosine']:.4f}", _pct(row["classification_average"]),
                 _pct(row["sts_average"]), *([f"{row['wins']}/{row['n_classification']}"] if first else []),
                 f"{row['train_seconds'] / 60:.1f} min", *[_pct(row["per_task"].get(t)) for t in tasks]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default="benchmarks/ablations.yaml")
    parser.add_argument("--output_dir", default="outputs/ablations")
    parser.add_argument("--only", help="comma-separated variant slugs to run (default: all)")
    parser.add_argument("--train_only", action="store_true", help="train the variants, do not evaluate")
    parser.add_argument("--skip_references", default="",
                        help="comma-separated reference labels to leave out of this run (e.g. an expensive teacher, "
                             "evaluated by a later run into the same folder)")
    args = parser.parse_args()
    spec = yaml.safe_load(Path(args.spec).read_text())
    output_dir = Path(args.output_dir)
    only = set(args.only.split(",")) if args.only else None
    variants = [v for v in spec["variants"] if not only or slug(v["name"]) in only]

    infos = {}
    for variant in variants:
        settings = {**spec.get("common", {}), **variant.get("args", {})}
        infos[variant["name"]] = train_variant(spec["base"], settings, output_dir / slug(variant["name"]))
    if args.train_only:
        return

    skipped = set(filter(None, args.skip_references.split(",")))
    references = [r for r in spec.get("references", []) if r["label"] not in skipped]
    live = [r for r in references if "recorded" not in r]
    models = [f"{r['label']}={os.path.expanduser(r['model'])}" for r in live]
    models += [f"{slug(v['name'])}={output_dir / slug(v['name']) / 'model'}" for v in variants]
    options = {r["label"]: r["options"] for r in references if r.get("options")}
    results = evaluate_models(models, spec["eval_tasks"], str(output_dir / "evaluation"), model_options=options)
    recorded = {r["label"]: r["recorded"] for r in references if "recorded" in r}
    results.update({r["label"]: recorded_results(r) for r in references if "recorded" in r})

    def summary(label: str) -> dict:
        scores = results[label]
        return {"label": label, "recorded": recorded.get(label),
                "classification_average": scores["averages"].get("classification"),
                "sts_average": scores["averages"].get("sts"),
                "per_task": {task: entry.get("main_score") for task, entry in scores["tasks"].items()}}

    reference_rows = [summary(r["label"]) for r in references]
    rows = []
    for variant in variants:
        info, row = infos[variant["name"]], summary(slug(variant["name"]))
        classification = [t for t, e in results[row["label"]]["tasks"].items() if e["task_type"] != "sts"]
        wins = 0
        if reference_rows:
            first = reference_rows[0]["per_task"]
            wins = sum(1 for t in classification if (row["per_task"][t] or 0) > (first.get(t) or 1))
        rows.append({**row, "variant": variant["name"], "settings": variant.get("args", {}),
                     "teachers": [{"name": Path(t["name"]).name, "texts": t["texts_scored"], "prompt": t["prompt"]}
                                  for t in info["teachers"]],
                     "heldout_cosine": info["final_heldout_cosine"], "wins": wins,
                     "n_classification": len(classification), "train_seconds": info["train_seconds"],
                     "train_sentences": info["train_sentences"], "sentences_seen": info["sentences_seen"]})

    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "ablations.json").write_text(
        json.dumps({"spec": spec, "references": reference_rows, "rows": rows}, indent=2) + "\n")
    markdown = table(rows, reference_rows)
    (output_dir / "ablations.md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
