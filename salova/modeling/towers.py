"""Vision and text towers (CLIP or SigLIP, from transformers), built from `SalovaConfig`.

VisionTower: frames -> pooled patch tokens + one CLS-like vector per frame.
  SigLIP: the output of the last kept layer (the released model drops layer 27 of 27), before
          the post-layernorm; CLS = mean of the patch tokens.
  CLIP:   hidden state of layer -2; token 0 is the CLS, the rest are patches.
  Patches (g x g) are resized bilinearly to pool_grid x pool_grid (the released code's "2x2
  pooling": 24 -> 12 for CLIP, 27 -> 14 for SigLIP). Frames go through in chunks of
  `frame_chunk`.

TextTower: query tokens -> [pooled ; hidden_states[-2]] for the SR-Router. The pooled vector is
  read at each sequence's real end token (attention_mask.sum - 1 under right padding), after the
  final layernorm (then the SigLIP head), so it never depends on how much padding a batch adds.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPVisionConfig,
    CLIPVisionModel,
    SiglipTextConfig,
    SiglipTextModel,
    SiglipVisionConfig,
    SiglipVisionModel,
)

from salova.config import SalovaConfig
from salova.data.transforms import normalize_frames
from salova.errors import CheckpointError

VISION_MODELS = {"siglip": (SiglipVisionConfig, SiglipVisionModel), "clip": (CLIPVisionConfig, CLIPVisionModel)}
TEXT_MODELS = {"siglip": (SiglipTextConfig, SiglipTextModel), "clip": (CLIPTextConfig, CLIPTextModel)}


class VisionTower(nn.Module):
    def __init__(self, config: SalovaConfig):
        super().__init__()
        config_class, model_class = VISION_MODELS[config.tower_family]
        self.model = model_class(config_class(**config.vision_config, attn_implementation=config._attn_implementation))
        self.family = config.tower_family
        self.feature_layer = config.vision_feature_layer
        self.patch_grid = config.patch_grid
        self.pool_grid = config.pool_grid
        self.frame_chunk = config.frame_chunk

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # pixels (N, 3, S, S) normalised, or raw frames (N, S, S, 3) uint8 (normalised chunk by chunk,
        # so an hour of frames never exists as one float tensor) -> patches (N, P, D), cls (N, D)
        chunks = [self._encode(self._prepare(chunk)) for chunk in pixels.split(self.frame_chunk)]
        patches, cls = zip(*chunks)
        return torch.cat(patches), torch.cat(cls)

    def _prepare(self, chunk: torch.Tensor) -> torch.Tensor:
        chunk = chunk.to(self.model.device)
        if chunk.dtype == torch.uint8:
            chunk = normalize_frames(chunk, self.family)
        return chunk.to(self.model.dtype)

    def _encode(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.model(pixel_values=pixels, output_hidden_states=True).hidden_states[self.feature_layer]
        if self.family == "clip":
            cls, grid_tokens = hidden[:, 0], hidden[:, 1:]  # (n, D), (n, g*g, D)
        else:
            grid_tokens = hidden
            cls = grid_tokens.mean(dim=1)
        return self._pool(grid_tokens), cls

    def _pool(self, tokens: torch.Tensor) -> torch.Tensor:
        # (n, g*g, D) -> (n, pool_grid**2, D), bilinear, align_corners=False
        n, _, dim = tokens.shape
        grid = tokens.reshape(n, self.patch_grid, self.patch_grid, dim).permute(0, 3, 1, 2)
        pooled = F.interpolate(grid, size=(self.pool_grid, self.pool_grid), mode="bilinear", align_corners=False)
        return pooled.flatten(2).transpose(1, 2)


class TextTower(nn.Module):
    def __init__(self, config: SalovaConfig):
        super().__init__()
        config_class, model_class = TEXT_MODELS[config.tower_family]
        self.model = model_class(config_class(**config.text_config, attn_implementation=config._attn_implementation))
        self.family = config.tower_family

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # input_ids, attention_mask (B, L), right padded -> tokens (B, 1+L, d_t), mask (B, 1+L) bool
        mask = attention_mask.bool()
        out = self.model(input_ids=input_ids, attention_mask=mask.long(), output_hidden_states=True)
        end = mask.sum(dim=1) - 1  # (B,) index of each sequence's real last token
        pooled = out.last_hidden_state[torch.arange(len(end), device=end.device), end]  # (B, d_t)
        if self.family == "siglip":
            pooled = self._siglip_head()(pooled)
        tokens = torch.cat([pooled.unsqueeze(1), out.hidden_states[-2]], dim=1)
        return tokens, torch.cat([mask.new_ones(len(mask), 1), mask], dim=1)


    def _siglip_head(self) -> nn.Module:
        # transformers 5 keeps the head on SiglipTextModel itself; 4.x keeps it on .text_model
        return self.model.head if hasattr(self.model, "head") else self.model.text_model.head


def load_pretrained_towers(vision: VisionTower, text: TextTower, name_or_path: str) -> None:
    """Copy the pretrained CLIP/SigLIP weights of `name_or_path` into both towers, in place.

    Vision layers beyond the config's count (SigLIP's dropped layer 27) are skipped. The text
    position table keeps its extended length: the pretrained rows (64 or 77) are copied to the
    start, the remaining rows keep their fresh initialisation.
    """
    _load_matching(vision.model, type(vision.model).from_pretrained(name_or_path).state_dict(), name_or_path)
    pretrained_text = type(text.model).from_pretrained(name_or_path).state_dict()
    table_key = next(k for k in pretrained_text if k.endswith("position_embedding.weight"))
    pretrained_table = pretrained_text.pop(table_key)
    _load_matching(text.model, pretrained_text, name_or_path, skip=(table_key,))
    with torch.no_grad():
        text.model.get_parameter(table_key)[: len(pretrained_table)] = pretrained_table


def _load_matching(model: nn.Module, pretrained: dict, source: str, skip: tuple[str, ...] = ()) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in pretrained and k not in skip and not k.endswith("position_ids")]
    if missing:
        raise CheckpointError(f"{source}: the pretrained tower lacks {len(missing)} weights, e.g. {missing[:3]}")
    model.load_state_dict({k: v for k, v in pretrained.items() if k in own}, strict=False)
