#!/usr/bin/env bash
# The main job on defaults that work offline on 2 CPU cores:
#   distil the paper-size Asterisk from all-MiniLM-L6-v2 (train/configs/cpu.yaml) -> outputs/asterisk-cpu
# Re-running resumes from the last checkpoint instead of starting again.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
py=.venv/bin/python
model_dir="${ASTERISK_OUTPUT_DIR:-outputs/asterisk-cpu}"

resume=()
if compgen -G "$model_dir/checkpoints/step_*/progress.json" > /dev/null; then
  resume=(--resume_from_checkpoint latest)
fi
.venv/bin/accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no \
  train/distill.py --config train/configs/cpu.yaml --output_dir "$model_dir" "${resume[@]}"
echo "Model folder: $model_dir"
