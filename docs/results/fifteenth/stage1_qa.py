"""The fifteenth session's stage-1 records with questions (docs/results.md, "Stage 1 with a
question on every clip"): every stage-1 record of a `small` corpus, plus the same clip or image
again with one open question in stage 2's composed phrasings, keyed by one colour and asking the
other, as a separate record:

    python docs/results/fifteenth/stage1_qa.py DATA OUT.json

The session ran the same code from runs/s15/stage1_qa.py (git-ignored); this file writes the same
bytes from the session's two corpora (checked in the seventeenth session).
"""

import json
import sys
from pathlib import Path

import numpy as np

from salova.data import more_questions, synth


def look_of(record: dict, truth: dict) -> dict:
    """The clip's one scene from ground_truth.json; for a still, read from its caption
    ("A <shape colour> <shape> on a <background> background.")."""
    if "video" in record:
        return truth["videos"][f"train/{record['video']}"]["scenes"][0]
    words = record["conversations"][1]["value"].rstrip(".").split()
    return {"shape_color": words[1], "shape": words[2], "background": words[-2], "motion": "static", "label": ""}


def main(data: Path, out: Path) -> None:
    truth = json.loads((data / "ground_truth.json").read_text())
    base = json.loads((data / "train" / "stage1.json").read_text())
    templates = more_questions.phrasing_source("composed")
    rng = np.random.default_rng(11)
    positions = synth.AnswerPositions(rng)
    extra = []
    for record in base:
        media = "video" if "video" in record else "image"
        look = look_of(record, truth)
        looks = [{a: look[a] for a in synth.ATTRIBUTES}]
        question, _ = more_questions.keyed_question(rng, looks, more_questions.unique_keys(looks), 0, templates, positions)
        extra.append({"id": record["id"] + "_qa", media: record[media], "conversations": [
            {"from": "human", "value": "<image>\n" + question.text},
            {"from": "gpt", "value": synth.open_answer(question.answer)}]})  # fmt: skip
    out.write_text(json.dumps(base + extra))
    print(len(base), "+", len(extra), "->", out)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
