"""The built-in demo checkpoint: a shortened run of the `small` model's learning recipe
(python -m training.reproduce: corpus, stages 1, 1.5 and 2 with training/recipes/small-*.yaml).

It exists so that `python -m evals.run --tasks ...` works with nothing given. It is built on
first use (about two minutes on a laptop CPU, with progress bars) and cached under
$SALOVA_CACHE (default ~/.cache/salova)/demo-checkpoint/<hash of the settings, the recipes and the
code that builds it (salova, training)>/.
Shortened: the `small` corpus cut to CORPUS_SIZES and every stage cut to DEMO_STEPS; the
recipes are otherwise used as they are, through the same `Reproduction` steps as the full
run. It is far too short to learn the synthetic questions (docs/results.md says what the full
recipe learns); it knows only synthetic scenes and says nothing about real videos. The corpus
has its own videos, none of which appear in the demo evaluation sets.

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

from filelock import FileLock

from evals import cache_root
from evals.sample_log import settings_hash
from salova.errors import CheckpointError
from salova.sources import source_digest

CORPUS_PRESET, CORPUS_SEED = "small", 0
# The `small` corpus, cut down: no held-out sets or haystacks (the demo sets are evals/demo_data.py's).
CORPUS_SIZES = {"stage1_clips": 160, "stage1_images": 40, "train_videos": 24, "benchmark_videos": 0,
                "niah_minutes": ()}  # fmt: skip
DEMO_STEPS = {"pretrain": 40, "longvideo": 20, "sft": 40, "sft-reading": 20}  # the full recipe: 1000, 800, 3600, 1800
BUILT_BY = ("salova", "training")  # the packages whose code makes the corpus and the weights
LAUNCH_VARIABLES = (
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
    "GROUP_RANK",
)


def recipe_texts() -> dict[str, str]:
    from training.reproduce import RECIPES, STAGE_RECIPES

    return {stage: (RECIPES / name).read_text() for stage, name in STAGE_RECIPES.items()}


def question_settings() -> tuple:
    from training import reproduce

    return reproduce.QUESTIONS_PER_RECORD, reproduce.ROUTER_QUESTIONS, reproduce.QUESTION_REPEATS


def checkpoint_folder() -> Path:
    settings = (CORPUS_PRESET, CORPUS_SEED, CORPUS_SIZES, DEMO_STEPS, recipe_texts(), question_settings(),
                source_digest(*BUILT_BY))
    return cache_root() / "demo-checkpoint" / settings_hash(*settings)


def write_corpus(data: Path) -> None:
    """The cut-down `small` corpus (salova.data.synth) in `data`."""
    from salova.data.synth import configure, generate

    generate(dataclasses.replace(configure(CORPUS_PRESET), **CORPUS_SIZES), data, seed=CORPUS_SEED)


def build(folder: Path) -> Path:
    """Write the corpus, then train the three stages the way training.reproduce trains the full
    model, each stage in its own process; returns the final save_pretrained folder."""
    from training.reproduce import Reproduction

    run = Reproduction(folder, seed=CORPUS_SEED, tasks="")
    write_corpus(run.data)
    run.corpus()  # finds the corpus written above; adds the stage-2 questions
    previous = None
    for stage, steps in DEMO_STEPS.items():
        print(f"demo checkpoint: training stage {stage} ({steps} steps)", flush=True)
        previous = run.stage("full", stage, previous, extra={"max_steps": steps})
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
