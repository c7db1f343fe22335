"""Freezing and learning-rate groups per stage, read from the optimizer itself (reference §5),
and the warm-up + cosine schedule."""

import math

import pytest
import torch
import yaml

from salova.config import SalovaConfig
from salova.modeling.salova import SalovaForCausalLM
from training.optimizer import build_optimizer, schedule_builder, set_trainable
from training.recipe import load_recipe


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return SalovaForCausalLM(SalovaConfig.from_preset("tiny"))


def recipe(tmp_path, stage, **extra):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"output_dir": str(tmp_path), "data_path": "x.json", **extra}))
    return load_recipe(path, stage)


def optimizer_for(model, tmp_path, stage, **extra):
    settings = recipe(tmp_path, stage, **extra)
    set_trainable(model, settings)
    return build_optimizer(model, settings)


def ids(parameters) -> set[int]:
    return {id(p) for p in parameters}


def lr_of_each_parameter(optimizer) -> dict[int, float]:
    return {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}


def test_stage1_optimizes_only_connector_router_projector_and_text_positions(model, tmp_path):
    optimizer = optimizer_for(model, tmp_path, "pretrain")
    text_positions = [p for n, p in model.text_tower.named_parameters() if "position_embedding" in n]
    assert len(text_positions) == 1
    expected = ids([*model.connector.parameters(), *model.router.parameters(), *model.projector.parameters(),
                    *text_positions])
    lrs = lr_of_each_parameter(optimizer)
    assert set(lrs) == expected
    assert set(lrs.values()) == {1e-3}
    frozen = ids([*model.vision_tower.parameters(), *model.llm.parameters(), *model.text_tower.parameters()]) - expected
    assert frozen and not any(p.requires_grad for p in model.parameters() if id(p) in frozen)
    assert all(group["weight_decay"] == 0.0 for group in optimizer.param_groups)
    assert optimizer.defaults["betas"] == (0.9, 0.999)


@pytest.mark.parametrize("stage", ["longvideo", "sft"])
def test_later_stages_optimize_everything_with_tower_lrs(model, tmp_path, stage):
    optimizer = optimizer_for(model, tmp_path, stage)
    lrs = lr_of_each_parameter(optimizer)
    assert set(lrs) == ids(model.parameters())
    for module, lr in ((model.vision_tower, 2e-6), (model.text_tower, 2e-6), (model.llm, 2e-5),
                       (model.connector, 2e-5), (model.router, 2e-5), (model.projector, 2e-5)):
        assert {lrs[id(p)] for p in module.parameters()} == {lr}
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("tower", ["vision_tower", "text_tower"])
def test_a_tower_lr_of_zero_freezes_that_tower_and_leaves_the_other_as_it_was(model, tmp_path, tower):
    other = "text_tower" if tower == "vision_tower" else "vision_tower"
    optimizer = optimizer_for(model, tmp_path, "sft", learning_rate=1e-3, **{f"{tower}_lr": 0.0})
    lrs = lr_of_each_parameter(optimizer)
    frozen = ids(getattr(model, tower).parameters())
    assert set(lrs) == ids(model.parameters()) - frozen  # not optimized at LR 0: frozen
    assert not any(p.requires_grad for p in getattr(model, tower).parameters())
    assert {lrs[id(p)] for p in getattr(model, other).parameters()} == {2e-6}  # the stage's default
    assert {lrs[id(p)] for p in model.llm.parameters()} == {1e-3}
    set_trainable(model, recipe(tmp_path, "sft"))  # the module-scoped model trains everything again
    assert all(p.requires_grad for p in model.parameters())


def test_warmup_then_cosine_to_zero():
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([parameter], lr=1.0)
    total = 100
    schedule = schedule_builder(total, warmup_ratio=0.03)(optimizer)
    lrs = []
    for _ in range(total):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    warmup = math.ceil(0.03 * total)
    assert lrs[:warmup + 1] == pytest.approx([i / warmup for i in range(warmup + 1)])
    middle = warmup + (total - warmup) // 2
    assert lrs[middle] == pytest.approx(0.5 * (1 + math.cos(math.pi * (middle - warmup) / (total - warmup))))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0)
