"""Train one SALOVA stage on DeepSpeed.

    python -m training.train --stage {pretrain,longvideo,sft} --recipe training/recipes/<stage>.yaml \\
        [key=value ...] [--resume]

Runs as one process without a launcher, or under `deepspeed` / `torchrun` (also multi-node).
The loop is plain: micro-batch -> forward -> DeepSpeed backward/step (accumulation, ZeRO,
clipping) -> log; every `save_steps` a resumable checkpoint; at the end a save_pretrained
folder (model + processor) that the next stage loads with `init_from`.

Reproducibility: each micro-batch seeds torch from (seed, its first stream position), so token
drop and the margin-loss sampling depend on the data alone, not on the number of processes or
on where a run was resumed; a resumed run on CPU continues bit-identically.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

import deepspeed
import numpy as np
import torch
import torch.distributed as dist

from salova.data.collate import Collator, DataSettings, build_dataset
from salova.errors import ConfigError, SalovaError
from salova.modeling.tower_memo import TowerMemo
from training import build, checkpoint, distributed, ds_config
from training.callbacks import HF_FOLDER, BenchmarkOnSave
from training.log import TrainLog
from training.optimizer import build_optimizer, schedule_builder, set_trainable
from training.recipe import STAGES, Recipe, load_recipe, parse_overrides, save_recipe
from training.stream import MicroBatches, StreamShape, TrainingStream, sample_seed


def run(stage: str, recipe: str | Path, overrides: dict | None = None, resume: bool = False) -> Path:
    """Train `stage` with the recipe file and overrides; returns the final save_pretrained folder."""
    settings = load_recipe(recipe, stage, overrides)
    rank, world, device = distributed.init()
    try:
        return train(stage, settings, str(recipe), resume, rank, world, device)
    finally:
        distributed.teardown()


def use_bf16(recipe: Recipe, device: torch.device) -> bool:
    if recipe.precision == "auto":
        return device.type == "cuda" and torch.cuda.is_bf16_supported()
    return recipe.precision == "bf16"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(stage: str, recipe: Recipe, recipe_name: str, resume: bool, rank: int, world: int,
          device: torch.device) -> Path:
    output_dir = Path(recipe.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    main = rank == 0
    if main:
        save_recipe(recipe, output_dir / f"recipe-{stage}.yaml")
    seed_everything(recipe.seed)
    bf16 = use_bf16(recipe, device)
    dtype = torch.bfloat16 if bf16 else torch.float32
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True

    model, processor = prepare_model(recipe, recipe_name, dtype)
    dataset = build_dataset(stage, recipe.data_path, recipe.image_folder, recipe.video_folder, processor,
                            DataSettings.for_config(model.config, recipe.model_max_length, recipe.decoded_cache_mb))
    shape = plan_stream(len(dataset), recipe, world)
    total_steps = recipe.max_steps or recipe.epochs * shape.steps_per_epoch
    config = ds_config.fill(recipe.deepspeed_config, recipe, world, bf16, model.config.llm_dim)
    zero_stage = ds_config.zero_stage(config)
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=build_optimizer(model, recipe), config=config,
                                           lr_scheduler=schedule_builder(total_steps, recipe.warmup_ratio))
    start_step, skipped = resume_point(engine, output_dir) if resume else (0, set())

    loader = torch.utils.data.DataLoader(
        TrainingStream(dataset, shape, recipe.seed),
        batch_sampler=MicroBatches(shape, rank, start_step, total_steps),
        collate_fn=Collator(pad_id(processor), dataset.in_batch_router),
        num_workers=recipe.num_workers,
    )
    log = TrainLog(output_dir, start_step, total_steps, recipe.log_steps, main, stage)
    benchmark = BenchmarkOnSave.from_recipe(recipe, output_dir) if recipe.eval_on_save and main else None
    group_names = [group.get("name", str(i)) for i, group in enumerate(engine.optimizer.param_groups)]
    started = time.time()
    engine.train()
    batches = iter(loader)
    for step in range(start_step, total_steps):
        metrics, step_skipped = optimizer_step(engine, batches, shape.accumulation, recipe.seed, device, dtype)
        skipped = gather_names(skipped | step_skipped)
        log.step({"step": step + 1, "epoch": step // shape.steps_per_epoch, "loss": metrics["loss"],
                  "lm_loss": metrics.get("lm_loss"), "sim_loss": metrics.get("sim_loss"),
                  "router_accuracy": metrics.get("router_accuracy"), "lr": dict(zip(group_names, engine.get_lr())),
                  "skipped_records": len(skipped), "elapsed_s": round(time.time() - started, 3)})
        if (step + 1) % recipe.save_steps == 0:
            state = {"step": step + 1, "skipped": sorted(skipped), "stage": stage}
            folder = checkpoint.save(engine, output_dir, step + 1, state, model, processor)
            if recipe.eval_on_save:  # the benchmark reads a save_pretrained copy
                checkpoint.export_pretrained(engine, model, processor, folder / HF_FOLDER, zero_stage)
            if benchmark is not None:
                benchmark.on_save(step + 1, folder)
    log.close()
    final = checkpoint.export_pretrained(engine, model, processor, output_dir / checkpoint.FINAL, zero_stage)
    if benchmark is not None:
        benchmark.close()
    if main:
        report_caches(dataset, model)
    if skipped and main:
        print(f"{len(skipped)} unreadable record(s) skipped: {', '.join(sorted(skipped))}", file=sys.stderr)
    return final


def prepare_model(recipe: Recipe, recipe_name: str, dtype: torch.dtype):
    """The stage's starting model with its trainable parameters set, and the processor."""
    model, processor = build.model_and_processor(recipe, recipe_name, dtype)
    set_trainable(model, recipe)
    if recipe.tower_cache_mb and not any(p.requires_grad for p in model.vision_tower.parameters()):
        model.tower_memo = TowerMemo(recipe.tower_cache_mb)
    if recipe.gradient_checkpointing:
        model.llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model, processor


