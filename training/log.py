"""Training progress: a tqdm bar on the main process, a console line every `log_steps`, and one
JSON line per optimizer step in OUTPUT_DIR/train_log.jsonl.

A resumed run first drops the lines of steps after the checkpoint it resumes from (the killed
run may have logged a few), so the log reads as one uninterrupted run.
"""

from __future__ import annotations

import json
from pathlib import Path

from tqdm.auto import tqdm

LOG_FILE = "train_log.jsonl"


def read_log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class TrainLog:
    def __init__(self, output_dir: Path, start_step: int, total_steps: int, log_steps: int, main: bool, stage: str):
        self.path, self.log_steps, self.main = output_dir / LOG_FILE, log_steps, main
        if main:
            kept = [row for row in read_log(self.path) if row["step"] <= start_step]
            self.path.write_text("".join(json.dumps(row) + "\n" for row in kept))
        self.bar = tqdm(total=total_steps, initial=start_step, desc=stage, unit="step", disable=not main)

    def step(self, row: dict) -> None:
        if not self.main:
            return
        with self.path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        self.bar.update(1)
        self.bar.set_postfix(loss=_short(row["loss"]), lm=_short(row["lm_loss"]), sim=_short(row["sim_loss"]),
                             acc=_short(row["router_accuracy"]))
        if row["step"] % self.log_steps == 0:
            lrs = " ".join(f"lr[{name}]={lr:.3g}" for name, lr in row["lr"].items())
            self.bar.write(f"step {row['step']}: loss {_short(row['loss'])} lm {_short(row['lm_loss'])} "
                           f"sim {_short(row['sim_loss'])} router acc {_short(row['router_accuracy'])} {lrs} "
                           f"skipped {row['skipped_records']}")

    def close(self) -> None:
        self.bar.close()


def _short(value) -> str:
    return "-" if value is None else f"{value:.4f}"
