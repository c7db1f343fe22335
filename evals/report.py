"""Write a run folder: results.json, samples.jsonl, summary.csv, report.md and plots.

results.json   scores (overall + per category), failures, router recall, and every
               knob that changes a score (see evals/results.py: settings)
samples.jsonl  one line per sample: answer, parsed prediction, target, correct,
               categories, Focus scenes, failure (also the resume log)
summary.csv    long table: task, category, value, n, correct, accuracy
report.md      the same as tables, with the plots
plots/         per-category bars, accuracy by video length, NIAH heat map
               (haystack length x needle depth)
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from evals.sample_log import read_records  # noqa: E402
from evals.scoring import FAMILIES  # noqa: E402


def atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def write_samples(path: Path, rows: list[dict]) -> None:
    """The run's scored rows, sorted, followed by any older answers (other settings) kept for resuming."""
    used = {row["key"] for row in rows}
    older = [r for r in read_records(path) if r.get("key") not in used]
    lines = [
        json.dumps(r, sort_keys=True, default=str)
        for r in sorted(rows, key=lambda r: (r["task"], r["doc_id"]))
    ]
    lines += [json.dumps(r, sort_keys=True, default=str) for r in older]
    atomic_write(path, "".join(line + "\n" for line in lines))


def summary_frame(run: dict) -> pd.DataFrame:
    records = []
    for task, scores in run["tasks"].items():
        records.append({"task": task, "category": "overall", "value": "all", "n": scores["n"],
                        "correct": scores["correct"], "accuracy": scores["accuracy"]})  # fmt: skip
        if scores.get("m_avg") is not None:
            records.append({"task": task, "category": "M-Avg", "value": "7 types", "n": scores["n"],
                            "correct": scores["correct"], "accuracy": scores["m_avg"]})  # fmt: skip
        for label, groups in scores["categories"].items():
            for value, acc in groups.items():
                records.append({"task": task, "category": label, "value": value, **acc})
    return pd.DataFrame.from_records(
        records, columns=["task", "category", "value", "n", "correct", "accuracy"]
    )


def overview_frame(run: dict) -> pd.DataFrame:
    records = []
    for task, scores in run["tasks"].items():
        router = scores.get("router") or {}
        records.append({
            "task": task,
            "samples": scores["n"],
            "failed": scores["failed"],
            "score": round(scores["score"], 2),
            "metric": scores["score_name"],
            "lmms-eval": ", ".join(f"{k}={v:.4g}" for k, v in scores["lmms_eval"].items()),
            "router R@1": round(router["recall@1"], 1) if router else None,
            "router R@K": round(router["recall@K"], 1) if router else None,
        })  # fmt: skip
    return pd.DataFrame.from_records(records)


def summary_text(run: dict) -> str:
    return "\n" + overview_frame(run).to_markdown(index=False) + "\n"


# -- plots ----------------------------------------------------------------------------


def bar_text(group: dict) -> str:
    return f"{group['accuracy']:.0f}% (n={group['n']})"


def plot_categories(folder: Path, task: str, scores: dict) -> Path:
    labels = list(scores["categories"])
    most = max((len(groups) for groups in scores["categories"].values()), default=1)
    fig, axes = plt.subplots(1, len(labels), figsize=(4.5 * len(labels), 1.5 + 0.3 * most), squeeze=False)
    for ax, label in zip(axes[0], labels):
        groups = scores["categories"][label]
        bars = ax.barh(list(groups), [g["accuracy"] for g in groups.values()], color="tab:blue")
        ax.bar_label(bars, labels=[bar_text(g) for g in groups.values()], fontsize=7, padding=2)
        ax.set_title(label)
        ax.set_xlim(0, 115)  # room for the labels
        ax.set_xlabel("accuracy (%)")
        ax.invert_yaxis()
    fig.suptitle(task)
    fig.tight_layout()
    path = folder / f"{task}_categories.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_by_length(folder: Path, run: dict) -> Path:
    tasks = list(run["tasks"])
    fig, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 3.2), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        scores = run["tasks"][task]
        length = FAMILIES[scores["benchmark"]].length
        groups = scores["categories"][length]
        bars = ax.bar([str(v) for v in groups], [g["accuracy"] for g in groups.values()], color="tab:green")
        ax.bar_label(bars, labels=[bar_text(g) for g in groups.values()], fontsize=7, padding=2)
        ax.set_title(f"{task}\nby {length}")
        ax.set_ylim(0, 110)
        ax.set_ylabel("accuracy (%)")
    fig.tight_layout()
    path = folder / "accuracy_by_length.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def niah_grid(rows: list[dict]) -> pd.DataFrame:
    """Accuracy (%) with haystack length (minutes) as rows and needle depth (%) as columns."""
    frame = pd.DataFrame(
        [
            {
                "haystack": float(r["categories"]["haystack_minutes"]),
                "depth": float(r["categories"]["needle_depth"]),
                "correct": 100.0 * r["correct"],
            }
            for r in rows
        ]  # fmt: skip
    )
    return frame.pivot_table(index="haystack", columns="depth", values="correct", aggfunc="mean").sort_index()


