#!/usr/bin/env bash
# The main job on defaults that work offline on 2 CPU cores (about 30 minutes, see docs/distillation.md):
#   1. distil the paper-size Asterisk from all-MiniLM-L6-v2 (train/configs/cpu.yaml) -> outputs/asterisk-cpu/model
#   2. evaluate it on the whole suite (MTEB v1 classification + STS)                 -> outputs/asterisk-cpu/evaluation
#   3. assemble and validate the Hub release, model card included, offline        -> outputs/asterisk-cpu/release
# Every step resumes: training from its last checkpoint, evaluation from its last finished task.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
py=.venv/bin/python
run_dir="${ASTERISK_OUTPUT_DIR:-outputs/asterisk-cpu}"
preset="${ASTERISK_PRESET:-cpu}"

# model/ appears (atomically) only when training has finished.
if [[ -f "$run_dir/model/config.json" ]]; then
  echo "Step 1/3: $run_dir is already trained; skipping distillation."
else
  resume=()
  if compgen -G "$run_dir/checkpoints/step_*/progress.json" > /dev/null; then
    resume=(--resume_from_checkpoint latest)
  fi
  # bf16 autocast (with eager attention, whose backward is the fast one in bf16) pays where the CPU multiplies
  # bf16 in hardware: 1.6x the fp32 run with AMX, 1.5x with AVX-512 BF16 alone (Zen 4), at the same held-out
  # cosine (docs/distillation.md). Without either, bf16 is emulated and slower, so such CPUs train in fp32.
  fast=()
  if grep -qwE "amx_bf16|avx512_bf16" /proc/cpuinfo 2>/dev/null; then
    fast=(--mixed_precision bf16 --attn_implementation eager)
  fi
  echo "Step 1/3: distilling into $run_dir (preset $preset ${fast[*]})"
  # --num_cpu_threads_per_process: without it `accelerate launch` sets OMP_NUM_THREADS=1 and uses one core.
  .venv/bin/accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no \
    --num_cpu_threads_per_process "$(nproc)" \
    train/distill.py --config "$preset" --output_dir "$run_dir" "${fast[@]}" "${resume[@]}"
fi

echo "Step 2/3: evaluating $run_dir/model"
$py train/evaluate.py --model "$run_dir/model" --tasks all --output_dir "$run_dir/evaluation"

echo "Step 3/3: assembling the Hub release in $run_dir/release (dry run: nothing is uploaded)"
rm -rf "$run_dir/release"
$py push_to_hub.py --model_dir "$run_dir/model" --eval_dir "$run_dir/evaluation" --dry_run --out_dir "$run_dir/release"
echo "Model folder: $run_dir/model; Hub-ready release: $run_dir/release (publish: see docs/release.md)"
