"""Write Asterisk folders whose embedding is the same model's, re-expressed by a fixed linear map.

    python benchmarks/geometry_variants.py whiten --model release --output_dir outputs/geometry
    python benchmarks/geometry_variants.py heads --run outputs/study-teachers/minilm-120k-nomic-40k \
        --output_dir outputs/geometry
    python train/evaluate.py --model outputs/geometry/whiten-soft --tasks all --output_dir outputs/geometry/eval

Every map is folded into the pooler's linear projection (`y = W h + b` becomes `A^T (W h + b - m)`), so a variant
is an ordinary model folder of the same architecture and size that any loader reads; the study compares them with
the harness (docs/study.md, "Post-hoc changes to the embedding's geometry"). Two families:

- `whiten`: the embedding's mean `m` and covariance over a seeded sample of the distillation corpus; `center`
  subtracts the mean, `whiten-soft` also rescales each principal direction by 1 / sqrt(variance + mean variance)
  (full whitening would blow up the near-empty directions).
- `heads`: a training run's train-time heads map the student's 256-d vector `s` into each teacher's space
  (`H s + c`); the loss compares there, not in the student's own space. With `H = U S V^T`, the coordinates
  `S V^T s + U^T c` have the geometry of `H s + c` (cosines and norms; U's columns are orthonormal) except for
  the part of `c` outside U's span, so the variant embeds in the teacher space's geometry in 256 dimensions.
  `head-minilm`, `head-nomic` (a run's first and second teachers) and `head-both` (the two heads stacked).
"""

import argparse
import os
import random
import shutil
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: make modeling_asterisk and train importable
    sys.path.insert(0, str(REPO_ROOT))

PROJECTION = "pooler.projection"


def corpus_sample(n: int, seed: int = 0) -> list[str]:
    """`n` texts of the distillation corpus, drawn with a seeded shuffle."""
    from train.data_paths import corpus_texts

    texts = corpus_texts()
    random.Random(seed).shuffle(texts)
    return texts[:n]


def write_variant(source: Path, output: Path, weight: np.ndarray, bias: np.ndarray) -> None:
    """Copy the model folder `source` to `output` with the pooler's projection replaced by (weight, bias)."""
    import torch
    from safetensors.torch import load_file, save_file

    if output.exists():
        shutil.rmtree(output)
    shutil.copytree(source, output, ignore=shutil.ignore_patterns("evaluation", "onnx", "*.png", "README.md"))
    state = load_file(output / "model.safetensors")
    # float32 even beside float16 weights: the folded map is what the comparison measures, not its rounding.
    state[f"{PROJECTION}.weight"] = torch.from_numpy(weight).float().contiguous()
    state[f"{PROJECTION}.bias"] = torch.from_numpy(bias).float().contiguous()
    save_file(state, output / "model.safetensors", metadata={"format": "pt"})
    print(f"wrote {output}")


def whiten_variants(model_dir: Path, output_dir: Path, texts: int) -> None:
    import torch

    import modeling_asterisk  # noqa: F401  (registers the Auto classes)
    from modeling_asterisk import AsteriskModel

    model = AsteriskModel.from_pretrained(model_dir).eval()
    with torch.inference_mode():
        raw = model.encode(corpus_sample(texts), batch_size=128, normalize=False).double().numpy()
    mean = raw.mean(0)
    unit = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    half = len(unit) // 2
    print(f"mean cosine of {half} random pairs: {float(np.mean(np.sum(unit[:half] * unit[half:2 * half], 1))):.4f}")
    variances, directions = np.linalg.eigh(np.cov(raw - mean, rowvar=False))
    print(f"variance share of the top direction: {variances[-1] / variances.sum():.4f}")
    weight = model.pooler.projection.weight.detach().double().numpy()
    bias = model.pooler.projection.bias.detach().double().numpy()
    for name, a in (("center", np.eye(len(mean))),
                    ("whiten-soft", directions / np.sqrt(variances + variances.mean()))):
        write_variant(model_dir, output_dir / name, a.T @ weight, a.T @ (bias - mean))


def head_variants(run_dir: Path, output_dir: Path) -> None:
    import torch
    from safetensors.torch import load_file

    checkpoints = sorted((run_dir / "checkpoints").glob("step_*"))
    if not checkpoints:
        raise FileNotFoundError(f"{run_dir}/checkpoints holds no step_* checkpoint: the heads live only there.")
    state = load_file(checkpoints[-1] / "model.safetensors")
    weight = state[f"student.{PROJECTION}.weight"].double()
    bias = state[f"student.{PROJECTION}.bias"].double()
    heads = []
    while f"to_teachers.{len(heads)}.0.weight" in state:
        i = len(heads)
        heads.append((state[f"to_teachers.{i}.0.weight"].double(), state[f"to_teachers.{i}.0.bias"].double()))
    if len(heads) != 2:
        raise ValueError(f"{checkpoints[-1]} has {len(heads)} linear teacher heads; this map needs a two-teacher run.")
    (h_minilm, c_minilm), (h_nomic, c_nomic) = heads
    for name, h, c in (("head-minilm", h_minilm, c_minilm), ("head-nomic", h_nomic, c_nomic),
                       ("head-both", torch.cat([h_minilm, h_nomic]), torch.cat([c_minilm, c_nomic]))):
        u, s, vt = torch.linalg.svd(h, full_matrices=False)
        to_coordinates = torch.diag(s) @ vt
        inside = u.T @ c
        print(f"{name}: singular values {float(s.max()):.3f} .. {float(s.min()):.3f}; bias outside the span "
              f"{float((c - u @ inside).norm()):.3f} of {float(c.norm()):.3f}")
        write_variant(run_dir / "model", output_dir / name, (to_coordinates @ weight).numpy(),
                      (to_coordinates @ bias + inside).numpy())


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="family", required=True)
    whiten = commands.add_parser("whiten", help="center / whiten-soft, from the corpus statistics of a model folder")
    whiten.add_argument("--model", type=Path, required=True, help="an Asterisk model folder")
    whiten.add_argument("--texts", type=int, default=30000, help="corpus texts for the mean and covariance")
    heads = commands.add_parser("heads", help="head-minilm / head-nomic / head-both, from a two-teacher run folder")
    heads.add_argument("--run", type=Path, required=True, help="a train/distill.py run folder with checkpoints/")
    for command in (whiten, heads):
        command.add_argument("--output_dir", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.family == "whiten":
        whiten_variants(args.model, args.output_dir, args.texts)
    else:
        head_variants(args.run, args.output_dir)


if __name__ == "__main__":
    main()
