"""Training recipes: one flat YAML file per stage, validated at start-up.

A recipe names every knob of a run. `load_recipe(path, overrides)` reads the YAML,
applies `key=value` overrides from the command line, fills the stage's defaults
(reference salova.md §5) for anything the file leaves out, and fails with a
ConfigError naming the file and the key for an unknown key or a wrong type.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from salova.config import SCENE_LOSSES
from salova.errors import ConfigError

STAGES = ("pretrain", "longvideo", "sft")

# What the paper's code changes between stages (salova.md §5): freezing, learning rates,
# token-drop rate, similarity-loss weight and margin term.
STAGE_DEFAULTS: dict[str, dict] = {
    "pretrain": dict(trainable="connectors", learning_rate=1e-3, vision_tower_lr=None, text_tower_lr=None,
                     token_drop_rate=0.0, sim_loss_weight=5.0, use_margin_loss=False),
    "longvideo": dict(trainable="all", learning_rate=2e-5, vision_tower_lr=2e-6, text_tower_lr=2e-6,
                      token_drop_rate=0.7, sim_loss_weight=1.0, use_margin_loss=True),
    "sft": dict(trainable="all", learning_rate=2e-5, vision_tower_lr=2e-6, text_tower_lr=2e-6,
                token_drop_rate=0.4, sim_loss_weight=1.0, use_margin_loss=True),
}
TRAINABLE_CHOICES = ("connectors", "all")
PRECISIONS = ("auto", "bf16", "fp32")


@dataclass
class Recipe:
    """Every setting of one training stage. `None` means "the stage default" or "unset"."""

    output_dir: str
    data_path: str
    # ---- model: a preset built from its components, or the previous stage's checkpoint
    preset: str = "qwen2.5-7b-siglip"
    llm: str | None = None  # base LLM (HF id or path); None = the preset's
    vision_tower: str | None = None
    text_tower: str | None = None
    init_from: str | None = None  # save_pretrained folder of the previous stage
    # ---- data
    image_folder: str | None = None
    video_folder: str | None = None
    max_queries: int | None = None  # router queries per sample; None = the model config's (16)
    focus_k: int | None = None  # cap on the ground-truth Focus scenes; None = the model config's (5)
    # whether the LLM sees the Fast (routing) tokens next to the Focus ones; None = the model config's.
    # Saved with the checkpoint, so the next stage starts from it unless its recipe sets it too.
    use_fast: bool | None = None
    model_max_length: int = 8192
    # ---- optimisation
    trainable: str | None = None  # "connectors" (stage 1) or "all"
    epochs: int = 1
    max_steps: int | None = None  # optimizer steps; when set, replaces epochs (the data cycles)
    micro_batch_size: int = 1  # per process
    gradient_accumulation_steps: int = 1
    learning_rate: float | None = None
    vision_tower_lr: float | None = None
    text_tower_lr: float | None = None
    weight_decay: float = 0.0
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    warmup_ratio: float = 0.03
    max_grad_norm: float = 1.0
    token_drop_rate: float | None = None
    sim_loss_weight: float | None = None
    use_margin_loss: bool | None = None
    scene_loss: str | None = None  # "bce" or "softmax" (stages 1.5, 2); None = the model config's
    precision: str = "auto"  # bf16 where the accelerator supports it, else fp32
    gradient_checkpointing: bool = False
    deepspeed_config: str = "training/ds_configs/zero2.json"
    seed: int = 42
    num_workers: int = 0
    # ---- memory for speed: decoded videos, and a frozen vision tower's outputs, kept for the
    # media's next epoch (per process and data worker; 0 = off; salova/lru.py)
    decoded_cache_mb: float = 0
    tower_cache_mb: float = 0
    # ---- output
    save_steps: int = 1000
    log_steps: int = 1
    # ---- benchmark every saved checkpoint (training/callbacks.py)
    eval_on_save: bool = False
    eval_tasks: str = "videomme,mlvu,longvideobench,niah"  # synthetic sets unless eval_data_root is given
    eval_limit: int = 4
    eval_data_root: str | None = None
    eval_command: str | None = None  # template; None = python -m evals.run (see callbacks.py)

    def check(self, source: str) -> None:
        """Raise ConfigError naming `source` and the field for an impossible value."""
        if self.trainable not in TRAINABLE_CHOICES:
            raise ConfigError(f"{source}: trainable = {self.trainable!r} is not one of {TRAINABLE_CHOICES}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"{source}: precision = {self.precision!r} is not one of {PRECISIONS}")
        if self.scene_loss not in (None, *SCENE_LOSSES):
            raise ConfigError(f"{source}: scene_loss = {self.scene_loss!r} is not one of {SCENE_LOSSES}")
        for name in ("epochs", "micro_batch_size", "gradient_accumulation_steps", "save_steps", "log_steps",
                     "max_queries", "focus_k", "model_max_length", "eval_limit", "max_steps"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{source}: {name} = {getattr(self, name)} must be at least 1")
        for name in ("decoded_cache_mb", "tower_cache_mb"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{source}: {name} = {getattr(self, name)} must be at least 0")
        if not 0.0 <= self.token_drop_rate < 1.0:
            raise ConfigError(f"{source}: token_drop_rate = {self.token_drop_rate} must be in [0, 1)")
        if len(self.adam_betas) != 2:
            raise ConfigError(f"{source}: adam_betas = {self.adam_betas} must hold two numbers")


def parse_overrides(pairs: list[str]) -> dict:
    """["lr=1e-4", "init_from=null"] -> {"lr": 1e-4, "init_from": None} (values parsed as YAML)."""
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {pair!r} is not of the form key=value")
        overrides[key.strip()] = _override_value(value)
    return overrides


def _override_value(text: str):
    """YAML scalars and lists; anything else (e.g. "{python} -m evals.run ...") stays a string."""
    if not text:
        return None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return text if isinstance(value, dict) else value


def load_recipe(path: str | Path, stage: str, overrides: dict | None = None) -> Recipe:
    """The recipe at `path` for `stage`, with `overrides` applied and stage defaults filled."""
    if stage not in STAGES:
        raise ConfigError(f"--stage {stage!r} is not one of {STAGES}")
    try:
        values = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: cannot read the recipe ({error})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: a recipe is a mapping of key: value, found {type(values).__name__}")
    values.update(overrides or {})
    hints = typing.get_type_hints(Recipe)
    for key, value in values.items():
        if key not in hints:
            raise ConfigError(f"{path}: unknown recipe key {key!r}; the keys are: {', '.join(hints)}")
        values[key] = _typed(key, value, hints[key], path)
    for key in ("output_dir", "data_path"):
        if values.get(key) is None:
            raise ConfigError(f"{path}: recipe key {key!r} is required")
    for key, default in STAGE_DEFAULTS[stage].items():
        if values.get(key) is None:
            values[key] = default
    recipe = Recipe(**values)
    recipe.check(str(path))
    return recipe


def _typed(key: str, value, hint, path) -> object:
    """`value` checked against the field's type hint (ints pass as floats; None where allowed)."""
    allowed = _hint_types(hint)
    if value is None and type(None) in allowed:
        return None
    if float in allowed and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and float in allowed and str not in allowed:
        try:  # YAML reads "1e-3" (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if not any(isinstance(value, t) and not (t is int and isinstance(value, bool)) for t in allowed):
        names = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
        raise ConfigError(f"{path}: recipe key {key!r} = {value!r} should be {names}")
    return value


def _hint_types(hint) -> tuple[type, ...]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return tuple(typing.get_origin(a) or a for a in typing.get_args(hint))
    return (typing.get_origin(hint) or hint,)


def save_recipe(recipe: Recipe, path: Path) -> None:
    path.write_text(yaml.safe_dump(dataclasses.asdict(recipe), sort_keys=False))
