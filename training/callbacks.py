"""Benchmark every saved checkpoint, without ever stopping training.

With `eval_on_save`, the trainer writes a save_pretrained copy of the model into each
checkpoint (`<checkpoint>/hf`). The main process then queues a job that runs in a background
thread, one job at a time, as a SEPARATE process:

    python -m evals.run --checkpoint <checkpoint>/hf --tasks <tasks> --limit <N> --output <dir>

and appends one row to OUTPUT_DIR/benchmarks.jsonl (step, status, per-task score) and redraws
OUTPUT_DIR/benchmarks.png (score vs step). A failed evaluation becomes a row with status
"failed" and the end of its output; training goes on. `eval_command` replaces the command: a
template with {python} {checkpoint} {tasks} {limit} {output} {step}. The evaluation writes
<output>/results.json whose "tasks" map task -> {"score": ...}. Without --data-root, evals.run
uses its built-in synthetic sets.
"""

from __future__ import annotations

import json
import os
import queue
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

ROWS_FILE, PLOT_FILE = "benchmarks.jsonl", "benchmarks.png"
HF_FOLDER = "hf"  # the save_pretrained copy inside a checkpoint
DEFAULT_EVAL = "{python} -m evals.run --checkpoint {checkpoint} --tasks {tasks} --limit {limit} --output {output}"
# Launcher variables of the training processes; an evaluation must not join their process group.
LAUNCHER_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                      "GROUP_RANK", "ROLE_RANK", "ROLE_WORLD_SIZE", "CROSS_RANK", "CROSS_SIZE")
OUTPUT_TAIL = 2000  # characters of a failed command's output kept in its row


def read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot(rows: list[dict], path: Path) -> None:
    """Score of each task vs training step (successful evaluations only)."""
    figure = Figure(figsize=(6, 4))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    tasks = sorted({task for row in rows for task in row.get("scores", {})})
    for task in tasks:
        points = sorted((row["step"], row["scores"][task]) for row in rows if task in row.get("scores", {}))
        axes.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=task)
    if tasks:
        axes.legend()
    else:
        axes.text(0.5, 0.5, "no successful evaluation yet", ha="center", va="center", transform=axes.transAxes)
    failed = [row["step"] for row in rows if row["status"] != "ok"]
    for step in failed:
        axes.axvline(step, color="red", alpha=0.3, linestyle="--")
    axes.set_xlabel("training step")
    axes.set_ylabel("score")
    axes.set_title("checkpoint benchmarks" + (f" ({len(failed)} failed, dashed)" if failed else ""))
    figure.tight_layout()
    figure.savefig(path)


def clean_environment() -> dict:
    return {key: value for key, value in os.environ.items() if key not in LAUNCHER_VARIABLES}


class BenchmarkOnSave:
    def __init__(self, output_dir: Path, tasks: str, limit: int, data_root: str | None = None,
                 command: str | None = None):
        self.output_dir, self.tasks, self.limit = Path(output_dir), tasks, limit
        self.command = command or DEFAULT_EVAL + (f" --data-root {shlex.quote(data_root)}" if data_root else "")
        self.jobs: queue.Queue = queue.Queue()
        self.worker = threading.Thread(target=self._work, name="benchmark-on-save", daemon=True)
        self.worker.start()

    @classmethod
    def from_recipe(cls, recipe, output_dir: Path) -> BenchmarkOnSave:
        return cls(output_dir, recipe.eval_tasks, recipe.eval_limit, recipe.eval_data_root, recipe.eval_command)

    def on_save(self, step: int, checkpoint: Path) -> None:
        self.jobs.put((step, Path(checkpoint)))

    def close(self) -> None:
        """Wait for the queued evaluations."""
        self.jobs.put(None)
        self.worker.join()

    def _work(self) -> None:
        while (job := self.jobs.get()) is not None:
            try:
                self._record(self._evaluate(*job))
            except Exception as error:  # noqa: BLE001 - a broken benchmark must never stop training
                print(f"benchmark of step {job[0]} could not run: {error!r}; training goes on", file=sys.stderr)

    def _evaluate(self, step: int, checkpoint: Path) -> dict:
        started = time.time()
        output = self.output_dir / "benchmarks" / checkpoint.name
        row = {"step": step, "checkpoint": str(checkpoint), "output": str(output), "status": "ok", "scores": {}}
        command = shlex.split(self.command.format(
            python=shlex.quote(sys.executable), checkpoint=shlex.quote(str(checkpoint / HF_FOLDER)), tasks=self.tasks,
            limit=self.limit, output=shlex.quote(str(output)), step=step))
        done = subprocess.run(command, capture_output=True, text=True, env=clean_environment())
        if done.returncode != 0:
            row.update(status="failed", returncode=done.returncode, error=(done.stdout + done.stderr)[-OUTPUT_TAIL:])
        else:
            row["scores"] = self._scores(output / "results.json", row)
        row["seconds"] = round(time.time() - started, 2)
        return row

    @staticmethod
    def _scores(results: Path, row: dict) -> dict:
        try:
            tasks = json.loads(results.read_text())["tasks"]
            return {task: float(values["score"]) for task, values in tasks.items()}
        except (OSError, ValueError, KeyError, TypeError) as error:
            row.update(status="failed", error=f"cannot read the scores in {results}: {error!r}")
            return {}

    def _record(self, row: dict) -> None:
        rows_file = self.output_dir / ROWS_FILE
        with rows_file.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        plot(read_rows(rows_file), self.output_dir / PLOT_FILE)
        if row["status"] != "ok":
            print(f"benchmark of step {row['step']} failed; training goes on. See {rows_file}", file=sys.stderr)
