#!/usr/bin/env bash
# Stage 2 (video instruction tuning): everything trains, 2e-5 / towers 2e-6, chat template.
#   bash training/stage3_finetune.sh <base-llm> <stage-1.5 final folder | None> <batch> <run_name> <ver> <acc_step> [key=value ...]
# Data: DATA_PATH (SFT records), VIDEO_FOLDER; writes OUTPUT_DIR/<run_name>_<ver>/final.
source "$(dirname "$0")/launch.sh"
run_stage sft "$@"
