"""Training metrics: an accelerate tracker writing JSON lines, and the loss / cosine-to-teacher curves as a PNG."""

import json
from pathlib import Path

from accelerate.tracking import GeneralTracker


class JSONLinesTracker(GeneralTracker):
    """Appends one JSON object per `accelerator.log` call to `<logging_dir>/metrics.jsonl` (resume-safe).

    Accelerate calls trackers on the main process only. The constructor must not touch accelerate's state:
    it runs before the Accelerator that would set it up.
    """

    name = "jsonl"
    requires_logging_directory = True

    def __init__(self, run_name: str, logging_dir: str | Path):
        super().__init__()
        self.path = Path(logging_dir) / "metrics.jsonl"  # created on first write, by the main process only

    @property
    def tracker(self):
        return self.path

    def store_init_configuration(self, values: dict):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        (self.path.parent / "config.json").write_text(json.dumps(values, indent=2, default=str))

    def log(self, values: dict, step: int | None = None, **kwargs):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as handle:
            handle.write(json.dumps({"step": step, **values}) + "\n")


def read_metrics(path: str | Path, after_resume_cut: bool = True) -> list[dict]:
    """Rows of a metrics.jsonl; after a resume, rows logged past the restored step appear twice: keep the last."""
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    if not after_resume_cut:
        return rows
    kept: dict[tuple, dict] = {}
    for row in rows:
        kept[(row.get("step"), tuple(sorted(k for k in row if k != "step")))] = row
    return sorted(kept.values(), key=lambda r: r.get("step") or 0)


def plot_training_curves(metrics_path: str | Path, png_path: str | Path, title: str = "Asterisk distillation") -> None:
    """Training loss and held-out cosine-to-teacher against optimizer steps, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_path)
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    heldout = [(r["step"], r["heldout_cosine"]) for r in rows if "heldout_cosine" in r]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    if train:
        left.plot(*zip(*train), color="tab:blue", linewidth=1)
    # Log scale: the first steps' loss is 100x the rest.
    left.set(xlabel="optimizer step", ylabel="training loss (log scale)", title="Loss", yscale="log")
    left.grid(alpha=0.3)
    if heldout:
        right.plot(*zip(*heldout), marker="o", markersize=3, color="tab:green")
        right.annotate(f"{heldout[-1][1]:.3f}", heldout[-1], textcoords="offset points", xytext=(-10, 6))
    right.set(xlabel="optimizer step", ylabel="cosine to teacher", title="Held-out cosine to teacher")
    right.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
