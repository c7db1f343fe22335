"""The built-in demo checkpoint: the `tiny` SALOVA preset trained by the project's own
pipeline (python -m training.train: stage 1, 1.5 and 2) on a synthetic corpus.

It exists so that `python -m evals.run --tasks ...` works with nothing given. It
is built on first use (minutes on a laptop CPU, with progress bars) and cached
under $SALOVA_CACHE (default ~/.cache/salova)/demo-checkpoint/<recipe hash>/.
It knows only the synthetic scenes; its scores say nothing about real videos.
Learning rates are raised over the paper's (the tiny model and corpus need it);
everything else follows the stage defaults of training/recipe.py. The corpus has
its own videos, none of which appear in the demo evaluation sets.

    python -m evals.demo_checkpoint            # build if missing, print the folder
    python -m evals.demo_checkpoint --rebuild  # build again from scratch
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from filelock import FileLock

import training
from evals import cache_root
from evals.sample_log import settings_hash
from salova.errors import CheckpointError

# The training corpus: the `train` preset with short videos, so that a laptop CPU trains it in minutes.
CORPUS = {"preset": "train", "seed": 0, "video_seconds": (10.0, 30.0), "scenes": (3, 6),
          "stage1_clips": 120, "stage1_images": 40, "train_videos": 40, "benchmark_videos": 0}  # fmt: skip
# Stage -> recipe keys; "{train}" is the corpus's train/ folder, "{previous}" the prior stage's output.
STAGES = {
    "pretrain": {"data_path": "{train}/stage1.json", "image_folder": "{train}", "video_folder": "{train}",
                 "max_steps": 40},
    "longvideo": {"data_path": "{train}/scenewalk.json", "video_folder": "{train}", "init_from": "{previous}",
                  "max_steps": 20, "learning_rate": 5e-4, "vision_tower_lr": 5e-5, "text_tower_lr": 5e-5},
    "sft": {"data_path": "{train}/sft.json", "video_folder": "{train}", "init_from": "{previous}",
            "max_steps": 150, "learning_rate": 1e-3, "vision_tower_lr": 1e-4, "text_tower_lr": 1e-4},
}  # fmt: skip
COMMON = {"preset": "tiny", "micro_batch_size": 1, "model_max_length": 2048, "save_steps": 100000, "log_steps": 20,
          "seed": 0, "precision": "fp32"}  # fmt: skip
# Absolute, so the build works from any working directory (the recipe default is relative).
DEEPSPEED_CONFIG = Path(training.__file__).parent / "ds_configs" / "zero2.json"
LAUNCH_VARIABLES = (
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
    "GROUP_RANK",
)


def checkpoint_folder() -> Path:
    return cache_root() / "demo-checkpoint" / settings_hash(CORPUS, STAGES, COMMON)


def write_corpus(folder: Path) -> Path:
    """The synthetic training corpus (salova.data.synth); returns its train/ folder."""
    from salova.data.synth import configure, generate

    preset = configure(CORPUS["preset"], video_seconds=CORPUS["video_seconds"], scenes=CORPUS["scenes"])
    sizes = {
        key: CORPUS[key] for key in ("stage1_clips", "stage1_images", "train_videos", "benchmark_videos")
    }
    generate(dataclasses.replace(preset, **sizes), folder, seed=CORPUS["seed"])
    return folder / "train"


def build(folder: Path) -> Path:
    """Train the three stages into `folder`, each with `python -m training.train` in its own
    process (a stage owns its process group); returns the final save_pretrained folder."""
    train_data = write_corpus(folder / "corpus")
    previous = None
    for stage, keys in STAGES.items():
        recipe = {**COMMON, **{k: v.format(train=train_data, previous=previous) if isinstance(v, str) else v
                              for k, v in keys.items()}}  # fmt: skip
        recipe["output_dir"] = str(folder / stage)
        recipe["deepspeed_config"] = str(DEEPSPEED_CONFIG)
        recipe_path = folder / f"{stage}.yaml"
        recipe_path.write_text(yaml.safe_dump(recipe))
        print(f"demo checkpoint: training stage {stage} ({recipe['max_steps']} steps)", flush=True)
        command = [sys.executable, "-m", "training.train", "--stage", stage, "--recipe", str(recipe_path)]
        if subprocess.run(command, env=standalone_env()).returncode != 0:
            raise CheckpointError(f"demo checkpoint: stage {stage} failed (recipe {recipe_path})")
        previous = folder / stage / "final"
    return previous


def standalone_env() -> dict:
    """This environment without a launcher's variables, so a child never joins our process group."""
    return {k: v for k, v in os.environ.items() if k not in LAUNCH_VARIABLES}


def demo_checkpoint(rebuild: bool = False) -> Path:
    """The demo checkpoint's save_pretrained folder, built first if needed.

    The build runs in a child process without the launcher's variables, so it
    never joins the process group of a multi-process evaluation."""
    folder = checkpoint_folder()
    done = folder / "final.txt"
    if done.is_file() and not rebuild:
        return Path(done.read_text().strip())
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if done.is_file() and not rebuild:
            return Path(done.read_text().strip())
        print(f"Building the demo checkpoint in {folder} (first use; cached afterwards)", flush=True)
        command = [sys.executable, "-m", "evals.demo_checkpoint", "--build-into", str(folder)]
        result = subprocess.run(command, env=standalone_env())
        if result.returncode != 0 or not done.is_file():
            raise CheckpointError(
                f"building the demo checkpoint in {folder} failed (exit {result.returncode}); "
                "see the output above, or pass --checkpoint DIR"
            )
    return Path(done.read_text().strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m evals.demo_checkpoint", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--rebuild", action="store_true", help="train again even if a cached checkpoint exists"
    )
    parser.add_argument("--build-into", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.build_into is None:
        print(demo_checkpoint(rebuild=args.rebuild))
        return 0
    shutil.rmtree(args.build_into, ignore_errors=True)
    args.build_into.mkdir(parents=True)
    final = build(args.build_into)
    (args.build_into / "final.txt").write_text(str(final))
    return 0


if __name__ == "__main__":
    sys.exit(main())
