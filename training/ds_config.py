"""A DeepSpeed JSON config with its "auto" values filled from the recipe and the run.

Filled: batch sizes and accumulation, gradient clipping, bf16, and the ZeRO-3 bucket sizes
(from the LLM width H, as transformers' DeepSpeed integration does). Any other "auto" is an
error naming the key: DeepSpeed itself would not know what to do with it.
"""

from __future__ import annotations

import json
from pathlib import Path

from salova.errors import ConfigError


def fill(path: str | Path, recipe, world_size: int, bf16: bool, hidden_size: int) -> dict:
    try:
        config = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the DeepSpeed config ({error})") from None
    micro, accumulation = recipe.micro_batch_size, recipe.gradient_accumulation_steps
    values = {
        "train_micro_batch_size_per_gpu": micro,
        "gradient_accumulation_steps": accumulation,
        "train_batch_size": micro * accumulation * world_size,
        "gradient_clipping": recipe.max_grad_norm,
        "bf16.enabled": bf16,
        "fp16.enabled": False,
        "zero_optimization.reduce_bucket_size": hidden_size * hidden_size,
        "zero_optimization.stage3_prefetch_bucket_size": int(0.9 * hidden_size * hidden_size),
        "zero_optimization.stage3_param_persistence_threshold": 10 * hidden_size,
    }
    _fill(config, values, path, prefix="")
    for key in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "train_batch_size"):
        if config.get(key, values[key]) != values[key]:
            raise ConfigError(f"{path}: {key} = {config[key]} contradicts the recipe ({values[key]}); set it to \"auto\"")
    config.update({key: values[key] for key in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps",
                                                "train_batch_size")})
    config.setdefault("gradient_clipping", recipe.max_grad_norm)
    config["bf16"] = {**config.get("bf16", {}), "enabled": bf16}
    return config


def _fill(node: dict, values: dict, path, prefix: str) -> None:
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            _fill(value, values, path, prefix=f"{name}.")
        elif value == "auto":
            if name not in values:
                raise ConfigError(f"{path}: no value is known for \"auto\" at {name}")
            node[key] = values[name]


def zero_stage(config: dict) -> int:
    return int(config.get("zero_optimization", {}).get("stage", 0))
