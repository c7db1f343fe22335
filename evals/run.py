"""python -m evals.run: evaluate a SALOVA checkpoint on long-video benchmarks through lmms-eval.

    python -m evals.run --tasks videomme,mlvu[,longvideobench,niah] [--checkpoint CKPT]
        [--data-root DIR | env SALOVA_DATA] [--limit N] [--k K] [--output DIR] [--strict]
        [--answer-by generate|likelihood]

lmms-eval runs in this process with our model instance and our task YAMLs
(evals/tasks, pointed at the resolved data files). Around it this adds:

- defaults that work with nothing given: no data -> the built-in synthetic demo
  sets (NOT the real benchmarks, and the banner says so); no checkpoint -> the
  built-in demo checkpoint (evals/demo_checkpoint.py), whose options are scored by
  likelihood unless --answer-by says otherwise (it answers in words, not letters);
- start-up checks that fail with a message saying what to do (unknown task,
  data root without the expected files, missing checkpoint);
- per-sample resume: answers go to <output>/samples.jsonl as they are produced,
  and running the same command again skips every answered sample;
- failed samples (missing or unreadable video) recorded and counted wrong;
  --strict makes the first one fatal;
- one folder per run: results.json (scores recomputed from the samples, per
  category, with every knob that changes a score), samples.jsonl, summary.csv,
  report.md and plots.

Multi-process: `torchrun --nproc_per_node N -m evals.run ...` or
`accelerate launch --num_processes N -m evals.run ...`; lmms-eval strides the
samples over the processes and rank 0 writes the results folder.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from evals import cache_root
from evals.benchmarks import (
    BENCHMARKS,
    DATA_ROOT_ENV,
    benchmark_folder,
    question_file,
    resolve_task,
    video_folder,
)
from evals.diagnostics import letterless_warning
from evals.options import ANSWER_BY
from evals.sample_log import SampleLog, settings_hash
from salova.errors import CheckpointError, ConfigError, SalovaError

TASKS_DIR = Path(__file__).parent / "tasks"
DEMO_BANNER = """\
================================================================================
 NO --data-root GIVEN: evaluating on the built-in SYNTHETIC demo sets.
 These are NOT Video-MME, MLVU or LongVideoBench. The scores below say nothing
 about the real benchmarks. Pass --data-root DIR (or set SALOVA_DATA) to
 evaluate on a real benchmark download.
================================================================================"""


@dataclass(frozen=True)
class TaskPlan:
    name: str  # our lmms-eval task name
    benchmark: str
    question_file: Path
    videos: Path


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m evals.run",
        description="Evaluate a SALOVA checkpoint on long-video benchmarks through lmms-eval.",
        epilog="Details: docs/evaluation.md",
    )
    parser.add_argument(
        "--tasks",
        required=True,
        help="comma-separated: videomme, videomme_short|medium|long, mlvu, longvideobench, niah",
    )
    parser.add_argument(
        "--checkpoint",
        help="save_pretrained folder of a SALOVA model (default: the built-in demo checkpoint)",
    )
    parser.add_argument(
        "--data-root",
        help=f"folder holding the benchmark downloads (default: ${DATA_ROOT_ENV}, else the synthetic demo sets)",
    )
    parser.add_argument("--limit", type=positive, help="evaluate only the first N questions of each task")
    parser.add_argument(
        "--k", type=positive, help="number of Focus scenes (default: the checkpoint's focus_k)"
    )
    parser.add_argument("--max-new-tokens", type=positive, help="override the tasks' max_new_tokens")
    parser.add_argument(
        "--answer-by",
        choices=ANSWER_BY,
        help="generate: the model writes its reply and the task parses the letter (default with --checkpoint); "
        "likelihood: each option's text is scored as the whole reply and the most likely option's letter is the "
        "answer (default for the built-in demo checkpoint, which is trained on open answers)",
    )
    parser.add_argument(
        "--output",
        help="run folder; running again with the same folder resumes (default: runs/eval-<settings hash>)",
    )
    parser.add_argument(
        "--cache-dir", help="video feature cache (default: $SALOVA_CACHE/features, ~/.cache/salova/features)"
    )
    parser.add_argument("--device", help="cuda, cuda:N or cpu (default: cuda when available)")
    parser.add_argument(
        "--strict", action="store_true", help="stop at the first failed sample instead of recording it"
    )
    return parser.parse_args(argv)


# -- start-up: tasks, data, checkpoint, output -------------------------------------------


def plan_tasks(names: str, root: Path, rank: int) -> list[TaskPlan]:
    """Resolve and check each task's question file (every row validated) and video folder under the data root."""
    from salova.data.records import load_questions

    plans = []
    for raw in dict.fromkeys(n.strip() for n in names.split(",") if n.strip()):  # in order, once each
        task, bench_name = resolve_task(raw)
        bench = BENCHMARKS[bench_name]
        questions_path, videos = question_file(root, bench), video_folder(root, bench)
        if not videos.is_dir():
            raise ConfigError(
                f"{videos}: {bench_name} video folder not found (expected beside {questions_path.name})"
            )
        schema = (
            "videomme" if bench_name == "niah" else bench_name
        )  # NIAH rows are Video-MME rows plus two columns
        questions = load_questions(
            questions_path, schema, root=benchmark_folder(root, bench), check_media=False
        )
        if not questions:
            raise ConfigError(f"{questions_path}: holds no questions")
        missing = sum(not q.video.is_file() for q in questions)
        if missing and rank == 0:
            print(f"evals.run: warning: {missing} of {len(questions)} {bench_name} questions have no video file; "
                  "they will be recorded as failed samples", flush=True)  # fmt: skip
        plans.append(TaskPlan(task, bench_name, questions_path, videos))
    if not plans:
        raise ConfigError("--tasks is empty; name at least one of videomme, mlvu, longvideobench, niah")
    return plans


