"""Markdown tables of a reproduction (training/reproduce.py) for docs/results.md.

    python -m training.results_report runs/small [--figures docs/results]

Reads OUT/summary.json and every evaluation's results.json and samples.jsonl (written by
evals.run); a folder without summary.json is read as a folder of evals.run outputs named
`<variant>-k<K>[-...]` (e.g. runs you started by hand). It prints: the variants table, every variant scored on the same questions (the
first --ablation-limit of each task; accuracy per task, router recall@1 / @K), the same on
videos of >= 30 scenes, each variant's accuracy split by whether the router put the answer
scene among the Focus scenes, its accuracy on questions that name one of their own options (and
how many it got wrong by choosing such an option), the full model's per-task scores, accuracy by video length and
NIAH grid, and the wall time of every step. On a synthetic corpus (`--truth`, by default
OUT/data/ground_truth.json when it exists) it also splits each variant's accuracy by the attribute
each question asks (background or shape colour, ...) and by whether the answer scene was in the Focus. With --figures, copies the full model's NIAH heat
map and accuracy-by-length plot there and draws every evaluation's pooled accuracy, on all
questions and on videos of >= 30 scenes, as one bar chart (variants.png; its numbers as
variants.csv).
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import sys
from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from evals.benchmarks import TASK_TO_BENCHMARK
from evals.diagnostics import named_option_split, retrieval_hits
from training.reproduce import MAIN_K

TASKS = {"videomme_salova": "Video-MME", "mlvu_dev_salova": "MLVU", "longvideobench_val_salova": "LongVideoBench",
         "niah_salova": "NIAH"}  # fmt: skip
LENGTH_CATEGORY = {"videomme_salova": "duration", "mlvu_dev_salova": "length",
                   "longvideobench_val_salova": "duration_group", "niah_salova": "haystack_minutes"}  # fmt: skip


def load(out: Path) -> tuple[dict, dict[str, dict]]:
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else evaluations_in(out)
    results = {}
    for name, entry in summary.get("evaluations", {}).items():
        path = Path(entry["results"])
        if path.exists():
            results[name] = json.loads(path.read_text())
    return summary, results


def evaluations_in(folder: Path) -> dict:
    """A summary of the evals.run outputs directly under `folder` (<variant>-k<K>[-...]/results.json)."""
    evaluations = {}
    for path in sorted(folder.glob("*/results.json")):
        settings = json.loads(path.read_text())["settings"]
        evaluations[path.parent.name] = {"variant": path.parent.name.split("-k")[0], "k": settings["k"],
                                         "limit": settings.get("limit"), "answer_by": settings.get("answer_by", "generate"),
                                         "results": str(path)}  # fmt: skip
    return {"steps": {}, "evaluations": evaluations}


def headline(summary: dict, results: dict[str, dict], name: str | None = None) -> str | None:
    """`name` if given (an evaluation of the summary), else the full model's evaluation at
    reproduce.MAIN_K (the one every question is asked in), if any."""
    if name is not None:
        if name not in results:
            raise SystemExit(f"--headline {name}: no such evaluation; there are: {', '.join(sorted(results))}")
        return name
    return next((name for name in results if summary["evaluations"][name]["variant"] == "full"
                 and summary["evaluations"][name]["k"] == MAIN_K), None)  # fmt: skip


def _cell(value, digits=1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


@functools.cache
def read_samples(results_path: str) -> tuple[dict, ...]:
    """The per-question rows evals.run wrote beside results.json (samples.jsonl), read once per
    report: every table reads them, and none changes them."""
    path = Path(results_path).parent / "samples.jsonl"
    return tuple(json.loads(line) for line in path.read_text().splitlines() if line.strip()) if path.exists() else ()


def subset_scores(rows: list[dict], limit: int | None, min_scenes: int = 0) -> dict:
    """Accuracy and router recall@1/@K (%) per task over the first `limit` questions of each task
    (all when None), counting only videos with at least `min_scenes` detected scenes."""
    chosen = [r for r in rows if (limit is None or r["doc_id"] < limit) and (r.get("num_scenes") or 0) >= min_scenes]
    scores = {}
    for task in TASKS:
        task_rows = [r for r in chosen if r["task"] == task]
        if task_rows:
            hits = [h for h in map(retrieval_hits, task_rows) if h is not None]
            scores[task] = {"n": len(task_rows), "accuracy": 100.0 * sum(bool(r.get("correct")) for r in task_rows) / len(task_rows),
                            "recall@1": 100.0 * sum(h[0] for h in hits) / len(hits) if hits else None,
                            "recall@K": 100.0 * sum(h[1] for h in hits) / len(hits) if hits else None}  # fmt: skip
    return scores


def pooled(scores: dict, key: str, tasks=TASKS) -> float | None:
    """`key` averaged over the questions of `tasks` (weighted by their counts)."""
    parts = [(v[key], v["n"]) for t, v in scores.items() if t in tasks and v.get(key) is not None]
    n = sum(count for _, count in parts)
    return sum(value * count for value, count in parts) / n if n else None


def variants_table(summary: dict, results: dict[str, dict], limit: int | None, min_scenes: int = 0) -> str:
    """Every evaluation scored on the same questions: the first `limit` of each task."""
    lines = ["| variant | K | questions | " + " | ".join(TASKS.values()) +
             " | all | router recall@1 | router recall@K |", "|---" * (len(TASKS) + 6) + "|"]  # fmt: skip
    for name in results:
        entry = summary["evaluations"][name]
        scores = subset_scores(read_samples(entry["results"]), limit, min_scenes)
        accuracies = [_cell(scores[t]["accuracy"]) if t in scores else "–" for t in TASKS]
        count = sum(v["n"] for v in scores.values())
        lines.append(f"| {entry['variant']} | {entry['k']} | {count} | " + " | ".join(accuracies) +
                     f" | {_cell(pooled(scores, 'accuracy'))} | {_cell(pooled(scores, 'recall@1'))} | "
                     f"{_cell(pooled(scores, 'recall@K'))} |")  # fmt: skip
    main_run = headline(summary, results)
    headline_rows = read_samples(summary["evaluations"][main_run]["results"]) if main_run else []
    reference = constant_answer_scores(headline_rows, limit, min_scenes)
    if reference:
        accuracies = [_cell(reference[t]["accuracy"]) + f" ({reference[t]['letter']})" if t in reference else "–"
                      for t in TASKS]  # fmt: skip
        lines.append("| best constant letter (no video) | – | – | " + " | ".join(accuracies) + " | – | – | – |")
    return "\n".join(lines)


def constant_answer_scores(rows: list[dict], limit: int | None, min_scenes: int = 0) -> dict:
    """Per task, the accuracy of always answering the most frequent correct letter: the floor a
    model that ignores the video can reach by learning the answer-letter prior."""
    chosen = [r for r in rows if (limit is None or r["doc_id"] < limit) and (r.get("num_scenes") or 0) >= min_scenes]
    scores = {}
    for task in TASKS:
        targets = [str(r.get("target")) for r in chosen if r["task"] == task]
        if targets:
            letter = max(sorted(set(targets)), key=targets.count)
            scores[task] = {"letter": letter, "accuracy": 100.0 * targets.count(letter) / len(targets)}
    return scores


def focus_split(rows: list[dict]) -> dict[bool, tuple[int, float | None]]:
    """{answer scene in Focus?: (questions, accuracy %)} over the rows the diagnostics can judge.
    Equal accuracies on both sides mean the answers do not depend on seeing the right scene."""
    split: dict[bool, list[bool]] = {True: [], False: []}
    for row in rows:
        hits = retrieval_hits(row)
        if hits is not None:
            split[hits[1]].append(bool(row.get("correct")))
    return {side: (len(v), 100.0 * sum(v) / len(v) if v else None) for side, v in split.items()}


def focus_split_table(summary: dict, results: dict[str, dict]) -> str:
    lines = ["| variant | K | answer scene in Focus: questions | accuracy | not in Focus: questions | accuracy |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for name in results:
        entry = summary["evaluations"][name]
        split = focus_split(read_samples(entry["results"]))
        lines.append(f"| {entry['variant']} | {entry['k']} | {split[True][0]} | {_cell(split[True][1])} | "
                     f"{split[False][0]} | {_cell(split[False][1])} |")  # fmt: skip
    return "\n".join(lines)


def truth_questions(truth: Path) -> dict[str, list[tuple[dict, tuple[float, float]]]]:
    """benchmark -> [(question, answer span in seconds)] of a synthetic corpus's ground_truth.json, in
    the benchmark's row order (salova.data.synth writes both in the same order), i.e. by doc_id."""
    corpus = json.loads(truth.read_text())
    questions: dict[str, list] = {}
    for question in corpus["questions"]:
        video = corpus["videos"][question["video"]]
        scene = video["scenes"][question["answer_scene"]]
        span = (scene["start_frame"] / video["fps"], scene["end_frame"] / video["fps"])
        questions.setdefault(question["benchmark"], []).append((question, span))
    return questions


