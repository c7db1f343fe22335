"""Memoised outputs of a frozen vision tower.

When the vision tower does not train (the paper's stage 1, which trains only the connectors, and
the `small` recipe's stage 2 with vision_tower_lr 0), its outputs for a video are the same every
time the video comes back, so training can keep them instead of running the tower again.
Frames are recognised by their bytes (BLAKE2b of the pixel tensor, with its shape and dtype), so
the memo cannot hand one video's features to another.
`training.train` attaches one to the model (recipe key `tower_cache_mb`); inference never does.
"""

from __future__ import annotations

import hashlib

import torch

from salova.lru import ByteLRU


def frames_key(pixels: torch.Tensor) -> tuple:
    data = pixels.detach().contiguous().cpu().view(-1).view(torch.uint8).numpy()
    return tuple(pixels.shape), str(pixels.dtype), hashlib.blake2b(data, digest_size=16).digest()


class TowerMemo:
    def __init__(self, budget_mb: float):
        self.cache = ByteLRU(budget_mb)

    def __call__(self, tower: torch.nn.Module, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tower(pixels) -> (patches (N, P, D), cls (N, D)), from the memo when these frames came before."""
        return self.cache.get(frames_key(pixels), lambda: self._run(tower, pixels))

    @staticmethod
    def _run(tower, pixels):
        if any(parameter.requires_grad for parameter in tower.parameters()):
            raise RuntimeError("TowerMemo: the vision tower trains; its outputs cannot be memoised")
        with torch.no_grad():
            return tower(pixels)