def resolve_data_root(given: str | None, rank: int) -> tuple[Path, bool]:
    """(data root, is the synthetic demo)."""
    given = given or os.environ.get(DATA_ROOT_ENV)
    if given:
        root = Path(given).expanduser().resolve()
        if not root.is_dir():
            raise ConfigError(
                f"--data-root {root} does not exist; point it at the folder holding the benchmark downloads"
            )
        return root, False
    from evals.demo_data import demo_data_root

    if rank == 0:
        print(DEMO_BANNER, flush=True)
    return demo_data_root(cache_root()), True


def resolve_checkpoint(given: str | None) -> tuple[Path, bool]:
    """(checkpoint folder, is the built-in demo checkpoint)."""
    if given:
        folder = Path(given).expanduser().resolve()
        if not folder.is_dir():
            raise CheckpointError(
                f"--checkpoint {folder} does not exist; pass a folder written by save_pretrained "
                "(e.g. a training run's checkpoint) or leave it out to use the built-in demo checkpoint"
            )
        if not (folder / "config.json").is_file():
            raise CheckpointError(
                f"--checkpoint {folder} has no config.json; it is not a save_pretrained folder"
            )
        return folder, False
    from evals.demo_checkpoint import demo_checkpoint

    return demo_checkpoint(), True


def answer_mode(given: str | None, demo_checkpoint: bool) -> str:
    """--answer-by, or its default: likelihood for the built-in demo checkpoint (the `small` recipe
    answers open questions in words and does not write option letters; docs/results.md), else generate."""
    if given:
        return given
    return "likelihood" if demo_checkpoint else "generate"


def default_output(args, checkpoint: Path, root: Path, plans: list[TaskPlan]) -> Path:
    key = settings_hash(
        str(checkpoint), str(root), [p.name for p in plans], args.limit, args.k, args.max_new_tokens, args.answer_by
    )
    return Path("runs") / f"eval-{key}"


def write_task_yamls(plans: list[TaskPlan], folder: Path) -> None:
    """One YAML per task that includes ours and points it at the resolved question file."""
    folder.mkdir(parents=True, exist_ok=True)
    for plan in plans:
        loader = "json" if plan.question_file.suffix in (".json", ".jsonl") else "parquet"
        text = (
            f"include: {json.dumps(str(TASKS_DIR / (plan.name + '.yaml')))}\n"
            f"task: {plan.name}\n"
            f"dataset_path: {loader}\n"
            f"dataset_kwargs:\n  data_files:\n    {BENCHMARKS[plan.benchmark].split}: {json.dumps(str(plan.question_file))}\n"
        )
        (folder / f"{plan.name}.yaml").write_text(text)


# -- distributed --------------------------------------------------------------------------


