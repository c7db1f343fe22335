#!/usr/bin/env bash
# Shared by the stage scripts (sourced, not run): starts `python -m training.train` with the
# right launcher, and maps the reference arguments and variables onto recipe overrides.
#
# Launching (environment):
#   LAUNCHER   python | torchrun | deepspeed   (default: python for one process, else torchrun;
#              deepspeed when HOSTFILE is set)
#   NPROC      processes per node (default: the number of GPUs, 1 without GPUs)
#   NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT   multi-node with torchrun (rendezvous c10d)
#   HOSTFILE   multi-node with the deepspeed launcher (one "host slots=N" line per node)
#   PYTHON     interpreter (default: the repository's .venv if present, else python)
#   SALOVA_PRESET   model preset; "tiny" selects the tiny-*.yaml CPU recipes
#   EXTRA_OVERRIDES recipe overrides for every stage, e.g. "max_steps=4 save_steps=2"
#   RESUME=1   continue each stage from its newest checkpoint (a finished stage just re-exports)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$REPO/.venv/bin/python" ]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=python; fi
fi
GPUS=$("$PYTHON" -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
NPROC=${NPROC:-$([ "$GPUS" -gt 0 ] && echo "$GPUS" || echo 1)}
NNODES=${NNODES:-1}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}
SALOVA_PRESET=${SALOVA_PRESET:-}
if [ "$SALOVA_PRESET" = tiny ]; then
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # tiny matrices: extra threads only wait on each other
fi

# recipe_for STAGE -> the recipe file of the stage for the chosen preset
recipe_for() {
    if [ "$SALOVA_PRESET" = tiny ]; then echo "training/recipes/tiny-$1.yaml"; else echo "training/recipes/$1.yaml"; fi
}

# preset_for BASE_LLM -> the paper preset whose LLM it is (SALOVA_PRESET wins)
preset_for() {
    if [ -n "$SALOVA_PRESET" ]; then echo "$SALOVA_PRESET"; return; fi
    case "$1" in
        *[Qq]wen2.5*) echo qwen2.5-7b-siglip ;;
        *[Ll]lama-3.2*|*[Ll]lama3.2*) echo llama3.2-3b-clip ;;
        *[Pp]hi-3.5*|*[Pp]hi3.5*) echo phi3.5-clip ;;
        *) echo "cannot tell the preset of base LLM '$1'; set SALOVA_PRESET" >&2; return 1 ;;
    esac
}

# stage_overrides BASE_LLM PRETRAINED BATCH RUN_NAME VER ACC -> key=value lines for the recipe
stage_overrides() {
    local base_llm=$1 pretrained=$2 batch=$3 run_name=$4 ver=$5 acc=$6 preset
    preset=$(preset_for "$base_llm")
    echo "preset=$preset"
    if [ "$preset" != tiny ]; then
        echo "llm=$base_llm"
        echo "vision_tower=${VISION_TOWER:-google/siglip-so400m-patch14-384}"
        echo "text_tower=${TEXT_TOWER:-${VISION_TOWER:-google/siglip-so400m-patch14-384}}"
    fi
    if [ "$pretrained" = None ] || [ -z "$pretrained" ]; then echo "init_from=null"; else echo "init_from=$pretrained"; fi
    echo "micro_batch_size=$batch"
    echo "gradient_accumulation_steps=$acc"
    echo "output_dir=${OUTPUT_DIR:?set OUTPUT_DIR}/${run_name}_${ver}"
    [ -n "${DATA_PATH:-}" ] && echo "data_path=$DATA_PATH"
    [ -n "${IMAGE_FOLDER:-}" ] && echo "image_folder=$IMAGE_FOLDER"
    [ -n "${VIDEO_FOLDER:-}" ] && echo "video_folder=$VIDEO_FOLDER"
    for pair in ${EXTRA_OVERRIDES:-}; do echo "$pair"; done
}

# launch STAGE ARGS... -> runs the trainer on every process of this node
launch() {
    local launcher=${LAUNCHER:-}
    if [ -z "$launcher" ]; then
        if [ -n "${HOSTFILE:-}" ]; then launcher=deepspeed
        elif [ "$NPROC" -gt 1 ] || [ "$NNODES" -gt 1 ]; then launcher=torchrun
        else launcher=python; fi
    fi
    case "$launcher" in
        python) "$PYTHON" -m training.train "$@" ;;
        torchrun)
            if [ "$NNODES" -gt 1 ]; then
                "$PYTHON" -m torch.distributed.run --nnodes "$NNODES" --node_rank "${NODE_RANK:-0}" \
                    --nproc_per_node "$NPROC" --rdzv_backend c10d --rdzv_endpoint "$MASTER_ADDR:$MASTER_PORT" \
                    -m training.train "$@"
            else
                "$PYTHON" -m torch.distributed.run --nproc_per_node "$NPROC" --master_addr "$MASTER_ADDR" \
                    --master_port "$MASTER_PORT" -m training.train "$@"
            fi ;;
        deepspeed)
            local hosts=()
            [ -n "${HOSTFILE:-}" ] && hosts=(--hostfile "$HOSTFILE") || hosts=(--num_gpus "$NPROC")
            "$PYTHON" -m deepspeed.launcher.runner "${hosts[@]}" --master_addr "$MASTER_ADDR" \
                --master_port "$MASTER_PORT" --module training.train "$@" ;;
        *) echo "LAUNCHER=$launcher is not one of python, torchrun, deepspeed" >&2; return 2 ;;
    esac
}

# run_stage STAGE BASE_LLM PRETRAINED BATCH RUN_NAME VER ACC [key=value ...]
run_stage() {
    if [ $# -lt 7 ]; then
        echo "usage: $(basename "$0") <base-llm> <pretrained_or_None> <batch> <run_name> <ver> <acc_step> [key=value ...]" >&2
        return 2
    fi
    local stage=$1 overrides=()
    shift
    mapfile -t overrides < <(stage_overrides "$1" "$2" "$3" "$4" "$5" "$6")
    shift 6
    local resume=()
    [ "${RESUME:-0}" = 1 ] && resume=(--resume)
    launch --stage "$stage" --recipe "$(recipe_for "$stage")" "${resume[@]}" "${overrides[@]}" "$@"
}
