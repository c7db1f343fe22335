"""Does the LLM answer the colour the question asks for, or the colour it sees most of?

    python -m training.probes.role_probe CKPT --data-root DATA [--limit N] [--cache DIR] [--out FILE]

For every held-out colour question of a perceivable-only corpus (Video-MME-, MLVU- and
LongVideoBench-shaped sets; NIAH left out), the Focus is the answer scene alone (K = 1, so finding
the scene is not measured) and the question is asked in three wordings of its held-out template:

  as asked   naming the scene by its other colour, as the benchmark does ("What is the background
             color of the scene with a purple object?");
  wrong key  naming it by a colour the scene does not show ("... with a green object?");
  no key     without naming it ("What is the background color of this scene?").

The answer is the most likely of the 12 colours as the whole reply ("Purple."), as in
training.probes.open_answer. It is counted as the asked colour, the scene's other colour, the
colour the question names, or another. A model that reads the role answers the asked colour in all
three wordings; one that names the scene's most visible colour whatever is asked answers the other
colour for one attribute; one that copies the question answers the named colour.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from salova.data import synth
from salova.index import VideoIndex
from training.probes.open_answer import (
    answer_span,
    colour_scores,
    detected_scene,
    model_and_index,
    open_question,
    probe_arguments,
)

WORDINGS = ("as asked", "wrong key", "no key")
OUTCOMES = ("asked colour", "other colour", "named colour", "another")


def wordings(question: dict, scene: dict, rng: np.random.Generator) -> dict[str, tuple[str, str | None]]:
    """wording -> (question text, the colour it names or None) for a question asking one colour
    of `scene` and naming the scene by the other."""
    (key_attribute,) = question["key"]
    shown = {scene[a] for a in synth.PERCEIVABLE}
    wrong = str(rng.choice([c for c in synth.COLORS if c not in shown]))
    return {"as asked": (open_question(question), question["key"][key_attribute]),
            "wrong key": (open_question(question, synth.scene_phrase({key_attribute: wrong})), wrong),
            "no key": (open_question(question, "this scene"), None)}


def outcome(predicted: str, scene: dict, asked: str, named: str | None) -> str:
    if predicted == scene[asked]:
        return "asked colour"
    if predicted == scene[synth.other_colour(asked)]:
        return "other colour"
    return "named colour" if predicted == named else "another"


def colour_questions(truth: dict) -> list[dict]:
    """Held-out questions asking one colour and naming the scene by the other (perceivable-only)."""
    return [q for q in truth["questions"] if q["benchmark"] != "niah" and q["asked"] in synth.PERCEIVABLE
            and set(q["key"]) == {synth.other_colour(q["asked"])}]


def evaluate(model, processor, index: VideoIndex, data_root: Path, truth: dict, limit: int | None,
             seed: int = 0) -> pd.DataFrame:  # fmt: skip
    """Every colour question of `truth` (DATA/ground_truth.json) in the three wordings, one row each."""
    rng = np.random.default_rng(seed)
    load = functools.cache(index.features)  # each video read once
    rows = []
    for question in tqdm(colour_questions(truth)[:limit], desc="questions"):
        indexed = load(data_root / question["video"])
        focus = torch.tensor([detected_scene(indexed, answer_span(truth["videos"], question))])
        scene = truth["videos"][question["video"]]["scenes"][question["answer_scene"]]
        for wording, (text, named) in wordings(question, scene, rng).items():
            predicted = synth.COLORS[int(colour_scores(model, processor, indexed.features, focus, text).argmax())]
            rows.append({"question_id": question["question_id"], "benchmark": question["benchmark"],
                         "asked": question["asked"], "wording": wording, "question": text, "predicted": predicted,
                         "outcome": outcome(predicted, scene, question["asked"], named)})  # fmt: skip
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """% of each outcome per (attribute asked, wording), with the question count."""
    shares = pd.crosstab([table.asked, table.wording], table.outcome, normalize="index") * 100
    shares = shares.reindex(columns=list(OUTCOMES), fill_value=0.0)
    shares["questions"] = table.groupby(["asked", "wording"]).size()
    order = [(asked, wording) for asked in synth.PERCEIVABLE for wording in WORDINGS if (asked, wording) in shares.index]
    return shares.loc[order].reset_index()


def main(argv: list[str] | None = None) -> None:
    parser = probe_arguments("role_probe", __doc__, "a perceivable-only synthetic corpus (`small`)")
    args = parser.parse_args(argv)
    truth = json.loads((args.data_root / "ground_truth.json").read_text())
    if not colour_questions(truth):
        parser.error(f"{args.data_root}: no held-out question asks one colour of a scene named by the other "
                     "(generate a perceivable-only corpus, e.g. --preset small)")
    model, processor, index = model_and_index(args)
    table = evaluate(model, processor, index, args.data_root, truth, args.limit)
    result = summary(table)
    print(result.to_markdown(index=False, floatfmt=".1f"))
    if args.out:
        args.out.write_text(json.dumps({"checkpoint": str(args.checkpoint), "summary": result.to_dict("records"),
                                        "answers": table.to_dict("records")}, indent=1))


if __name__ == "__main__":
    main()
