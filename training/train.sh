#!/usr/bin/env bash
# The three stages in order, each starting from the previous stage's save_pretrained folder.
#   bash training/train.sh <base-llm> [run_name=salova] [ver=v1] [key=value ...]
# key=value pairs are recipe overrides for every stage (e.g. max_steps=4 save_steps=2).
#
# Data per stage (each falls back to DATA_PATH / IMAGE_FOLDER / VIDEO_FOLDER):
#   STAGE1_DATA_PATH STAGE1_IMAGE_FOLDER STAGE1_VIDEO_FOLDER       stage 1 records and media
#   LONGVIDEO_DATA_PATH LONGVIDEO_VIDEO_FOLDER                     SceneWalk records and videos
#   SFT_DATA_PATH SFT_VIDEO_FOLDER                                 SFT records and videos
# Batch per process and accumulation: BATCH1 ACC1, BATCH2 ACC2, BATCH3 ACC3 (defaults: the
# paper's global batches 256 / 8 / 64 on 8 GPUs; with SALOVA_PRESET=tiny the tiny recipes').
# SALOVA_PRESET=tiny with the synthetic corpus (python -m salova.data.synth --preset train
# --out DIR; DATA_ROOT=DIR/train) runs the whole chain on a CPU.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BASE_LLM=${1:?usage: train.sh <base-llm> [run_name] [ver] [key=value ...]}
shift
RUN=salova VER=v1
if [ $# -gt 0 ] && [[ $1 != *=* ]]; then RUN=$1; shift; fi
if [ $# -gt 0 ] && [[ $1 != *=* ]]; then VER=$1; shift; fi
: "${OUTPUT_DIR:?set OUTPUT_DIR}"
if [ "${SALOVA_PRESET:-}" = tiny ] && [ -n "${DATA_ROOT:-}" ]; then
    STAGE1_DATA_PATH=${STAGE1_DATA_PATH:-$DATA_ROOT/stage1.json}
    LONGVIDEO_DATA_PATH=${LONGVIDEO_DATA_PATH:-$DATA_ROOT/scenewalk.json}
    SFT_DATA_PATH=${SFT_DATA_PATH:-$DATA_ROOT/sft.json}
    IMAGE_FOLDER=${IMAGE_FOLDER:-$DATA_ROOT}
    VIDEO_FOLDER=${VIDEO_FOLDER:-$DATA_ROOT}
fi
if [ "${SALOVA_PRESET:-}" = tiny ]; then
    defaults=(8 1 1 2 2 1)
else
    defaults=(16 2 1 1 4 2)
fi

stage() {  # stage SCRIPT DATA IMAGES VIDEOS ARGS...
    local script=$1 data=$2 images=$3 videos=$4
    shift 4
    DATA_PATH=$data IMAGE_FOLDER=$images VIDEO_FOLDER=$videos bash "$HERE/$script" "$@"
}

stage stage1_pretrain.sh "${STAGE1_DATA_PATH:-${DATA_PATH:-}}" "${STAGE1_IMAGE_FOLDER:-${IMAGE_FOLDER:-}}" \
    "${STAGE1_VIDEO_FOLDER:-${VIDEO_FOLDER:-}}" \
    "$BASE_LLM" None "${BATCH1:-${defaults[0]}}" "$RUN-stage1" "$VER" "${ACC1:-${defaults[1]}}" "$@"
stage stage2_longv.sh "${LONGVIDEO_DATA_PATH:-${DATA_PATH:-}}" "" "${LONGVIDEO_VIDEO_FOLDER:-${VIDEO_FOLDER:-}}" \
    "$BASE_LLM" "$OUTPUT_DIR/$RUN-stage1_$VER/final" "${BATCH2:-${defaults[2]}}" "$RUN-stage1.5" "$VER" \
    "${ACC2:-${defaults[3]}}" "$@"
stage stage3_finetune.sh "${SFT_DATA_PATH:-${DATA_PATH:-}}" "" "${SFT_VIDEO_FOLDER:-${VIDEO_FOLDER:-}}" \
    "$BASE_LLM" "$OUTPUT_DIR/$RUN-stage1.5_$VER/final" "${BATCH3:-${defaults[4]}}" "$RUN-stage2" "$VER" \
    "${ACC3:-${defaults[5]}}" "$@"
echo "SALOVA trained: $OUTPUT_DIR/$RUN-stage2_$VER/final"
