"""Task helpers for our local-data task YAMLs.

Prompts, answer extraction and aggregation are lmms-eval's own functions (the
YAMLs name them with `!function lmms_eval.tasks.<x>.utils.<fn>`), so a score here
means what it means on the lmms-eval leaderboard. Only what must differ lives
here: video paths resolve under $SALOVA_DATA and never `sys.exit` on a missing
file (the model records that sample as failed), Video-MME duration filters, the
video folder of the synthetic needle-in-a-haystack task, and a fixed random
letter per question where LongVideoBench's parser guesses.
"""

from __future__ import annotations

import os
import random

from evals.benchmarks import video_path


def _first_existing(candidates: list[str]) -> str:
    for path in candidates:
        if os.path.exists(path):
            return path
    return candidates[0]


def videomme_doc_to_visual(doc) -> list[str]:
    stem = video_path("videomme", doc["videoID"])
    return [_first_existing([stem + ".mp4", stem + ".MP4", stem + ".mkv"])]


def niah_doc_to_visual(doc) -> list[str]:
    return [video_path("niah", doc["videoID"] + ".mp4")]


def mlvu_doc_to_visual(doc) -> list[str]:
    return [video_path("mlvu", doc["video_name"])]


def longvideobench_doc_to_visual(doc) -> list[str]:
    return [video_path("longvideobench", doc["video_path"])]


def videomme_short(dataset):
    return dataset.filter(lambda doc: doc["duration"] == "short")


def videomme_medium(dataset):
    return dataset.filter(lambda doc: doc["duration"] == "medium")


def videomme_long(dataset):
    return dataset.filter(lambda doc: doc["duration"] == "long")


def longvideobench_process_results(doc, results):
    """lmms-eval's LongVideoBench scoring. Its parser answers an unparsable reply with a letter
    from the global `random`; we seed that with the question id (and restore it afterwards), so
    the letter is the same whatever the order of the samples or the number of processes."""
    from lmms_eval.tasks.longvideobench.utils import (
        longvideobench_process_results as lvb_process_results,  # needs decord
    )

    state = random.getstate()
    random.seed(doc["id"])
    try:
        return lvb_process_results(doc, results)
    finally:
        random.setstate(state)
