"""The `mlp2x_gelu` projector: visual tokens (width D) into the LLM's embedding space (width H).

Both FocusFast pathways (local tokens of the Focus scenes, routing tokens of all scenes) go
through this one MLP.
"""

import torch
from torch import nn


class Projector(nn.Module):
    def __init__(self, vision_dim: int, llm_dim: int):
        super().__init__()
        self.linear_1 = nn.Linear(vision_dim, llm_dim)
        self.act = nn.GELU()
        self.linear_2 = nn.Linear(llm_dim, llm_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        # (..., D) -> (..., H)
        return self.linear_2(self.act(self.linear_1(tokens)))
