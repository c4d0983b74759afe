#!/usr/bin/env bash
# The main job on defaults that work offline on 2 CPU cores (about 30 minutes, see docs/distillation.md):
#   1. distil the paper-size Asterisk from all-MiniLM-L6-v2 (train/configs/cpu.yaml) -> outputs/asterisk-cpu
#   2. evaluate it on the whole suite (MTEB v1 classification + STS)           -> outputs/asterisk-cpu/evaluation
#   3. assemble and validate the Hub release, model card included, offline  -> outputs/asterisk-cpu-release
# Every step resumes: training from its last checkpoint, evaluation from its last finished task.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
py=.venv/bin/python
model_dir="${ASTERISK_OUTPUT_DIR:-outputs/asterisk-cpu}"
release_dir="${model_dir}-release"

# config.json is written last when a model folder is saved, so both files together mean training finished.
if [[ -f "$model_dir/config.json" && -f "$model_dir/training_info.json" ]]; then
  echo "Step 1/3: $model_dir is already trained; skipping distillation."
else
  resume=()
  if compgen -G "$model_dir/checkpoints/step_*/progress.json" > /dev/null; then
    resume=(--resume_from_checkpoint latest)
  fi
  echo "Step 1/3: distilling into $model_dir"
  # --num_cpu_threads_per_process: without it `accelerate launch` sets OMP_NUM_THREADS=1 and uses one core.
  .venv/bin/accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no \
    --num_cpu_threads_per_process "$(nproc)" \
    train/distill.py --config train/configs/cpu.yaml --output_dir "$model_dir" "${resume[@]}"
fi

echo "Step 2/3: evaluating $model_dir"
$py train/evaluate.py --model "$model_dir" --tasks all --output_dir "$model_dir/evaluation"

echo "Step 3/3: assembling the Hub release in $release_dir (dry run: nothing is uploaded)"
rm -rf "$release_dir"
$py push_to_hub.py --model_dir "$model_dir" --dry_run --out_dir "$release_dir"
echo "Model folder: $model_dir; Hub-ready release: $release_dir (publish: see docs/release.md)"
