"""The model and processor a stage starts from.

- `init_from` set (stages 1.5 and 2): the previous stage's save_pretrained folder. Its
  backbone (LLM and towers) must be the one the recipe names; a mismatch fails before any
  weight is read.
- otherwise (stage 1): the recipe's preset; with pretrained component names (`llm`,
  `vision_tower`) their weights are loaded, the connector, router and projector start fresh.
  The `tiny` preset names no component and is built from its config with the run's seed.

The stage's training knobs (token drop, loss weight, margin term, Focus cap, queries, Fast tokens) are
written into the model config, so the saved checkpoint records what it was trained with.
"""

from __future__ import annotations

from pathlib import Path

import torch

from salova.config import SalovaConfig
from salova.errors import CheckpointError, ConfigError
from salova.modeling.salova import SalovaForCausalLM, build_from_pretrained_parts
from salova.processing import SalovaProcessor


def recipe_config(recipe) -> SalovaConfig:
    """The model config the recipe asks for (preset + named components)."""
    if recipe.text_tower not in (None, recipe.vision_tower):
        raise ConfigError(f"text_tower {recipe.text_tower!r} differs from vision_tower {recipe.vision_tower!r}: "
                          "both towers load from one CLIP/SigLIP checkpoint")
    overrides = {key: value for key in ("llm", "vision_tower") if (value := getattr(recipe, key)) is not None}
    return SalovaConfig.from_preset(recipe.preset, **overrides)


def backbone(config: SalovaConfig) -> dict:
    """What must match between a checkpoint and the recipe that continues it."""
    llm = config.llm_config
    return {"llm": config.llm, "llm type": llm.get("model_type"), "llm width": llm.get("hidden_size"),
            "llm layers": llm.get("num_hidden_layers"), "vocabulary": llm.get("vocab_size"),
            "tower family": config.tower_family, "vision tower": config.vision_tower,
            "vision width": config.vision_dim, "text width": config.text_dim}


def check_backbone(checkpoint: Path, found: SalovaConfig, expected: SalovaConfig, recipe_name: str) -> None:
    theirs, ours = backbone(found), backbone(expected)
    different = [key for key in ours if theirs[key] != ours[key]]
    if different:
        details = "; ".join(f"{key}: checkpoint {theirs[key]!r}, recipe {ours[key]!r}" for key in different)
        raise CheckpointError(f"{checkpoint}: its backbone differs from the one recipe {recipe_name} asks for "
                              f"({details}). Continue from a checkpoint of the same backbone, or set the "
                              f"recipe's preset/llm/vision_tower to the checkpoint's.")


def model_and_processor(recipe, recipe_name: str, dtype: torch.dtype) -> tuple[SalovaForCausalLM, SalovaProcessor]:
    expected = recipe_config(recipe)
    if recipe.init_from is not None:
        folder = Path(recipe.init_from)
        if not (folder / "config.json").is_file():
            raise CheckpointError(f"{folder}: init_from is not a save_pretrained folder (no config.json)")
        check_backbone(folder, SalovaConfig.from_pretrained(folder), expected, recipe_name)
        model = SalovaForCausalLM.from_pretrained(folder, dtype=dtype)
        processor = SalovaProcessor.from_pretrained(folder, config=model.config)
    elif expected.llm is None:
        torch.manual_seed(recipe.seed)
        model = SalovaForCausalLM(expected).to(dtype)
        processor = SalovaProcessor.for_config(model.config)
    else:
        model = build_from_pretrained_parts(expected, dtype=dtype)
        processor = SalovaProcessor.for_config(model.config)
    apply_stage_settings(model.config, recipe)
    return model, processor


def apply_stage_settings(config: SalovaConfig, recipe) -> None:
    config.token_drop_rate = recipe.token_drop_rate
    config.sim_loss_weight = recipe.sim_loss_weight
    config.use_margin_loss = recipe.use_margin_loss
    if recipe.scene_loss is not None:
        config.scene_loss = recipe.scene_loss
    if recipe.focus_k is not None:
        config.focus_k = recipe.focus_k
    if recipe.max_queries is not None:
        config.max_queries = recipe.max_queries
    if recipe.use_fast is not None:
        config.use_fast = recipe.use_fast
    config.validate()
