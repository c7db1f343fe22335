"""Freezing, optimizer parameter groups and the learning-rate schedule (salova.md §5).

- Stage 1 (`trainable: connectors`): the ST-Connector, SR-Router, projector and the text
  tower's position table train; the vision tower, the rest of the text tower and the LLM
  are frozen.
- Stages 1.5 and 2 (`trainable: all`): everything trains, except a tower whose LR is 0 (frozen).
- Groups as in the released `create_optimizer`: parameters of the vision tower take
  `vision_tower_lr`, of the text tower `text_tower_lr`, everything else `learning_rate`;
  an unset tower LR means `learning_rate`. Weight decay is the recipe's (0) for all.
- AdamW (0.9, 0.999); cosine schedule with linear warm-up over `warmup_ratio` of the steps.
"""

from __future__ import annotations

import math

import torch
from transformers import get_cosine_schedule_with_warmup

CONNECTOR_MODULES = ("connector", "router", "projector")
TOWER_GROUPS = ("vision_tower", "text_tower")


def is_connector_parameter(name: str) -> bool:
    """Trainable in stage 1: the connector modules and the text tower's position table."""
    top = name.split(".", 1)[0]
    return top in CONNECTOR_MODULES or (top == "text_tower" and "position_embedding" in name)


def set_trainable(model: torch.nn.Module, recipe) -> None:
    """requires_grad from the recipe's `trainable`, and off for a tower whose LR is 0."""
    frozen = {group for group, lr in group_lrs(recipe).items() if lr == 0}
    for name, parameter in model.named_parameters():
        trains = recipe.trainable == "all" or is_connector_parameter(name)
        parameter.requires_grad_(trains and group_of(name) not in frozen)


def group_of(name: str) -> str:
    top = name.split(".", 1)[0]
    return top if top in TOWER_GROUPS else "main"


def group_lrs(recipe) -> dict[str, float]:
    """The learning rate of each group: an unset (None) tower LR is the main one; 0 stays 0."""
    towers = {"vision_tower": recipe.vision_tower_lr, "text_tower": recipe.text_tower_lr}
    return {"main": recipe.learning_rate,
            **{group: recipe.learning_rate if lr is None else lr for group, lr in towers.items()}}


def parameter_groups(model: torch.nn.Module, recipe) -> list[dict]:
    """One group per learning rate: "main", "vision_tower", "text_tower" (empty ones left out)."""
    lrs = group_lrs(recipe)
    params: dict[str, list] = {name: [] for name in lrs}
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            params[group_of(name)].append(parameter)
    return [{"name": name, "params": ps, "lr": lrs[name], "weight_decay": recipe.weight_decay}
            for name, ps in params.items() if ps]


def build_optimizer(model: torch.nn.Module, recipe) -> torch.optim.Optimizer:
    return torch.optim.AdamW(parameter_groups(model, recipe), lr=recipe.learning_rate,
                             betas=tuple(recipe.adam_betas), weight_decay=recipe.weight_decay)


def warmup_steps(total_steps: int, warmup_ratio: float) -> int:
    return math.ceil(total_steps * warmup_ratio)


def schedule_builder(total_steps: int, warmup_ratio: float):
    """A callable DeepSpeed applies to its wrapped optimizer: optimizer -> cosine schedule."""
    def build(optimizer):
        return get_cosine_schedule_with_warmup(optimizer, warmup_steps(total_steps, warmup_ratio), total_steps)
    return build
