"""Benchmark a distillation run: wall time, teacher-target time, training speed, peak host memory, quality.

    python benchmarks/distill.py --output_dir outputs/bench-cpu [-- --config train/configs/cpu.yaml ...]

Runs `accelerate launch train/distill.py` (everything after `--` is passed to it; default: the cpu preset)
in a fresh cache unless `--cache_dir` is given, samples the resident memory of the whole process tree every
0.2 s, and writes `<output_dir>/benchmark.json` and `benchmark.md` from the run's own `training_info.json`.
Tokens/s and the share of the GPU's bf16 peak use ~6 FLOPs per non-embedding parameter per token (forward and
backward), which ignores attention's small T^2 term at these lengths.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
# Dense bf16 tensor-core peaks (vendor figures) for the share-of-peak line.
BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


def sample_peak_rss(process: subprocess.Popen, stop: threading.Event, peak: list) -> None:
    root = psutil.Process(process.pid)
    while not stop.is_set():
        try:
            tree = [root, *root.children(recursive=True)]
            peak[0] = max(peak[0], sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.2)


def non_embedding_parameters(model_dir: Path) -> int:
    config = json.loads((model_dir / "config.json").read_text())
    h, i = config["hidden_size"], config["intermediate_size"]
    layers, p = config["num_hidden_layers"], config["projection_dim"]
    per_layer = 4 * h * h + 4 * h + 2 * h * i + i + h + 4 * h
    return layers * per_layer + 2 * h + h * p + p


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True, help="the run's model folder (must not exist)")
    # Without --num_cpu_threads_per_process, `accelerate launch` exports OMP_NUM_THREADS=1 (unless --cpu is
    # given), which halves CPU training speed on a 2-core machine.
    parser.add_argument("--launch_args", default=f"--num_processes 1 --num_machines 1 --mixed_precision no "
                        f"--dynamo_backend no --num_cpu_threads_per_process {os.cpu_count()}",
                        help="arguments for `accelerate launch`")
    args, distill_args = parser.parse_known_args()
    distill_args = [a for a in distill_args if a != "--"] or ["--config", "train/configs/cpu.yaml"]
    output_dir = Path(args.output_dir)
    if output_dir.exists():
        raise SystemExit(f"{output_dir} exists; a benchmark starts from nothing.")
    if "--cache_dir" not in distill_args:  # a cold cache, so teacher targets are part of the figure
        distill_args += ["--cache_dir", str(output_dir) + ".cache"]

    accelerate = str(Path(sys.executable).parent / "accelerate")
    command = [accelerate, "launch", *args.launch_args.split(), "train/distill.py", *distill_args,
               "--output_dir", str(output_dir)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, env=env)
    stop, peak = threading.Event(), [0]
    sampler = threading.Thread(target=sample_peak_rss, args=(process, stop, peak), daemon=True)
    sampler.start()
    code = process.wait()
    stop.set()
    sampler.join()
    wall = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"distillation failed with exit code {code}")

    info = json.loads((output_dir / "training_info.json").read_text())
    flops_per_token = 6 * non_embedding_parameters(output_dir)
    result = {
        "command": " ".join(["accelerate launch", args.launch_args, "train/distill.py", *distill_args]),
        "wall_seconds_including_startup": round(wall, 1),
        "teacher_targets_seconds": info["teacher_targets_seconds"],
        "train_seconds": info["train_seconds"],
        "train_sentences_per_s": info["train_sentences_per_s"],
        "train_tokens_per_s": info["train_tokens_per_s"],
        "train_tflops": round(info["train_tokens_per_s"] * flops_per_token / 1e12, 3),
        "peak_rss_gb": round(peak[0] / 1e9, 2),
        "final_heldout_cosine": info["final_heldout_cosine"],
        "train_sentences": info["train_sentences"],
        "steps": info["steps"],
        "epochs": info["epochs"],
        "hardware": info["hardware"],
        "python": platform.python_version(),
    }
    gpu = info["hardware"].get("gpu", "")
    peak_tflops = next((v for k, v in BF16_PEAK_TFLOPS.items() if k in gpu), None)
    if peak_tflops:
        result["share_of_bf16_peak"] = round(result["train_tflops"] / peak_tflops, 4)
    (output_dir / "benchmark.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = "\n".join(f"| {k} | {v} |" for k, v in result.items() if k != "hardware")
    hardware = info["hardware"]
    (output_dir / "benchmark.md").write_text(
        f"Hardware: {hardware.get('gpu') or hardware.get('cpu')}, {hardware['num_processes']} process(es), "
        f"mixed precision {hardware['mixed_precision']}, torch {hardware['torch']}.\n\n"
        f"| figure | value |\n|---|---|\n{rows}\n"
    )
    print((output_dir / "benchmark.md").read_text())


if __name__ == "__main__":
    main()