def report_caches(dataset, model) -> None:
    """One line per memory cache the run used (recipe keys decoded_cache_mb, tower_cache_mb)."""
    if dataset.decoded.budget:
        print(f"decoded-video cache: {dataset.decoded.summary()}", file=sys.stderr)
    if model.tower_memo is not None:
        print(f"vision-tower memo: {model.tower_memo.cache.summary()}", file=sys.stderr)


def plan_stream(dataset_size: int, recipe: Recipe, world: int) -> StreamShape:
    shape = StreamShape(dataset_size, recipe.micro_batch_size, world, recipe.gradient_accumulation_steps)
    if shape.steps_per_epoch == 0:
        raise ConfigError(f"{recipe.data_path}: {dataset_size} records are fewer than one global batch "
                          f"({shape.global_batch} = micro {shape.micro} x processes {world} x accumulation "
                          f"{shape.accumulation})")
    return shape


def resume_point(engine, output_dir: Path) -> tuple[int, set[str]]:
    """(next step, records skipped so far) from the newest checkpoint; (0, {}) without one."""
    folder = checkpoint.latest(output_dir)
    if folder is None:
        print(f"--resume: no checkpoint in {output_dir / checkpoint.CHECKPOINTS}; starting from step 0", file=sys.stderr)
        return 0, set()
    state = checkpoint.resume(engine, folder)
    return state["step"], set(state["skipped"])


def optimizer_step(engine, batches, accumulation: int, seed: int, device, dtype) -> tuple[dict, set[str]]:
    """`accumulation` micro-batches, one optimizer step; returns (metrics averaged over processes, skipped)."""
    sums: dict[str, float] = {}
    skipped: set[str] = set()
    for _ in range(accumulation):
        kwargs, info = next(batches)
        torch.manual_seed(sample_seed(seed, info["positions"][0]))
        out = engine(**to_device(kwargs, device, dtype))
        engine.backward(out.loss)
        engine.step()  # DeepSpeed steps the optimizer at the accumulation boundary
        accumulate(sums, out, accumulation)
        skipped.update(info["skipped"])
    return distributed.mean_across_ranks(sums), skipped


def pad_id(processor) -> int:
    tokenizer = processor.tokenizer
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def accumulate(sums: dict, out, accumulation: int) -> None:
    """Running mean over the micro-steps of one optimizer step (only the parts the stage has)."""
    parts = {"loss": out.loss, "lm_loss": out.lm_loss, "sim_loss": out.sim_loss,
             "router_accuracy": out.router_accuracy}
    for name, value in parts.items():
        if value is not None:
            sums[name] = sums.get(name, 0.0) + float(value.detach() if torch.is_tensor(value) else value) / accumulation


def gather_names(names: set[str]) -> set[str]:
    """The union of every process's set."""
    everyone: list = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, sorted(names))
    return set().union(*everyone)


def to_device(value, device: torch.device, dtype: torch.dtype):
    """Tensors (also inside lists and dicts) to `device`; floating ones to `dtype`."""
    if isinstance(value, torch.Tensor):
        return value.to(device, dtype=dtype if value.is_floating_point() else None)
    if isinstance(value, dict):
        return {key: to_device(v, device, dtype) for key, v in value.items()}
    if isinstance(value, list):
        return [to_device(v, device, dtype) for v in value]
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", required=True, choices=STAGES)
    parser.add_argument("--recipe", required=True, help="recipe YAML (training/recipes/)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in output_dir")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)  # deepspeed launcher
    parser.add_argument("overrides", nargs="*", help="recipe overrides, key=value")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        final = run(args.stage, args.recipe, parse_overrides(args.overrides), resume=args.resume)
    except SalovaError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"saved {final}")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # skip interpreter teardown: gloo can abort there after a successful run
