"""One command for the `small` model's CPU reproduction: corpus -> stages 1, 1.5, 2 -> benchmarks,
then the baselines and ablations trained and evaluated the same way.

    python -m training.reproduce --out runs/small [--seed 0] [--variants full,uniform,...]
        [--ks 1,5,9] [--ablation-limit N] [--tasks videomme,mlvu,longvideobench,niah]
        [--answer-by likelihood|generate] [--stage2-processes N]

Steps (each in its own process, so DeepSpeed's global state never leaks between stages):

1. corpus: `python -m salova.data.synth --preset small --out OUT/data --seed SEED`, then stage 2's
   questions (`python -m salova.data.more_questions OUT/data --repeats 40 --seed 1 --questions 1 1
   --router-questions R --out OUT/data/train/F`): 9,600 records of one open question in composed
   phrasings, each with R more questions for the router alone; R = 27 for the first phase
   (sft_router.json), 3 for the second (sft_reading.json; the same asked questions)
2. full model: `python -m training.train --stage {pretrain,longvideo,sft}` with
   training/recipes/small-pretrain.yaml, small-longvideo.yaml, then stage 2 in two phases,
   small-open-sft.yaml (router and reading, LR 1e-3) and small-reading-sft.yaml (the reading, LR
   3e-4, cheaper steps), each starting from the previous one's final folder; stage 2 optionally as N
   data-parallel processes (`--stage2-processes`, torchrun), which share each optimizer step's samples
3. variants (docs/results.md explains each):
   - `uniform`: the full model's checkpoint with `focus_selection: uniform` (K scenes evenly
     spaced over the video, no router; same Focus and Fast token counts)
   - `focus-only` / `fast-only`: stage 2 from the full stage-1.5 checkpoint with `use_fast` /
     `use_focus` switched off (the FocusFast ablation)
   - `no-longvideo`: stage 2 straight from the stage-1 checkpoint (skipping stage 1.5), with the
     Fast tokens switched on as stage 1.5 does
4. evaluation: `python -m evals.run --tasks ... --checkpoint CKPT --data-root OUT/data --k K
   --answer-by likelihood --output OUT/eval/<variant>-k<K>-likelihood`: first the full model at
   K = MAIN_K on every question, then the full model at the other K of --ks and the variants at
   K = MAIN_K (on the first --ablation-limit questions of each task when given)
5. OUT/summary.json: every step's command, processes and threads, wall time and exit status, and
   where each evaluation's results.json lies

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
from training.recipe import load_recipe

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "training" / "recipes"
VARIANTS = ("full", "uniform", "focus-only", "fast-only", "no-longvideo")
TASKS = "videomme,mlvu,longvideobench,niah"
# The Focus size of the headline and the ablations: the `small` model answers best with one Focus
# scene (docs/results.md: K = 1 / 5 / 9 give 76.8 / 54.6 / 50.0 % for the fifth session's model).
MAIN_K = 1
# The steps of the full model, in order. Stage 2 runs in two phases, both `training.train --stage sft`:
# "sft" teaches the router and the reading, "sft-reading" goes on with the reading at a lower LR.
STAGE_RECIPES = {"pretrain": "small-pretrain.yaml", "longvideo": "small-longvideo.yaml", "sft": "small-open-sft.yaml",
                 "sft-reading": "small-reading-sft.yaml"}  # fmt: skip
STAGE_DATA = {"pretrain": "stage1.json", "longvideo": "scenewalk.json", "sft": "sft_router.json",
              "sft-reading": "sft_reading.json"}  # fmt: skip
STAGE2_PHASES = ("sft", "sft-reading")
# Stage 2's questions (salova.data.more_questions): 40 records per training video, each asking one
# question (one Focus scene, as at K = 1) and carrying more questions that train only the router
# (each recipe's max_queries = 1 + those). 27 router-only questions in the first phase make stage 2
# about five times shorter (docs/results.md, sixth session); 3 in the second make its steps about
# half as costly once the router is trained (seventeenth session). One question a record reads the
# Focus scene better than 1-5 (sixteenth and seventeenth sessions).
QUESTION_REPEATS, QUESTION_SEED = 40, 1
QUESTIONS_PER_RECORD = (1, 1)
ROUTER_QUESTIONS = {"sft": 27, "sft-reading": 3}
RUNNING = ".reproduce-running"
CHILD_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
# Threads per process unless OMP_NUM_THREADS says otherwise: one, because tiny models on a CPU shared
# with other jobs run far slower when their threads wait on each other, and stages 1-1.5 at one
# thread compute the same weights on every run (two threads compute others; docs/results.md).
DEFAULT_THREADS = "1"
# Stage 2 as this many data-parallel processes (torchrun, gloo), each with one sample of every
# optimizer step's two: the same samples per step as one process accumulating two (training/stream.py),
# equal up to the rounding of the gradient-norm sum that clipping uses (tests/test_train_runs.py).
# Two processes of one thread: 0.37 s a stage-2 step on the 2-core machine, against 0.41 s for one
# process of two threads and 0.62 s for one of one thread (docs/results.md, twelfth session).
STAGE2_PROCESSES = 2


def step_threads() -> str:
    return os.environ.get("OMP_NUM_THREADS", DEFAULT_THREADS)


def child_env() -> dict[str, str]:
    return {**os.environ, **CHILD_ENV, "OMP_NUM_THREADS": step_threads()}


class Reproduction:
    """The folders and commands of one reproduction under `out`; records what each step took."""

    def __init__(self, out: Path, seed: int, tasks: str, answer_by: str = "likelihood", stage2_processes: int = 1):
        self.out, self.seed, self.tasks, self.answer_by = out, seed, tasks, answer_by
        self.stage2_processes = stage2_processes
        self.data = out / "data"
        self.summary_path = out / "summary.json"
        self.summary = {"steps": {}, "evaluations": {}, "machine": machine()}

    # -- running and recording ---------------------------------------------------------

    def step(self, name: str, command: list[str], folder: Path, done: Path, processes: int = 1) -> None:
        """Run `command` unless `done` exists; record the command, its processes and threads, its
        wall time and its outcome (per step: runs that continue one folder may differ in them).

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
            finished = subprocess.run(command, cwd=REPO, env=child_env())
        finally:
            (folder / RUNNING).unlink(missing_ok=True)
        seconds = round(time.time() - started, 1)
        self.record("steps", name, {"command": " ".join(command), "processes": processes,
                                    "threads": int(step_threads()), "seconds": seconds,
                                    "returncode": finished.returncode})  # fmt: skip
        if finished.returncode != 0 and not done.exists():
            raise SystemExit(f"[reproduce] {name} failed (exit {finished.returncode}) after {seconds} s")
        if finished.returncode != 0:  # gloo can abort a rank at exit after a finished run (environment.md §3)
            print(f"[reproduce] {name}: exit {finished.returncode} after writing {done}; kept", flush=True)
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
        low, high = QUESTIONS_PER_RECORD
        for phase in STAGE2_PHASES:
            questions = self.data / "train" / STAGE_DATA[phase]
            command = [sys.executable, "-m", "salova.data.more_questions", str(self.data), "--repeats",
                       str(QUESTION_REPEATS), "--seed", str(QUESTION_SEED), "--questions", str(low), str(high),
                       "--router-questions", str(ROUTER_QUESTIONS[phase]), "--out", str(questions)]  # fmt: skip
            self.step(f"{phase} questions", command, self.data, questions)

    def stage(self, variant: str, stage: str, init_from: Path | None, extra: dict | None = None) -> Path:
        """Train one stage of `variant` into OUT/variant/stage; `extra` are more recipe overrides,
        replacing the defaults below (each key is passed once). Returns its final save_pretrained folder."""
        output = self.out / variant / stage
        train = self.data / "train"
        overrides = {"data_path": train / STAGE_DATA[stage], "video_folder": train, "output_dir": output,
                     "seed": 42 + self.seed, "init_from": init_from or "null"}  # fmt: skip
        if stage == "pretrain":
            overrides["image_folder"] = train
        recipe = RECIPES / STAGE_RECIPES[stage]
        trainer_stage = "sft" if stage in STAGE2_PHASES else stage
        launcher, processes = [sys.executable], 1
        if trainer_stage == "sft" and self.stage2_processes > 1:
            processes = self.stage2_processes
            launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                        "--nproc_per_node", str(processes)]  # fmt: skip
            overrides["gradient_accumulation_steps"] = accumulation_per_process(recipe, processes)
        overrides.update(extra or {})
        command = [*launcher, "-m", "training.train", "--stage", trainer_stage, "--recipe", str(recipe),
                   *(f"{k}={v}" for k, v in overrides.items())]  # fmt: skip
        self.step(f"train {variant} {stage}", command, output, output / "final" / "config.json", processes)
        return output / "final"

    def stage2(self, variant: str, init_from: Path) -> Path:
        """Stage 2's phases of `variant`, the first from `init_from`; returns the last one's final folder."""
        for phase in STAGE2_PHASES:
            init_from = self.stage(variant, phase, init_from)
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


