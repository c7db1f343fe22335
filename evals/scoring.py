"""Scores recomputed from the per-sample records, overall and per category.

lmms-eval returns one number per task and only logs the per-category ones. Here
every number is recomputed from the samples, with the same definitions as
lmms-eval's aggregation functions:

- Video-MME: micro accuracy (%) of `pred_answer == answer`, overall and per
  duration, domain, sub-category and task type.
- MLVU dev: per task type accuracy (%), headline M-Avg = mean over the seven
  fixed multiple-choice types, a type absent from the data counting 0 (so a
  subset is deflated; `m_avg_present` averages only the types present).
- LongVideoBench: micro accuracy of `parsed_pred == answer`, overall and per
  duration group and question category. lmms-eval reports it as a fraction;
  here every accuracy is a percentage.
- NIAH: accuracy per haystack length (minutes) and needle depth (%).

A failed sample (video missing or unreadable) always counts wrong: lmms-eval's
LongVideoBench parser would otherwise give an empty answer a random letter.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

MLVU_DEV_TYPES = ("anomaly_reco", "count", "ego", "needle", "order", "plotQA", "topic_reasoning")
# MLVU video lengths (seconds) are binned for the accuracy-by-length view.
MLVU_LENGTH_BINS = (
    (0, 180, "<3 min"),
    (180, 600, "3-10 min"),
    (600, 1800, "10-30 min"),
    (1800, float("inf"), ">30 min"),
)


def mlvu_length_bin(seconds) -> str:
    for low, high, label in MLVU_LENGTH_BINS:
        if low <= float(seconds) < high:
            return label
    return "unknown"


@dataclass(frozen=True)
class Family:
    metric: str  # key of lmms-eval's per-sample dict (the output of process_results)
    pred: str  # field of that dict holding the parsed prediction
    gold: str  # field holding the correct answer
    categories: dict[str, str]  # category label -> field of the record or the per-sample dict
    length: str  # the category that orders samples by video length
    headline: str = "accuracy"  # "accuracy" (micro) or "m_avg"
    length_of: dict = field(default_factory=dict)  # category label -> function of the raw field


FAMILIES: dict[str, Family] = {
    "videomme": Family(
        metric="videomme_perception_score",
        pred="pred_answer",
        gold="answer",
        categories={
            "duration": "duration",
            "domain": "category",
            "sub_category": "sub_category",
            "task_type": "task_category",
        },
        length="duration",
    ),
    "mlvu": Family(
        metric="mlvu_percetion_score",
        pred="pred_answer",
        gold="answer",
        categories={"task_type": "task_type", "length": "duration"},
        length="length",
        headline="m_avg",
        length_of={"length": mlvu_length_bin},
    ),
    "longvideobench": Family(
        metric="lvb_acc",
        pred="parsed_pred",
        gold="answer",
        categories={"duration_group": "duration_group", "question_category": "question_category"},
        length="duration_group",
    ),
    "niah": Family(  # Video-MME's schema and scoring, on a haystack length x needle depth grid
        metric="videomme_perception_score",
        pred="pred_answer",
        gold="answer",
        categories={"haystack_minutes": "haystack_minutes", "needle_depth": "needle_depth"},
        length="haystack_minutes",
    ),
}


def sample_row(family: Family, logged: dict, failure: str | None) -> dict:
    """pred / target / correct / categories of one lmms-eval logged sample."""
    scored = logged[family.metric]
    fields = {**logged.get("doc", {}), **scored}
    categories = {}
    for label, name in family.categories.items():
        value = fields.get(name)
        categories[label] = family.length_of[label](value) if label in family.length_of else value
    pred, gold = scored[family.pred], scored[family.gold]
    return {
        "pred": pred,
        "target": gold,
        "correct": failure is None and pred == gold,
        "categories": categories,
    }


def _accuracy(rows: list[dict]) -> dict:
    n = len(rows)
    correct = sum(bool(r["correct"]) for r in rows)
    return {"n": n, "correct": correct, "accuracy": 100.0 * correct / n if n else 0.0}


def score_task(family: Family, rows: list[dict]) -> dict:
    """Overall and per-category scores of one task's rows (rows as built by `sample_row`)."""
    overall = _accuracy(rows)
    categories = {}
    for label in family.categories:
        groups = defaultdict(list)
        for row in rows:
            groups[str(row["categories"][label])].append(row)
        categories[label] = {value: _accuracy(groups[value]) for value in sorted(groups, key=_natural)}
    result = {
        "n": overall["n"],
        "correct": overall["correct"],
        "failed": sum(1 for r in rows if r.get("failure")),
        "accuracy": overall["accuracy"],
        "categories": categories,
    }
    if family.headline == "m_avg":
        per_type = categories["task_type"]
        present = [per_type[t]["accuracy"] for t in MLVU_DEV_TYPES if t in per_type]
        result["m_avg"] = sum(
            per_type[t]["accuracy"] if t in per_type else 0.0 for t in MLVU_DEV_TYPES
        ) / len(MLVU_DEV_TYPES)
        result["m_avg_present"] = sum(present) / len(present) if present else 0.0
        result["score"], result["score_name"] = result["m_avg"], "M-Avg (%)"
    else:
        result["score"], result["score_name"] = result["accuracy"], "accuracy (%)"
    return result


# Category values with a meaningful order that is not alphabetical.
_KNOWN_ORDER = ("short", "medium", "long", *(label for _, _, label in MLVU_LENGTH_BINS))


def _natural(value: str):
    """Known labels in their order, then numbers in numeric order, then words alphabetically."""
    if value in _KNOWN_ORDER:
        return (0, float(_KNOWN_ORDER.index(value)), "")
    try:
        return (1, float(value), "")
    except ValueError:
        return (2, 0.0, value)
