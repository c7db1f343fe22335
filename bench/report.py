"""Compare benchmark runs: `python -m bench.report [FILES...] [--all] [--out DIR]`.

FILES are ratios-*.json written by the suite (or pytest-benchmark JSON files,
whose extra_info holds the same metrics); by default the newest ratios file
in bench/results. Prints a markdown table, one column per run (machine,
commit, date), of the ratios, fractions and exponents (--all: every metric),
and writes it as report.md with a bar chart report.png next to it.
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

RESULTS = Path(__file__).parent / "results"
HEADLINE_WORDS = ("ratio", "fraction", "exponent")


def load_run(path: Path) -> tuple[str, dict]:
    """(column label, {case: {"metrics": ..., "goals": ...}}) from either JSON format."""
    data = json.loads(path.read_text())
    if "cases" in data:
        machine, date, cases = data["machine"], data["date"], data["cases"]
        device = machine.get("gpu") or machine.get("cpu")
        commit = machine.get("commit")
    else:  # pytest-benchmark
        machine, date = data.get("machine_info", {}), data.get("datetime", "")
        device = machine.get("cpu", {}).get("brand_raw", machine.get("machine", "?"))
        commit = (data.get("commit_info") or {}).get("id", "")[:7] or None
        cases = {bench["name"]: {"metrics": bench.get("extra_info", {}), "goals": {}} for bench in data["benchmarks"]}
    return f"{device} @ {commit or 'no-commit'} {date[:16]}", cases


def metrics_table(runs: list[tuple[str, dict]], everything: bool) -> pd.DataFrame:
    rows = {}
    for label, cases in runs:
        for case, entry in cases.items():
            for metric, value in entry["metrics"].items():
                if not isinstance(value, (int, float)) or value is None:
                    continue
                if not everything and not any(word in metric for word in HEADLINE_WORDS):
                    continue
                row = rows.setdefault((case, metric), {"case": case, "metric": metric,
                                                       "goal": entry["goals"].get(metric, "")})
                row[label] = value
    return pd.DataFrame(list(rows.values()))


def plot(table: pd.DataFrame, labels: list[str], path: Path):
    ratios = table[table.metric.str.contains("ratio|fraction|exponent")].reset_index(drop=True)
    if ratios.empty:
        return
    names = [f"{case.split('[')[0].removeprefix('test_')} {metric}" for case, metric in zip(ratios.case, ratios.metric)]
    figure, axis = plt.subplots(figsize=(10, 0.35 * len(names) + 1.5))
    height = 0.8 / len(labels)
    for index, label in enumerate(labels):
        values = pd.to_numeric(ratios.get(label), errors="coerce")
        axis.barh(np.arange(len(names)) + index * height, values, height=height, label=label)
    axis.set_yticks(np.arange(len(names)) + 0.4 - height / 2, names, fontsize=7)
    axis.set_xscale("log")
    axis.axvline(1.0, color="grey", linewidth=0.8)
    axis.set_xlabel("value (log scale)")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--all", action="store_true", help="every metric, not just ratios")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    files = args.files or sorted(RESULTS.glob("ratios-*.json"))[-1:]
    if not files:
        parser.error(f"no ratios-*.json in {RESULTS}; run `pytest bench/ --benchmark-only` first")
    runs = [load_run(path) for path in files]
    labels = list(dict.fromkeys(label for label, _ in runs))
    table = metrics_table(runs, args.all)
    markdown = table.to_markdown(index=False, floatfmt=".4g", missingval="")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.md").write_text(markdown + "\n")
    plot(table, labels, args.out / "report.png")
    print(markdown)


if __name__ == "__main__":
    main()
