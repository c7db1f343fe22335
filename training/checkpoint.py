"""Saving and resuming a run, and the `save_pretrained` hand-off between stages.

OUTPUT_DIR/checkpoints/step-0000040/   one DeepSpeed checkpoint per save:
    mp_rank_00_model_states.pt, *_optim_states.pt     (DeepSpeed: weights, optimizer, schedule)
    train_state.json                                  (next step, processes, records skipped so far)
    rng_rank<r>.pt                                    (Python, NumPy, torch RNG states per process)
    salova/                                           (config + processor: makes the folder convertible)
OUTPUT_DIR/checkpoints/latest                         (DeepSpeed's pointer to the newest tag)
OUTPUT_DIR/final/                                     (save_pretrained: model + processor, safetensors)

train_state.json holds the data position (the next optimizer step) and the records skipped so
far; with the RNG states that is everything a restarted run needs to continue exactly where
the killed one was. DeepSpeed cannot re-partition ZeRO optimizer states, so a run resumes with
the number of processes that wrote the checkpoint.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from salova.errors import CheckpointError

CHECKPOINTS = "checkpoints"
FINAL = "final"
CONFIG_FOLDER = "salova"
STATE_FILE = "train_state.json"


def tag(step: int) -> str:
    return f"step-{step:07d}"


def rng_state() -> dict:
    numpy_state = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": (numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)), *numpy_state[2:])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(engine, output_dir: Path, step: int, state: dict, model, processor) -> Path:
    """Write the checkpoint of `step` (all processes take part); `state` is the trainer's
    {"step", "skipped", ...}. Returns the checkpoint folder."""
    root = output_dir / CHECKPOINTS
    folder = root / tag(step)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(rng_state(), folder / f"rng_rank{dist.get_rank()}.pt")
    if dist.get_rank() == 0:
        (folder / STATE_FILE).write_text(json.dumps({**state, "world_size": dist.get_world_size()}))
        model.config.save_pretrained(folder / CONFIG_FOLDER)
        processor.save_pretrained(folder / CONFIG_FOLDER)
    # last: DeepSpeed moves `latest` to this tag only once everything above is on disk
    engine.save_checkpoint(str(root), tag=tag(step))
    return folder


def latest(output_dir: Path) -> Path | None:
    pointer = output_dir / CHECKPOINTS / "latest"
    if not pointer.is_file():
        return None
    return output_dir / CHECKPOINTS / pointer.read_text().strip()


def resume(engine, folder: Path) -> dict:
    """Load weights, optimizer and schedule from `folder`, restore this process's RNG; returns the trainer state."""
    state = json.loads((folder / STATE_FILE).read_text())
    if state["world_size"] != dist.get_world_size():
        raise CheckpointError(
            f"{folder}: written by {state['world_size']} processes, resumed with {dist.get_world_size()}; DeepSpeed "
            f"cannot re-partition the ZeRO optimizer state. Resume with {state['world_size']} processes, or start a "
            f"new run from its weights (python -m training.convert {folder} DIR, then init_from=DIR).")
    engine.load_checkpoint(str(folder.parent), tag=folder.name)
    restore_rng(torch.load(folder / f"rng_rank{dist.get_rank()}.pt", weights_only=True))
    return state


def export_pretrained(engine, model, processor, folder: Path, zero_stage: int) -> Path:
    """save_pretrained (safetensors) of the trained model plus the processor, for the next stage."""
    state = engine._zero3_consolidated_16bit_state_dict() if zero_stage == 3 else None  # collective
    if dist.get_rank() == 0:
        model.save_pretrained(folder, state_dict=state, safe_serialization=True)
        processor.save_pretrained(folder)
    dist.barrier()
    return folder
