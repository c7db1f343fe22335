"""Frame preprocessing per vision-tower family, matching the Hugging Face image
processors of the towers (their PIL backend):

- SigLIP: resize the whole frame to S x S (bicubic), mean = std = 0.5.
- CLIP:   resize the short side to S (bicubic, long side truncated to int like
          transformers), center crop S x S, OpenAI CLIP mean / std.

Resizing works on uint8 frames one at a time, as they are decoded, so a long
video never holds full-resolution frames; normalisation turns the stacked
uint8 frames into the float tensor the tower takes.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from salova.errors import ConfigError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)
NORMALISATION = {"siglip": (SIGLIP_MEAN, SIGLIP_STD), "clip": (CLIP_MEAN, CLIP_STD)}
TOWER_FAMILIES = tuple(NORMALISATION)


def check_family(family: str) -> str:
    if family not in NORMALISATION:
        raise ConfigError(f"tower_family: {family!r} is not one of {TOWER_FAMILIES}")
    return family


def short_side_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(height, width) with the short side = size, as transformers computes it."""
    if width <= height:
        return int(size * height / width), size
    return size, int(size * width / height)


def resize_frame(frame: np.ndarray, size: int, family: str) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) uint8 for the tower family."""
    check_family(family)
    image = Image.fromarray(frame)
    if family == "siglip":
        return np.array(image.resize((size, size), Image.Resampling.BICUBIC))
    new_h, new_w = short_side_size(frame.shape[0], frame.shape[1], size)
    resized = np.asarray(image.resize((new_w, new_h), Image.Resampling.BICUBIC))
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return np.array(resized[top : top + size, left : left + size])


def normalize_frames(frames: np.ndarray | torch.Tensor, family: str) -> torch.Tensor:
    """(N, S, S, 3) uint8 -> (N, 3, S, S) float32 normalised for the tower family."""
    mean, std = NORMALISATION[check_family(family)]
    pixels = torch.as_tensor(frames).permute(0, 3, 1, 2).float() / 255.0  # (N, 3, S, S)
    mean_t = torch.tensor(mean, device=pixels.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=pixels.device).view(1, 3, 1, 1)
    return (pixels - mean_t) / std_t
