#!/usr/bin/env bash
# Stage 1.5 (long-video knowledge, SceneWalk): everything trains, 2e-5 / towers 2e-6.
#   bash training/stage2_longv.sh <base-llm> <stage-1 final folder | None> <batch> <run_name> <ver> <acc_step> [key=value ...]
# Data: DATA_PATH (SceneWalk records), VIDEO_FOLDER; writes OUTPUT_DIR/<run_name>_<ver>/final.
source "$(dirname "$0")/launch.sh"
run_stage longvideo "$@"
