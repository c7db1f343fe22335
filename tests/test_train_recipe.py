"""Recipes, DeepSpeed configs and the start-up checks of a stage (no training here)."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from salova.config import SalovaConfig
from salova.errors import CheckpointError, ConfigError
from training import build, ds_config
from training.recipe import STAGE_DEFAULTS, STAGES, load_recipe, parse_overrides

RECIPES = Path(__file__).resolve().parents[1] / "training" / "recipes"
DS_CONFIGS = Path(__file__).resolve().parents[1] / "training" / "ds_configs"


def write(tmp_path, values: dict) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def minimal(tmp_path, **extra) -> Path:
    return write(tmp_path, {"output_dir": str(tmp_path / "out"), "data_path": "records.json", **extra})


def test_unknown_recipe_key_fails_naming_the_key_and_the_file(tmp_path):
    path = minimal(tmp_path, learning_rat=1e-3)
    with pytest.raises(ConfigError, match=r"recipe\.yaml: unknown recipe key 'learning_rat'"):
        load_recipe(path, "pretrain")


def test_unknown_override_key_fails_too(tmp_path):
    with pytest.raises(ConfigError, match="unknown recipe key 'lr'"):
        load_recipe(minimal(tmp_path), "sft", parse_overrides(["lr=1e-4"]))


def test_wrong_type_fails_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match="'micro_batch_size' = 'four'"):
        load_recipe(minimal(tmp_path, micro_batch_size="four"), "sft")


def test_missing_output_dir_is_reported(tmp_path):
    with pytest.raises(ConfigError, match="'output_dir' is required"):
        load_recipe(write(tmp_path, {"data_path": "x.json"}), "sft")


@pytest.mark.parametrize("stage, drop, weight, margin, lr, trainable", [
    ("pretrain", 0.0, 5.0, False, 1e-3, "connectors"),
    ("longvideo", 0.7, 1.0, True, 2e-5, "all"),
    ("sft", 0.4, 1.0, True, 2e-5, "all"),
])  # fmt: skip
def test_stage_defaults_are_the_papers(tmp_path, stage, drop, weight, margin, lr, trainable):
    recipe = load_recipe(minimal(tmp_path), stage)
    assert (recipe.token_drop_rate, recipe.sim_loss_weight, recipe.use_margin_loss) == (drop, weight, margin)
    assert (recipe.learning_rate, recipe.trainable) == (lr, trainable)
    tower_lr = None if stage == "pretrain" else 2e-6
    assert recipe.vision_tower_lr == recipe.text_tower_lr == tower_lr


def test_overrides_are_parsed_as_yaml_and_win(tmp_path):
    overrides = parse_overrides(["learning_rate=3e-4", "init_from=null", "use_margin_loss=false", "max_steps=7"])
    assert {k: overrides[k] for k in ("init_from", "use_margin_loss", "max_steps")} == {
        "init_from": None, "use_margin_loss": False, "max_steps": 7}
    recipe = load_recipe(minimal(tmp_path, learning_rate=1.0), "longvideo", overrides)
    assert (recipe.learning_rate, recipe.use_margin_loss, recipe.max_steps) == (3e-4, False, 7)
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["learning_rate"])


@pytest.mark.parametrize("name", sorted(p.name for p in RECIPES.glob("*.yaml")))
def test_shipped_recipes_load(name):
    stage = name.removesuffix(".yaml").rsplit("-", 1)[-1]
    assert stage in STAGES
    recipe = load_recipe(RECIPES / name, stage)
    assert recipe.weight_decay == 0.0 and recipe.adam_betas == [0.9, 0.999] and recipe.warmup_ratio == 0.03
    assert recipe.max_grad_norm == 1.0


@pytest.mark.parametrize("name", ["pretrain", "longvideo", "sft", "tiny-pretrain", "tiny-longvideo", "tiny-sft"])
def test_paper_and_tiny_recipes_keep_the_stage_settings(name):
    stage = name.removeprefix("tiny-")
    recipe = load_recipe(RECIPES / f"{name}.yaml", stage)
    for key in ("token_drop_rate", "sim_loss_weight", "use_margin_loss", "trainable"):
        assert getattr(recipe, key) == STAGE_DEFAULTS[stage][key], key


@pytest.mark.parametrize("stage, global_batch, lr", [("pretrain", 256, 1e-3), ("longvideo", 8, 2e-5), ("sft", 64, 2e-5)])
def test_paper_recipes_have_the_papers_global_batch_on_8_gpus(stage, global_batch, lr):
    recipe = load_recipe(RECIPES / f"{stage}.yaml", stage)
    assert recipe.micro_batch_size * recipe.gradient_accumulation_steps * 8 == global_batch
    assert recipe.learning_rate == lr and recipe.epochs == 1 and recipe.precision == "auto"


def test_zero2_config_is_the_references_with_auto_values_filled(tmp_path):
    recipe = load_recipe(RECIPES / "sft.yaml", "sft")
    config = ds_config.fill(DS_CONFIGS / "zero2.json", recipe, world_size=8, bf16=True, hidden_size=64)
    zero = config["zero_optimization"]
    assert zero["stage"] == 2 and zero["offload_optimizer"]["device"] == "none"
    assert zero["allgather_bucket_size"] == zero["reduce_bucket_size"] == 2e8
    assert zero["overlap_comm"] is False and zero["contiguous_gradients"] is True
    assert config["train_batch_size"] == 64 and config["train_micro_batch_size_per_gpu"] == 4
    assert config["gradient_accumulation_steps"] == 2 and config["gradient_clipping"] == 1.0
    assert config["bf16"]["enabled"] is True
    assert "auto" not in json.dumps(config)


def test_zero3_auto_buckets_follow_the_llm_width():
    recipe = load_recipe(RECIPES / "sft.yaml", "sft")
    config = ds_config.fill(DS_CONFIGS / "zero3.json", recipe, world_size=1, bf16=False, hidden_size=100)
    assert config["zero_optimization"]["reduce_bucket_size"] == 10000
    assert config["zero_optimization"]["stage3_param_persistence_threshold"] == 1000
    assert "auto" not in json.dumps(config)


def test_an_unknown_auto_value_is_an_error(tmp_path):
    path = tmp_path / "ds.json"
    path.write_text(json.dumps({"zero_optimization": {"stage": 2, "mystery": "auto"}}))
    with pytest.raises(ConfigError, match="zero_optimization.mystery"):
        ds_config.fill(path, load_recipe(RECIPES / "sft.yaml", "sft"), 1, False, 64)


def test_backbone_mismatch_fails_before_loading_weights(tmp_path):
    """A stage-2 recipe for the tiny Llama backbone pointed at a checkpoint with a Qwen2 LLM."""
    other = SalovaConfig.from_preset("tiny")
    other.llm_config = {**other.llm_config, "model_type": "qwen2", "hidden_size": 128}
    other.save_pretrained(tmp_path / "ckpt")  # config only: the check must not need the weights
    recipe = load_recipe(minimal(tmp_path, preset="tiny", init_from=str(tmp_path / "ckpt")), "sft")
    with pytest.raises(CheckpointError) as error:
        build.model_and_processor(recipe, "recipe.yaml", dtype=None)
    message = str(error.value)
    assert str(tmp_path / "ckpt") in message and "recipe.yaml" in message
    assert "llm type: checkpoint 'qwen2', recipe 'llama'" in message and "llm width: checkpoint 128, recipe 64" in message


def test_init_from_must_be_a_saved_model(tmp_path):
    recipe = load_recipe(minimal(tmp_path, preset="tiny", init_from=str(tmp_path)), "sft")
    with pytest.raises(CheckpointError, match="not a save_pretrained folder"):
        build.model_and_processor(recipe, "recipe.yaml", dtype=None)


@pytest.mark.parametrize("use_fast", [True, False, None])
def test_use_fast_in_the_recipe_is_written_into_the_checkpoint_config(tmp_path, tiny_checkpoint, use_fast):
    """Stage 1 may train without the Fast tokens and stage 1.5 switch them back on; unset keeps the checkpoint's."""
    source = SalovaConfig.from_pretrained(tiny_checkpoint)
    source.use_fast = not use_fast if use_fast is not None else False
    folder = shutil.copytree(tiny_checkpoint, tmp_path / "start")
    source.save_pretrained(folder)
    extra = {} if use_fast is None else {"use_fast": use_fast}
    recipe = load_recipe(minimal(tmp_path, preset="tiny", init_from=str(folder), **extra), "longvideo")
    model, _ = build.model_and_processor(recipe, "recipe.yaml", dtype=None)
    assert model.config.use_fast is (source.use_fast if use_fast is None else use_fast)
    model.save_pretrained(tmp_path / "saved")
    assert SalovaConfig.from_pretrained(tmp_path / "saved").use_fast is model.config.use_fast


def test_use_fast_must_be_a_boolean(tmp_path):
    with pytest.raises(ConfigError, match="recipe key 'use_fast' = 'no' should be bool or null"):
        load_recipe(minimal(tmp_path, use_fast="no"), "pretrain")
