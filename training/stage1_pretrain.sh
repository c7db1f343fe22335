#!/usr/bin/env bash
# Stage 1 (alignment): connector, router, projector and text position table at 1e-3.
#   bash training/stage1_pretrain.sh <base-llm> <pretrained_or_None> <batch> <run_name> <ver> <acc_step> [key=value ...]
# Data: DATA_PATH (stage-1 records), IMAGE_FOLDER and VIDEO_FOLDER (media roots); writes
# OUTPUT_DIR/<run_name>_<ver>/final. Towers: VISION_TOWER, TEXT_TOWER. Launch: training/launch.sh.
source "$(dirname "$0")/launch.sh"
run_stage pretrain "$@"