def plot_niah(folder: Path, task: str, grid: pd.DataFrame) -> Path:
    fig, ax = plt.subplots(figsize=(1.2 + 0.8 * grid.shape[1], 1.0 + 0.5 * grid.shape[0]))
    image = ax.imshow(grid.values, vmin=0, vmax=100, cmap="RdYlGn", aspect="auto")
    ax.set_xticks(range(grid.shape[1]), [f"{d:g}" for d in grid.columns])
    ax.set_yticks(range(grid.shape[0]), [f"{h:g}" for h in grid.index])
    ax.set_xlabel("needle depth (%)")
    ax.set_ylabel("haystack length (min)")
    for (i, j), value in pd.DataFrame(grid.values).stack().items():
        ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=8)
    fig.colorbar(image, ax=ax, label="accuracy (%)")
    ax.set_title(task)
    fig.tight_layout()
    path = folder / f"{task}_heatmap.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# -- report ---------------------------------------------------------------------------


def report_markdown(run: dict, plots: dict[str, Path], folder: Path) -> str:
    s = run["settings"]
    lines = ["# SALOVA evaluation", ""]
    if s["data"]["demo"]:
        lines += ["> **Synthetic demo data: these are NOT the real benchmarks.**", ""]
    lines += [
        f"- checkpoint: `{s['checkpoint']['path']}` (hash `{s['checkpoint']['hash']}`"
        + (", built-in demo checkpoint)" if s["checkpoint"]["demo"] else ")"),
        f"- K (Focus scenes): {s['k']}; answers by: {s.get('answer_by', 'generate')}; template: {s['template']}; "
        f"towers: {s['towers']}",
        f"- sampler: {s['sampler']}",
        f"- decoding: {s['decoding']}",
        f"- data root: `{s['data']['root']}`; limit: {s['limit']}",
        f"- lmms-eval {s['packages'].get('lmms-eval')}, git commit {s['git']['commit']} (dirty: {s['git']['dirty']})",
        f"- samples: {run['totals']['samples']}, failed: {run['totals']['failed']}, "
        f"time: {run['totals']['seconds']} s, processes: {run['totals']['world_size']}",
        "",
        "## Overview",
        "",
        overview_frame(run).to_markdown(index=False),
        "",
    ]
    summary = summary_frame(run)
    for task, scores in run["tasks"].items():
        lines += [f"## {task}", ""]
        table = summary[summary.task == task].drop(columns="task").round({"accuracy": 2})
        lines += [table.to_markdown(index=False), ""]
        if task in plots:
            lines += [f"![{task}]({plots[task].relative_to(folder)})", ""]
        if f"{task}:niah" in plots:
            lines += [f"![{task} heat map]({plots[task + ':niah'].relative_to(folder)})", ""]
        if scores["failures"]:
            lines += ["Failed samples (counted wrong):", ""]
            lines += [f"- doc {f['doc_id']}: `{f['video']}`: {f['failure']}" for f in scores["failures"]]
            lines += [""]
    lines += ["## Accuracy by video length", "", f"![by length]({plots['length'].relative_to(folder)})", ""]
    return "\n".join(lines)


def write_run_folder(folder: Path, run: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    plots_dir = folder / "plots"
    plots_dir.mkdir(exist_ok=True)
    write_samples(folder / "samples.jsonl", run["rows"])
    plots = {task: plot_categories(plots_dir, task, scores) for task, scores in run["tasks"].items()}
    plots["length"] = plot_by_length(plots_dir, run)
    for task, scores in run["tasks"].items():
        if scores["benchmark"] == "niah":
            grid = niah_grid([r for r in run["rows"] if r["task"] == task])
            scores["niah_grid"] = {
                f"{h:g}": {f"{d:g}": v for d, v in row.items()} for h, row in grid.iterrows()
            }
            plots[f"{task}:niah"] = plot_niah(plots_dir, task, grid)
    summary_frame(run).to_csv(folder / "summary.csv", index=False)
    atomic_write(
        folder / "results.json",
        json.dumps({k: v for k, v in run.items() if k != "rows"}, indent=2, default=str),
    )
    atomic_write(folder / "report.md", report_markdown(run, plots, folder))
