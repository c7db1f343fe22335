"""Load a SALOVA checkpoint folder (model + processor) for inference."""

from __future__ import annotations

from pathlib import Path

import torch

from salova.errors import CheckpointError
from salova.modeling.salova import SalovaForCausalLM
from salova.processing import SalovaProcessor


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_checkpoint(path: str | Path, device: str | torch.device | None = None,
                    dtype: torch.dtype | None = None) -> tuple[SalovaForCausalLM, SalovaProcessor]:
    """Model in eval mode on `device` (default: CUDA when present) and its processor.

    dtype defaults to bfloat16 on CUDA and float32 on CPU.
    """
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: checkpoint folder not found (expected the output of save_pretrained)")
    device = torch.device(device) if device is not None else default_device()
    dtype = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
    model = SalovaForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
    processor = SalovaProcessor.from_pretrained(path, model.config)
    return model, processor