def asked_attribute(row: dict, questions: dict, truth: Path) -> str:
    """The attribute the row's question asks; the row's answer span must be the ground truth's."""
    benchmark = TASK_TO_BENCHMARK[row["task"]]
    listed = questions.get(benchmark, [])
    question, span = listed[row["doc_id"]] if row["doc_id"] < len(listed) else (None, None)
    if question is None or max(abs(a - b) for a, b in zip(span, row["answer_span"])) > 1e-3:
        raise SystemExit(f"{truth}: {row['task']} doc_id {row['doc_id']} has no question with the answer span "
                         f"{row['answer_span']} (ground truth: {span}); was this evaluation run on another corpus?")
    return question["asked"]


def asked_split_table(summary: dict, results: dict[str, dict], truth: Path) -> str:
    """Accuracy per asked attribute (NIAH apart from the other tasks), with the answer scene in the
    Focus or not, for every evaluation."""
    questions = truth_questions(truth)
    lines = ["| variant | K | tasks | asked | answer scene in Focus: questions | accuracy | not in Focus: questions | accuracy |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name in results:
        entry = summary["evaluations"][name]
        groups: dict[tuple[str, str], list[dict]] = {}
        for row in read_samples(entry["results"]):
            if row.get("answer_span") is not None and row["task"] in TASKS:
                tasks = "NIAH" if row["task"] == "niah_salova" else "the others"
                groups.setdefault((tasks, asked_attribute(row, questions, truth)), []).append(row)
        for (tasks, asked), rows in sorted(groups.items(), reverse=True):
            split = focus_split(rows)
            lines.append(f"| {entry['variant']} | {entry['k']} | {tasks} | {asked} | {split[True][0]} | "
                         f"{_cell(split[True][1])} | {split[False][0]} | {_cell(split[False][1])} |")  # fmt: skip
    return "\n".join(lines)


def named_option_table(summary: dict, results: dict[str, dict]) -> str:
    lines = ["| variant | K | questions naming an option | accuracy | wrong with a named option |", "|---|---|---|---|---|"]
    for name in results:
        entry = summary["evaluations"][name]
        split = named_option_split(read_samples(entry["results"]))
        if split:
            lines.append(f"| {entry['variant']} | {entry['k']} | {split['n']} of {split['recorded']} | "
                         f"{_cell(split['accuracy'])} | {split['wrong_with_named_option']} |")  # fmt: skip
    return "\n".join(lines)


def per_task_router_table(run: dict) -> str:
    lines = ["| task | questions | accuracy | router recall@1 | router recall@K |", "|---|---|---|---|---|"]
    for task, label in TASKS.items():
        if task in run["tasks"]:
            scores = run["tasks"][task]
            router = scores.get("router") or {}
            lines.append(f"| {label} | {scores['n']} | {_cell(scores['accuracy'])} | "
                         f"{_cell(router.get('recall@1'))} | {_cell(router.get('recall@K'))} |")  # fmt: skip
    return "\n".join(lines)


def length_table(run: dict) -> str:
    lines = ["| task | length bucket | questions | accuracy |", "|---|---|---|---|"]
    for task, category in LENGTH_CATEGORY.items():
        buckets = run["tasks"].get(task, {}).get("categories", {}).get(category, {})
        for bucket, scores in buckets.items():
            lines.append(f"| {TASKS[task]} | {bucket} | {scores['n']} | {_cell(scores['accuracy'])} |")
    return "\n".join(lines)


def niah_table(run: dict) -> str:
    """Accuracy per haystack length and depth, then per depth over every length (evals.run's
    `needle_depth` category: every question of the depth, the row the acceptance criterion reads)."""
    niah = run["tasks"].get("niah_salova", {})
    grid = niah.get("niah_grid")
    if not grid:
        return "(no NIAH results)"
    depths = sorted({d for row in grid.values() for d in row}, key=float)
    lines = ["| haystack (min) | " + " | ".join(f"depth {d}%" for d in depths) + " |",
             "|---" * (len(depths) + 1) + "|"]  # fmt: skip
    for minutes in sorted(grid, key=float):
        lines.append(f"| {minutes} | " + " | ".join(_cell(grid[minutes].get(d)) for d in depths) + " |")
    by_depth = niah.get("categories", {}).get("needle_depth", {})
    lines.append("| every length | " + " | ".join(_cell(by_depth.get(d, {}).get("accuracy")) for d in depths) + " |")
    return "\n".join(lines)


def times_table(summary: dict) -> str:
    lines = ["| step | processes x threads | wall time (s) | exit |", "|---|---|---|---|"]
    for name, step in summary["steps"].items():
        layout = f"{step['processes']} x {step['threads']}" if "processes" in step else "–"  # older summaries lack it
        lines.append(f"| {name} | {layout} | {step['seconds']} | {step['returncode']} |")
    return "\n".join(lines)


def variants_frame(summary: dict, results: dict[str, dict], limit: int | None) -> pd.DataFrame:
    """One row per evaluation: variant, K, pooled accuracy (%) on all questions and on videos of >= 30 scenes."""
    rows = []
    for name in results:
        entry = summary["evaluations"][name]
        samples = read_samples(entry["results"])
        rows.append({"evaluation": name, "variant": entry["variant"], "k": entry["k"],
                     "accuracy": pooled(subset_scores(samples, limit), "accuracy"),
                     "accuracy_30_scenes": pooled(subset_scores(samples, limit, min_scenes=30), "accuracy")})  # fmt: skip
    return pd.DataFrame(rows)


def variants_figure(frame: pd.DataFrame, path: Path) -> Path:
    figure = Figure(figsize=(max(5.0, 0.9 * len(frame)), 3.6))
    axes = figure.add_subplot()
    labels = [f"{v}\nK={k}" for v, k in zip(frame.variant, frame.k)]
    positions = range(len(frame))
    axes.bar([p - 0.2 for p in positions], frame.accuracy, width=0.4, label="all questions")
    axes.bar([p + 0.2 for p in positions], frame.accuracy_30_scenes, width=0.4, label=">= 30 scenes")
    axes.set_xticks(list(positions), labels, fontsize=8, rotation=30, ha="right")
    axes.set_ylabel("accuracy (%)")
    axes.set_ylim(0, 100)
    axes.legend(fontsize=8)
    figure.tight_layout()
    FigureCanvasAgg(figure).print_png(str(path))
    return path


def copy_figures(results_path: Path, folder: Path) -> list[Path]:
    copied = []
    for name in ("niah_salova_heatmap.png", "accuracy_by_length.png"):
        source = results_path.parent / "plots" / name
        if source.exists():
            copied.append(Path(shutil.copy(source, folder / name)))
    return copied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.results_report", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the reproduction's --out folder")
    parser.add_argument("--figures", type=Path, help="copy the headline evaluation's plots into this folder")
    parser.add_argument("--headline", help="the evaluation whose per-task, length and NIAH tables (and plots) are "
                                           "shown (default: the full model at reproduce.MAIN_K)")
    parser.add_argument("--truth", type=Path, help="the synthetic corpus's ground_truth.json, for the split by "
                                                   "asked attribute (default: OUT/data/ground_truth.json if present)")
    args = parser.parse_args(argv)
    summary, results = load(args.out)
    if args.truth and not args.truth.is_file():
        parser.error(f"--truth {args.truth}: no such file")
    truth = args.truth or (args.out / "data" / "ground_truth.json")
    limits = [e.get("limit") for e in summary.get("evaluations", {}).values() if e.get("limit")]
    common = min(limits) if limits else None
    which = f"the first {common} questions of each task" if common else "every question"
    print(f"## Variants ({which})\n\n" + variants_table(summary, results, common) + "\n")
    print(f"## Variants, questions on videos of >= 30 detected scenes ({which})\n\n"
          + variants_table(summary, results, common, min_scenes=30) + "\n")
    print("## Accuracy by whether the answer scene is in the Focus (every question)\n\n"
          + focus_split_table(summary, results) + "\n")
    print("## Questions that name one of their own options (answers by likelihood)\n\n"
          + named_option_table(summary, results) + "\n")
    if truth.exists():
        print(f"## Accuracy by the attribute asked and whether the answer scene is in the Focus ({truth})\n\n"
              + asked_split_table(summary, results, truth) + "\n")
    main_run = headline(summary, results, args.headline)
    if main_run:
        run, entry = results[main_run], summary["evaluations"][main_run]
        title = f"{entry['variant']}, K = {entry['k']}"
        print(f"## {title}, every question, per task\n\n" + per_task_router_table(run) + "\n")
        print(f"## Accuracy by video length ({title})\n\n" + length_table(run) + "\n")
        print(f"## NIAH accuracy (%), {title}\n\n" + niah_table(run) + "\n")
    print("## Wall time of each step\n\n" + times_table(summary) + "\n")
    print(f"machine: {summary.get('machine')}")
    if args.figures:
        args.figures.mkdir(parents=True, exist_ok=True)
        copied = copy_figures(Path(summary["evaluations"][main_run]["results"]), args.figures) if main_run else []
        frame = variants_frame(summary, results, common)
        frame.to_csv(args.figures / "variants.csv", index=False)
        for path in [*copied, variants_figure(frame, args.figures / "variants.png")]:
            print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
