"""One command for the `small` model's CPU reproduction: corpus -> stages 1, 1.5, 2 -> benchmarks,
then the baselines and ablations trained and evaluated the same way.

    python -m training.reproduce --out runs/small [--seed 0] [--variants full,uniform,...]
        [--ks 1,5,9] [--ablation-limit N] [--tasks videomme,mlvu,longvideobench,niah]
        [--answer-by likelihood|generate]

Steps (each in its own process, so DeepSpeed's global state never leaks between stages):

1. corpus: `python -m salova.data.synth --preset small --out OUT/data --seed SEED`, then the
   stage-2 questions: `python -m salova.data.more_questions OUT/data --repeats 40 --seed 1
   --questions 5 5 --out OUT/data/train/sft_composed.json` (48,000 open questions in composed
   phrasings, 5 per record) and the same with `--questions 1 5` into sft_mixed.json
2. full model: `python -m training.train --stage {pretrain,longvideo,sft}` with
   training/recipes/small-pretrain.yaml, small-longvideo.yaml and small-open-sft.yaml, each stage starting from the previous stage's final folder; stage 2 runs
   as SFT_CYCLES warm restarts (4000 + 2000 + 6000 steps on sft_composed.json, then 3000 on
   sft_mixed.json; folders sft, sft-2, sft-3, sft-4)
3. variants (docs/results.md explains each):
   - `uniform`: the full model's checkpoint with `focus_selection: uniform` (K scenes evenly
     spaced over the video, no router; same Focus and Fast token counts)
   - `focus-only` / `fast-only`: stage 2 from the full stage-1.5 checkpoint with `use_fast` /
     `use_focus` switched off (the FocusFast ablation)
   - `no-longvideo`: stage 2 straight from the stage-1 checkpoint (skipping stage 1.5)
4. evaluation: `python -m evals.run --tasks ... --checkpoint CKPT --data-root OUT/data --k K
   --answer-by likelihood --output OUT/eval/<variant>-k<K>-likelihood`: first the full model at K = 5 on every question, then the
   full model at the other K of --ks and the variants at K = 5 (on the first --ablation-limit
   questions of each task when given)
5. OUT/summary.json: every step's command, wall time and exit status, and where each evaluation's
   results.json lies

Everything already done (a stage's final/ folder, an evaluation's results.json) is kept, so
running the command again continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from evals.options import ANSWER_BY

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "training" / "recipes"
VARIANTS = ("full", "uniform", "focus-only", "fast-only", "no-longvideo")
TASKS = "videomme,mlvu,longvideobench,niah"
MAIN_K = 5
STAGE_RECIPES = {"pretrain": "small-pretrain.yaml", "longvideo": "small-longvideo.yaml", "sft": "small-open-sft.yaml"}
STAGE_DATA = {"pretrain": "stage1.json", "longvideo": "scenewalk.json", "sft": "sft_composed.json"}
QUESTION_REPEATS, QUESTION_SEED = 40, 1  # salova.data.more_questions: 40 records per training video
# The stage-2 question files (more_questions --questions MIN MAX): questions, and so training Focus
# scenes, per record. 5 as the corpus's own records; 1-5 so the LLM also reads one or a few Focus
# scenes, as it does when evaluated at K = 1.
SFT_QUESTIONS = {"sft_composed.json": (5, 5), "sft_mixed.json": (1, 5)}
# Stage 2 as warm restarts: (max_steps, training-seed offset, question file) per cycle, each cycle
# with the recipe's own warm-up and cosine decay, starting from the previous cycle's weights (not
# its optimizer state). These are the four runs behind docs/results.md's headline checkpoint: the
# router needs the first three (held-out recall@5 81.9, 87.5, 100 %), the LLM's reading of a
# single Focus scene the fourth (NIAH at K = 1: 74 % after cycle 3, 100 % after cycle 4).
SFT_CYCLES = ((4000, 0, "sft_composed.json"), (2000, 1, "sft_composed.json"), (6000, 2, "sft_composed.json"),
              (3000, 3, "sft_mixed.json"))  # fmt: skip
RUNNING = ".reproduce-running"
# Tiny models on a shared 2-core CPU run faster on one thread (no oversubscription).
CHILD_ENV = {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
             "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip


class Reproduction:
    """The folders and commands of one reproduction under `out`; records what each step took."""

    def __init__(self, out: Path, seed: int, tasks: str, answer_by: str = "likelihood"):
        self.out, self.seed, self.tasks, self.answer_by = out, seed, tasks, answer_by
        self.data = out / "data"
        self.summary_path = out / "summary.json"
        self.summary = {"steps": {}, "evaluations": {}, "machine": machine()}

    # -- running and recording ---------------------------------------------------------

    def step(self, name: str, command: list[str], folder: Path, done: Path) -> None:
        """Run `command` unless `done` exists; record the command, its wall time and its outcome.

        While it runs, `folder/.reproduce-running` holds this process's id: a second reproduction
        started beside this one (other variants, run in parallel) waits for the step instead of
        running it twice.
        """
        wait_for_other_process(folder / RUNNING)
        if done.exists():
            print(f"[reproduce] {name}: done already ({done})", flush=True)
            return
        print(f"[reproduce] {name}: {' '.join(command)}", flush=True)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / RUNNING).write_text(str(os.getpid()))
        started = time.time()
        try:
            finished = subprocess.run(command, cwd=REPO, env={**os.environ, **CHILD_ENV})
        finally:
            (folder / RUNNING).unlink(missing_ok=True)
        seconds = round(time.time() - started, 1)
        self.record("steps", name, {"command": " ".join(command), "seconds": seconds,
                                    "returncode": finished.returncode})  # fmt: skip
        if finished.returncode != 0:
            raise SystemExit(f"[reproduce] {name} failed (exit {finished.returncode}) after {seconds} s")
        print(f"[reproduce] {name}: {seconds} s", flush=True)

    def record(self, section: str, name: str, entry: dict) -> None:
        """Add one entry to summary.json, merged with what parallel reproductions wrote there."""
        on_file = json.loads(self.summary_path.read_text()) if self.summary_path.exists() else {}
        self.summary = {**self.summary, **on_file, "machine": self.summary["machine"]}
        for key in ("steps", "evaluations"):
            self.summary[key] = {**self.summary.get(key, {}), **on_file.get(key, {})}
        self.summary[section][name] = entry
        self.save()

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.summary_path.write_text(json.dumps(self.summary, indent=1) + "\n")

    # -- the steps -----------------------------------------------------------------------

    def corpus(self) -> None:
        command = [sys.executable, "-m", "salova.data.synth", "--preset", "small", "--out", str(self.data),
                   "--seed", str(self.seed), "--quiet"]  # fmt: skip
        self.step("corpus", command, self.data, self.data / "manifest.json")
        for name, (low, high) in SFT_QUESTIONS.items():
            questions = self.data / "train" / name
            command = [sys.executable, "-m", "salova.data.more_questions", str(self.data), "--repeats",
                       str(QUESTION_REPEATS), "--seed", str(QUESTION_SEED), "--questions", str(low), str(high),
                       "--out", str(questions)]  # fmt: skip
            self.step(f"stage-2 questions {name}", command, self.data, questions)

    def stage(self, variant: str, stage: str, init_from: Path | None, extra: dict | None = None,
              folder: str | None = None) -> Path:
        """Train one stage of `variant` into OUT/variant/`folder` (default: the stage's name);
        `extra` are more recipe overrides, replacing the defaults below (each key is passed once).
        Returns its final save_pretrained folder."""
        folder = folder or stage
        output = self.out / variant / folder
        train = self.data / "train"
        overrides = {"data_path": train / STAGE_DATA[stage], "video_folder": train, "output_dir": output,
                     "seed": 42 + self.seed, "init_from": init_from or "null"}  # fmt: skip
        if stage == "pretrain":
            overrides["image_folder"] = train
        overrides.update(extra or {})
        command = [sys.executable, "-m", "training.train", "--stage", stage,
                   "--recipe", str(RECIPES / STAGE_RECIPES[stage]), *(f"{k}={v}" for k, v in overrides.items())]  # fmt: skip
        self.step(f"train {variant} {folder}", command, output, output / "final" / "config.json")
        return output / "final"

    def stage_two(self, variant: str, init_from: Path) -> Path:
        """Stage 2 as SFT_CYCLES warm restarts, each from the previous cycle's final folder
        (OUT/variant/sft, sft-2, sft-3, ...); returns the last cycle's final folder."""
        for number, (steps, seed_offset, questions) in enumerate(SFT_CYCLES, start=1):
            extra = {"max_steps": steps, "seed": 42 + self.seed + seed_offset, "data_path": self.data / "train" / questions}
            init_from = self.stage(variant, "sft", init_from, extra, folder="sft" if number == 1 else f"sft-{number}")
        return init_from

    def variant_checkpoint(self, name: str, source: Path, **config) -> Path:
        """A copy of `source` whose config.json has `config` changed (the ablation knobs)."""
        target = self.out / "checkpoints" / name
        if not (target / "config.json").exists():
            shutil.copytree(source, target, dirs_exist_ok=True)
            path = target / "config.json"
            path.write_text(json.dumps({**json.loads(path.read_text()), **config}, indent=2) + "\n")
        return target

    def evaluate(self, name: str, checkpoint: Path, k: int, limit: int | None) -> None:
        output = self.out / "eval" / f"{name}-k{k}-{self.answer_by}"
        command = [sys.executable, "-m", "evals.run", "--tasks", self.tasks, "--checkpoint", str(checkpoint),
                   "--data-root", str(self.data), "--k", str(k), "--answer-by", self.answer_by, "--output", str(output),
                   "--cache-dir", str(self.out / "feature-cache"), "--device", "cpu"]  # fmt: skip
        if limit:
            command += ["--limit", str(limit)]
        self.step(f"eval {name} k={k} {self.answer_by}", command, output, output / "results.json")
        self.record("evaluations", output.name, {"variant": name, "k": k, "limit": limit, "answer_by": self.answer_by,
                                                 "results": str(output / "results.json")})  # fmt: skip


def wait_for_other_process(marker: Path, poll_s: float = 10.0) -> None:
    """Wait while `marker` names a live process (another reproduction running the same step)."""
    while marker.exists():
        try:
            os.kill(int(marker.read_text() or 0), 0)
        except (ProcessLookupError, ValueError):
            marker.unlink(missing_ok=True)  # left behind by a killed run
            return
        time.sleep(poll_s)


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version()}  # fmt: skip