def accumulation_per_process(recipe: Path, processes: int) -> int:
    """The accumulation steps that keep the stage-2 recipe's samples per optimizer step over `processes`."""
    accumulation = load_recipe(recipe, "sft").gradient_accumulation_steps
    if accumulation % processes:
        raise SystemExit(f"[reproduce] --stage2-processes {processes}: {recipe.name} accumulates "
                         f"{accumulation} micro-batches a step, which {processes} processes cannot share evenly")
    return accumulation // processes


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
              ablation_limit: int | None, answer_by: str = "likelihood", stage2_processes: int = STAGE2_PROCESSES) -> dict:
    """Train and evaluate `variants` (and the stages they start from), skipping what is done."""
    run = Reproduction(out, seed, tasks, answer_by, stage2_processes)
    run.corpus()
    pretrain = run.stage("full", "pretrain", None)
    checkpoints = {}
    if "no-longvideo" in variants:  # stage 2 sees the Fast tokens, as after stage 1.5, whatever stage 1 trained with
        start = run.variant_checkpoint("no-longvideo-start", pretrain, use_fast=True)
        checkpoints["no-longvideo"] = run.stage2("no-longvideo", start)
    if set(variants) & {"full", "uniform", "focus-only", "fast-only"}:
        longvideo = run.stage("full", "longvideo", pretrain)
    if set(variants) & {"full", "uniform"}:
        checkpoints["full"] = run.stage2("full", longvideo)
        checkpoints["uniform"] = run.variant_checkpoint("uniform", checkpoints["full"], focus_selection="uniform")
    if "full" in variants:
        run.evaluate("full", checkpoints["full"], MAIN_K, limit=None)  # the headline: every question
    if "focus-only" in variants:
        start = run.variant_checkpoint("focus-only-start", longvideo, use_fast=False)
        checkpoints["focus-only"] = run.stage2("focus-only", start)
    if "fast-only" in variants:
        start = run.variant_checkpoint("fast-only-start", longvideo, use_focus=False)
        checkpoints["fast-only"] = run.stage2("fast-only", start)
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
                             f"the full model at K = {MAIN_K} always answers every question")
    parser.add_argument("--answer-by", choices=ANSWER_BY, default="likelihood",
                        help="how evals.run answers the multiple-choice questions (evals/options.py)")
    parser.add_argument("--stage2-processes", type=int, default=STAGE2_PROCESSES,
                        help="data-parallel processes for stage 2 (torchrun), each with OMP_NUM_THREADS threads; "
                             "they share every optimizer step's samples (default: %(default)s)")
    args = parser.parse_args(argv)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        parser.error(f"--variants: {', '.join(unknown)} not among {', '.join(VARIANTS)}")
    args.ks = [int(k) for k in args.ks.split(",") if k.strip()]
    if args.stage2_processes < 1:
        parser.error(f"--stage2-processes: {args.stage2_processes} is not a number of processes (1 or more)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    summary = reproduce(args.out, args.seed, args.variants, args.ks, args.tasks, args.ablation_limit, args.answer_by,
                        args.stage2_processes)
    print(f"[reproduce] summary in {args.out / 'summary.json'} ({len(summary['steps'])} steps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
