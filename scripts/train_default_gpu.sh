#!/usr/bin/env bash
# Trains stages 1 and 2 of the bundled default model on one GPU, then exports it as fp16.
# This is the recipe of src/wavesr/weights/wavesr-cpu-x4 (`cpu-s8` preset; docs/model-card.md has
# the exact data, machine, wall time and the CPU fine-tuning that followed). Every knob is an
# environment variable:
#   CONFIG    preset (default cpu-s8, the bundled model's; `cpu` for latents at 1/4 of the image)
#   DATA      training folders (default: the shared IXI and Cheng training folders)
#   RUNS      where the two run folders go (default: runs)
#   MODEL     exported model folder (default: runs/wavesr-gpu-x4)
#   AE_MIN / AE_STEPS / LDT_MIN / LDT_STEPS   wall-clock and step budgets of the two stages
set -euo pipefail
DATA=${DATA:-"../shared/data/train/ixi_t1 ../shared/data/train/cheng_t1ce"}
RUNS=${RUNS:-runs}
MODEL=${MODEL:-$RUNS/wavesr-gpu-x4}
AE_MIN=${AE_MIN:-4}
AE_STEPS=${AE_STEPS:-6000}
LDT_MIN=${LDT_MIN:-2.5}
LDT_STEPS=${LDT_STEPS:-5000}
WAVESR=${WAVESR:-wavesr}
CONFIG=${CONFIG:-cpu-s8}

# shellcheck disable=SC2086  # DATA is a list of folders
$WAVESR train autoencoder --config "$CONFIG" --data $DATA --out "$RUNS/ae_gpu" --quiet \
  --max-minutes "$AE_MIN" --max-steps "$AE_STEPS" \
  --set autoencoder_training.train.batch_size=32
# The LDT sees whole 224 x 224 slices, as at inference.
# shellcheck disable=SC2086
$WAVESR train ldt --config "$CONFIG" --autoencoder "$RUNS/ae_gpu" --data $DATA --out "$RUNS/ldt_gpu" \
  --quiet --max-minutes "$LDT_MIN" --max-steps "$LDT_STEPS" \
  --set ldt_training.train.batch_size=64 --set data.crop=224 --set data.cache_max_slices=0
$WAVESR export --ldt "$RUNS/ldt_gpu" --out "$MODEL" --fp16
