"""Freezing, optimizer parameter groups and the learning-rate schedule (salova.md §5).

- Stage 1 (`trainable: connectors`): the ST-Connector, SR-Router, projector and the text
  tower's position table train; the vision tower, the rest of the text tower and the LLM
  are frozen.
- Stages 1.5 and 2 (`trainable: all`): everything trains.
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


def set_trainable(model: torch.nn.Module, trainable: str) -> None:
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(trainable == "all" or is_connector_parameter(name))


def group_of(name: str) -> str:
    top = name.split(".", 1)[0]
    return top if top in TOWER_GROUPS else "main"


def parameter_groups(model: torch.nn.Module, recipe) -> list[dict]:
    """One group per learning rate: "main", "vision_tower", "text_tower" (empty ones left out)."""
    lrs = {"main": recipe.learning_rate,
           "vision_tower": recipe.vision_tower_lr or recipe.learning_rate,
           "text_tower": recipe.text_tower_lr or recipe.learning_rate}
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
