"""The evaluation bar chart: main score per task (and the averages), models side by side."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def bar_chart(results: list[dict], path: str | os.PathLike, title: str = "") -> Path:
    """Write a grouped bar chart of `results` (each a results.json dict) to `path` (PNG).

    One group per task in the order of the first model, then the classification and STS averages; one
    bar per model, in percent. Missing scores leave a gap.
    """
    tasks: list[str] = []
    for result in results:
        tasks += [t for t in result.get("tasks", {}) if t not in tasks]
    groups = tasks + [f"avg {kind}" for kind in ("classification", "sts")
                      if any(r.get("averages", {}).get(kind) is not None for r in results)]
    if not groups:
        raise ValueError("No scores to plot.")
    width = 0.8 / max(len(results), 1)
    x = np.arange(len(groups))
    fig, ax = plt.subplots(figsize=(min(16, 4 + 0.6 * len(groups)), 5.5))
    for i, result in enumerate(results):
        values = []
        for group in groups:
            if group.startswith("avg "):
                value = result.get("averages", {}).get(group[4:])
            else:
                value = result.get("tasks", {}).get(group, {}).get("main_score")
            values.append(np.nan if value is None else 100 * value)
        size = f"{result.get('parameters', 0) / 1e6:.1f}M, {result.get('dimensions')}-d"
        label = f"{result.get('label', result.get('model'))} ({size})"
        ax.bar(x + (i - (len(results) - 1) / 2) * width, values, width, label=label)
    ax.set_xticks(x, groups, rotation=45, ha="right")
    ax.set_ylabel("main score (%)")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=min(len(results), 3), frameon=False)
    if title:
        fig.suptitle("\n".join(textwrap.wrap(title, 110)), fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


__all__ = ["bar_chart"]
