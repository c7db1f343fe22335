"""FocusFast: which scenes the LLM sees in full, and where the visual tokens go in the prompt.

    block = [ MLP(local tokens of the Focus scenes, in temporal order) ; MLP(routing tokens of all scenes) ]
              (|focus| * L tokens)                                         (T tokens)

The block replaces the single `<image>` placeholder of the prompt and is never a loss target.
`use_focus=False` / `use_fast=False` drop one pathway (the paper's FocusFast ablation).
"""

from __future__ import annotations

import torch
from torch import nn

from salova.errors import ConfigError, RecordError

IGNORE_INDEX = -100


def select_focus(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the min(k, T) best-scored scenes, in temporal (ascending) order.

    scores (T,) -> LongTensor (min(k, T),). Ties go to the earlier scene, so the choice is
    deterministic; k >= T selects every scene.
    """
    if k < 1:
        raise ConfigError(f"focus_k = {k} must be at least 1")
    ranked = torch.sort(scores.detach().float(), descending=True, stable=True).indices
    return ranked[:k].sort().values


def uniform_focus(num_scenes: int, k: int) -> torch.Tensor:
    """The no-router baseline: min(k, T) scenes evenly spaced over the video, ascending.

    Scene i of k is the one holding position (i + 0.5) / k of the scene sequence, so the
    Focus budget (k scenes x L tokens) is the router's; k >= T selects every scene.
    """
    if k < 1:
        raise ConfigError(f"focus_k = {k} must be at least 1")
    if k >= num_scenes:
        return torch.arange(num_scenes)
    return ((torch.arange(k) + 0.5) * num_scenes / k).long()


def visual_block(projector: nn.Module, local: torch.Tensor, routing: torch.Tensor, focus: torch.Tensor,
                 use_focus: bool = True, use_fast: bool = True) -> torch.Tensor:
    """local (T, L, D), routing (T, D), focus (K,) -> (K*L + T, H) (fewer rows in the ablations)."""
    if not (use_focus or use_fast):
        raise ConfigError("use_focus and use_fast are both False: the LLM would see no video tokens")
    parts = []
    if use_focus:
        parts.append(projector(local[focus].flatten(0, 1)))  # (K*L, H)
    if use_fast:
        parts.append(projector(routing))  # (T, H)
    return torch.cat(parts)


def splice(embeds: torch.Tensor, input_ids: torch.Tensor, labels: torch.Tensor | None, block: torch.Tensor,
           image_token_index: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Replace the one placeholder of a sequence by the visual block.

    embeds (N, H) text embeddings (any vector at the placeholder), input_ids (N,), labels (N,) or
    None, block (M, H) -> embeds (N - 1 + M, H), labels (N - 1 + M,) with -100 over the block.
    """
    where = (input_ids == image_token_index).nonzero().flatten()
    if len(where) != 1:
        raise RecordError(f"input_ids: expected exactly one <image> placeholder ({image_token_index}), "
                          f"found {len(where)}")
    at = int(where[0])
    spliced = torch.cat([embeds[:at], block.to(embeds.dtype), embeds[at + 1:]])
    if labels is None:
        return spliced, None
    ignored = labels.new_full((len(block),), IGNORE_INDEX)
    return spliced, torch.cat([labels[:at], ignored, labels[at + 1:]])