def reproduce(out: Path, seed: int, variants: list[str], ks: list[int], tasks: str,
              ablation_limit: int | None, answer_by: str = "likelihood") -> dict:
    """Train and evaluate `variants` (and the stages they start from), skipping what is done."""
    run = Reproduction(out, seed, tasks, answer_by)
    run.corpus()
    pretrain = run.stage("full", "pretrain", None)
    checkpoints = {}
    if "no-longvideo" in variants:
        checkpoints["no-longvideo"] = run.stage_two("no-longvideo", pretrain)
    if set(variants) & {"full", "uniform", "focus-only", "fast-only"}:
        longvideo = run.stage("full", "longvideo", pretrain)
    if set(variants) & {"full", "uniform"}:
        checkpoints["full"] = run.stage_two("full", longvideo)
        checkpoints["uniform"] = run.variant_checkpoint("uniform", checkpoints["full"], focus_selection="uniform")
    if "full" in variants:
        run.evaluate("full", checkpoints["full"], MAIN_K, limit=None)  # the headline: every question
    if "focus-only" in variants:
        start = run.variant_checkpoint("focus-only-start", longvideo, use_fast=False)
        checkpoints["focus-only"] = run.stage_two("focus-only", start)
    if "fast-only" in variants:
        start = run.variant_checkpoint("fast-only-start", longvideo, use_focus=False)
        checkpoints["fast-only"] = run.stage_two("fast-only", start)
    for name in variants:
        if name != "full":
            run.evaluate(name, checkpoints[name], MAIN_K, limit=ablation_limit)
    if "full" in variants:
        for k in ks:
            if k != MAIN_K:
                run.evaluate("full", checkpoints["full"], k, limit=ablation_limit)
    return run.summary


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.reproduce", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/small"), help="folder of the whole reproduction")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed; the training seed is 42 + seed")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {','.join(VARIANTS)}")
    parser.add_argument("--ks", default="1,5,9", help="Focus sizes K the full model is evaluated at")
    parser.add_argument("--tasks", default=TASKS, help="evals.run tasks")
    parser.add_argument("--ablation-limit", type=int, default=None,
                        help="questions per task for the variants and the other K (default: all); "
                             "the full model at K=5 always answers every question")
    parser.add_argument("--answer-by", choices=ANSWER_BY, default="likelihood",
                        help="how evals.run answers the multiple-choice questions (evals/options.py)")
    args = parser.parse_args(argv)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        parser.error(f"--variants: {', '.join(unknown)} not among {', '.join(VARIANTS)}")
    args.ks = [int(k) for k in args.ks.split(",") if k.strip()]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    summary = reproduce(args.out, args.seed, args.variants, args.ks, args.tasks, args.ablation_limit, args.answer_by)
    print(f"[reproduce] summary in {args.out / 'summary.json'} ({len(summary['steps'])} steps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
