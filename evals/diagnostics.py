"""Retrieval diagnostics: did the router pick the scene that holds the answer?

Synthetic question sets know the answer scene (`answer_start_s`, `answer_end_s`
columns). A picked scene counts as the answer scene when at least half of it
lies inside the answer span, which tolerates scene boundaries detected a frame
or two away from the true cut.

- recall@1: the router's top-scored scene is the answer scene;
- recall@K: one of the K Focus scenes is.

Answers by likelihood also record the options the question itself names (evals.options.named_options),
so a report can count the wrong answers that choose one of them.

Generated answers are checked for the reply format the prompts ask for: a reply that does not start
with an option letter ("Blue." rather than "B.") is scored by the task's parser anyway, which reads
letters out of words (lmms-eval's takes "Blue." for B), so a score near chance can hide a model
that never answered the question asked (`letterless_replies`, `letterless_warning`).
"""

from __future__ import annotations

import re

# "B", "B.", "(B) red", "B: red", "B) red", "B red": the reply opens with the letter alone.
LETTER_REPLY = re.compile(r"^\s*\(?[A-H](?:[.:)\]]|\s|$)")
LETTERLESS_WARN_SHARE = 0.5  # warn when more than this share of a task's replies has no letter


def covers(scene: tuple[float, float], span: tuple[float, float]) -> bool:
    start, end = scene
    overlap = min(end, span[1]) - max(start, span[0])
    return end > start and overlap >= 0.5 * (end - start)


def retrieval_hits(row: dict) -> tuple[bool, bool] | None:
    """(hit@1, hit@K) of one sample, or None when the sample cannot be judged."""
    span = row.get("answer_span")
    if span is None or row.get("failure") or not row.get("focus"):
        return None
    top_scene = row["focus_times"][row["focus"].index(row["top1"])]
    return covers(top_scene, span), any(covers(scene, span) for scene in row["focus_times"])


def router_recall(rows: list[dict]) -> dict | None:
    """recall@1 and recall@K (%) over the rows that know their answer scene; None if none do."""
    hits = [h for h in map(retrieval_hits, rows) if h is not None]
    if not hits:
        return None
    return {
        "n": len(hits),
        "recall@1": 100.0 * sum(h1 for h1, _ in hits) / len(hits),
        "recall@K": 100.0 * sum(hk for _, hk in hits) / len(hits),
    }


def named_option_split(rows: list[dict]) -> dict | None:
    """Over the rows that recorded `named_options` and whose question names at least one option:
    their number, accuracy (%) and how many were answered wrong with a named option. None if no row
    recorded the field (answers generated, or logs written before it existed)."""
    recorded = [r for r in rows if "named_options" in r and not r.get("failure")]
    if not recorded:
        return None
    naming = [r for r in recorded if r["named_options"]]
    copied = sum(not r.get("correct") and r.get("pred") in r["named_options"] for r in naming)
    accuracy = 100.0 * sum(bool(r.get("correct")) for r in naming) / len(naming) if naming else None
    return {"recorded": len(recorded), "n": len(naming), "accuracy": accuracy, "wrong_with_named_option": copied}


def letterless_replies(rows: list[dict]) -> dict | None:
    """Over the rows with a reply (no failure): how many do not open with an option letter, and up
    to three such replies as examples. None when no row has a reply."""
    replies = [str(r.get("answer") or "") for r in rows if not r.get("failure")]
    if not replies:
        return None
    letterless = [reply for reply in replies if not LETTER_REPLY.match(reply)]
    return {"n": len(replies), "letterless": len(letterless), "examples": list(dict.fromkeys(letterless))[:3]}


def letterless_warning(task: str, counts: dict | None) -> str | None:
    """One line for the end of a run when most of `task`'s generated replies name no option letter."""
    if not counts or counts["letterless"] <= LETTERLESS_WARN_SHARE * counts["n"]:
        return None
    examples = ", ".join(repr(e) for e in counts["examples"])
    return (f"evals.run: warning: {counts['letterless']} of {counts['n']} {task} replies do not start with an "
            f"option letter (e.g. {examples}); the task's parser still reads a letter from some of them, so its "
            f"score says little. Answer by option likelihood (--answer-by likelihood) to score what the model knows.")