def init_distributed() -> tuple[int, int]:
    """(rank, world size); joins the process group that torchrun / accelerate launch describe."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world == 1:
        return 0, 1
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend=backend, timeout=timedelta(hours=12))
    return dist.get_rank(), dist.get_world_size()


def barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def gather(value, world: int) -> list:
    """`value` of every rank, in rank order."""
    if world == 1:
        return [value]
    import torch.distributed as dist

    values = [None] * world
    dist.all_gather_object(values, value)
    return values


def rank0_first(rank: int, world: int, make):
    """`make()` on rank 0, then on the other ranks: builds cached defaults (demo data, demo checkpoint) once."""
    if rank == 0:
        value = make()
    barrier(world)
    return make() if rank != 0 else value


def close_distributed(world: int) -> None:
    """barrier + destroy: without it gloo sometimes aborts at exit (environment.md §3)."""
    if world > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


# -- evaluation ---------------------------------------------------------------------------


def evaluate(args, plans, checkpoint: Path, output: Path, world: int):
    """Run lmms-eval in this process; returns (lmms-eval results or None off rank 0, model)."""
    from lmms_eval.evaluator import simple_evaluate
    from lmms_eval.tasks import TaskManager

    from evals.lmms_model import SalovaLMMS

    model = SalovaLMMS(
        pretrained=str(checkpoint),
        k=args.k,
        max_new_tokens=args.max_new_tokens,
        cache_dir=args.cache_dir or str(cache_root() / "features"),
        device=args.device,
        samples=str(output / "samples.jsonl"),
        strict=args.strict,
        answer_by=args.answer_by,
    )
    task_manager = TaskManager(
        "WARNING", include_path=str(output / "tasks"), include_defaults=False, model_name="salova"
    )
    results = simple_evaluate(
        model=model,
        tasks=[plan.name for plan in plans],
        limit=args.limit,
        log_samples=True,
        task_manager=task_manager,
        bootstrap_iters=0,
        process_docs_parallel=1,  # our LongVideoBench scorer seeds the global `random` per question
        distributed_executor_backend="torchrun" if world > 1 else "accelerate",
        verbosity="WARNING",
    )
    return results, model


@contextmanager
def environment_restored():
    """The run sets SALOVA_DATA and the cache and offline variables; a caller in the same
    process (a test, a notebook) gets its environment back afterwards."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rank, world = init_distributed()
    try:
        with environment_restored():
            return _run(args, rank, world)
    except SalovaError as error:
        print(f"evals.run: error: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        close_distributed(world)


def _run(args, rank: int, world: int) -> int:
    from evals import report
    from evals.results import collect

    started = time.time()
    [
        resolve_task(n.strip()) for n in args.tasks.split(",") if n.strip()
    ]  # unknown names fail before any work
    if args.checkpoint:
        resolve_checkpoint(args.checkpoint)  # a wrong path fails before the demo data is built
    root, demo_data = rank0_first(rank, world, lambda: resolve_data_root(args.data_root, rank))
    plans = plan_tasks(args.tasks, root, rank)
    checkpoint, demo_checkpoint = rank0_first(rank, world, lambda: resolve_checkpoint(args.checkpoint))
    args.answer_by = answer_mode(args.answer_by, demo_checkpoint)
    output = Path(args.output) if args.output else default_output(args, checkpoint, root, plans)
    output = output.expanduser().resolve()
    os.environ[DATA_ROOT_ENV] = str(root)
    os.environ.setdefault("LMMS_EVAL_DATASETS_CACHE", str(cache_root() / "datasets"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    if rank == 0:
        write_task_yamls(plans, output / "tasks")
        previous = len(SampleLog(output / "samples.jsonl").answered)
        print(
            f"evals.run: run folder {output}; answers by {args.answer_by}"
            + (f" (resuming: {previous} answers on file)" if previous else ""),
            flush=True,
        )
    barrier(world)

    results, model = evaluate(args, plans, checkpoint, output, world)
    model_calls = gather(model.model_calls, world)
    if rank != 0:
        return 0
    run = collect(
        results=results,
        model=model,
        plans=plans,
        checkpoint=checkpoint,
        data_root=root,
        demo={"data": demo_data, "checkpoint": demo_checkpoint},
        args=vars(args),
        model_calls=model_calls,
        seconds=time.time() - started,
    )
    if run["totals"]["samples"] == 0:
        raise ConfigError(
            f"no samples were evaluated (tasks {args.tasks}, --limit {args.limit}); check the question files"
        )
    report.write_run_folder(output, run)
    print(report.summary_text(run), flush=True)
    for task, scores in run["tasks"].items():
        warning = letterless_warning(task, scores.get("replies"))
        if warning:
            print(warning, flush=True)
    if demo_data:
        print("(synthetic demo data: not the real benchmarks)", flush=True)
    print(f"evals.run: results in {output}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
