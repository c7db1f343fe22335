"""More stage-2 questions on a synthetic corpus's training videos, all with open answers.

    python -m salova.data.more_questions DATA --repeats 10 --out DATA/train/sft_open.json [--seed 1]
        [--phrasing composed|fixed] [--questions MIN MAX] [--router-questions N]

Writes `--repeats` SFT records per training video of DATA (a `salova.data.synth` corpus): each
asks 5 questions (or MIN..MAX, drawn per record) about as many different scenes, answered in words ("Gray.")
rather than by an option letter. A question names its scene by one colour that no other scene of
the video shows in that role (the videos are already rendered, so only such keys are used) and
asks the other colour, as the corpus's own SFT questions do. The records have the SFT schema
(scenes, one V2T row per question, conversations), so `training.train --stage sft` reads them.
With `--router-questions N` each record also carries N `router_questions` in the same wordings,
queries that only the router is trained on (salova.data.records.parse_sft): they are nearly free
next to the LLM's work on the conversation, and give the router many more examples per step.

Why: stage 2 of the `small` corpus has 5 questions per video (1,200 in all), too few for a
randomly initialised router and LLM to learn to route questions; see docs/results.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from salova.data import phrasings, synth
from salova.errors import ConfigError, RecordError

QUESTIONS_PER_RECORD = 5
PHRASINGS = ("composed", "fixed")


def phrasing_source(name: str):
    """rng -> {attribute: one template} for the chosen phrasing set."""
    if name == "fixed":
        return lambda rng: synth.TRAIN_PHRASINGS
    if name != "composed":
        raise ConfigError(f"phrasing {name!r} is not one of {PHRASINGS}")
    held_out = synth.HELD_OUT_TEMPLATES.values()
    pool = {asked: phrasings.composed(asked, held_out) for asked in synth.TRAIN_PHRASINGS}

    def one_each(rng: np.random.Generator) -> dict[str, str]:
        templates = {}
        for asked, wordings in pool.items():
            template, thing = phrasings.pick(rng, wordings)
            templates[asked] = template.replace("{thing}", thing)
        return templates

    return one_each


def unique_keys(looks: list[dict]) -> dict[int, list[str]]:
    """scene -> the colour attributes whose value no other scene of the video shows in that role."""
    keys: dict[int, list[str]] = {}
    for scene, look in enumerate(looks):
        for attribute in synth.PERCEIVABLE:
            if sum(other[attribute] == look[attribute] for other in looks) == 1:
                keys.setdefault(scene, []).append(attribute)
    return keys


def keyed_question(rng: np.random.Generator, looks: list[dict], keys: dict[int, list[str]], scene: int, templates,
                   positions: synth.AnswerPositions) -> tuple[synth.SceneQuestion, list[float]]:
    """A question naming `scene` by one of its unique keys and asking its other colour, and the
    question's V2T row (one number per scene)."""
    key = keys[scene][int(rng.integers(len(keys[scene])))]
    question = synth.make_question(rng, looks, scene, synth.other_colour(key), templates(rng), 4, positions,
                                   {key: looks[scene][key]})
    return question, synth.question_similarities(rng, looks, question.key, scene).tolist()


def open_record(rng: np.random.Generator, record: dict, looks: list[dict], keys: dict[int, list[str]],
                record_id: str, templates, questions: tuple[int, int] = (QUESTIONS_PER_RECORD,) * 2) -> dict:
    """One SFT record of open questions about up to n different scenes, n drawn from the
    inclusive range `questions` (no draw when it holds one number, so the default stays as it was)."""
    low, high = questions
    wanted = low if low == high else int(rng.integers(low, high + 1))
    scenes = rng.choice(sorted(keys), size=min(wanted, len(keys)), replace=False)
    positions = synth.AnswerPositions(rng)  # options are made and dropped: the answers are words
    conversations, rows = [], []
    for turn, scene in enumerate(int(s) for s in scenes):
        question, row = keyed_question(rng, looks, keys, scene, templates, positions)
        human = ("<image>\n" if turn == 0 else "") + question.text
        conversations += synth.turn_pair(human, synth.open_answer(question.answer))
        rows.append(row)
    return {"id": record_id, "video": record["video"], "scenes": record["scenes"], "lb_sim": rows,
            "conversations": conversations}


def router_questions(rng: np.random.Generator, looks: list[dict], keys: dict[int, list[str]], templates,
                     count: int) -> list[dict]:
    """`count` router-only questions (records' `router_questions`): each about a scene drawn at
    random (repeats allowed), keyed and worded like the conversation's questions."""
    positions = synth.AnswerPositions(rng)
    entries = []
    for scene in (int(s) for s in rng.choice(sorted(keys), size=count)):
        question, row = keyed_question(rng, looks, keys, scene, templates, positions)
        entries.append({"question": question.text, "lb_sim": row})
    return entries


def more_questions(data: Path, repeats: int, seed: int, phrasing: str = "composed",
                   questions: tuple[int, int] = (QUESTIONS_PER_RECORD,) * 2, router_only: int = 0) -> list[dict]:
    if not 1 <= questions[0] <= questions[1]:
        raise ConfigError(f"questions per record: {questions[0]}-{questions[1]} is not a range of at least 1")
    if router_only < 0:
        raise ConfigError(f"router-only questions per record: {router_only} is negative")
    templates = phrasing_source(phrasing)
    truth = json.loads((data / "ground_truth.json").read_text())
    sft = json.loads((data / "train" / "sft.json").read_text())
    rng = np.random.default_rng(seed)
    router_rng = np.random.default_rng([seed, 1])  # its own stream: the conversations stay as without it
    records = []
    for index, record in enumerate(sft):
        video = truth["videos"].get(f"train/{record.get('video')}")
        if video is None:
            raise RecordError(f"{data / 'train' / 'sft.json'} record {index} ({record.get('id')}): field 'video' "
                              f"{record.get('video')!r} is not a training video of {data / 'ground_truth.json'}")
        scenes = video["scenes"]
        looks = [{a: scene[a] for a in synth.ATTRIBUTES} for scene in scenes]
        keys = unique_keys(looks)
        if not keys:
            continue
        for r in range(repeats):
            records.append(open_record(rng, record, looks, keys, f"{record['id']}_open{r}", templates, questions))
            if router_only:
                records[-1]["router_questions"] = router_questions(router_rng, looks, keys, templates, router_only)
    return records


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m salova.data.more_questions", description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="a salova.data.synth output folder")
    parser.add_argument("--repeats", type=int, default=10, help="records per training video")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--phrasing", choices=PHRASINGS, default="composed", help="question wordings (see above)")
    parser.add_argument("--questions", type=int, nargs=2, metavar=("MIN", "MAX"),
                        default=(QUESTIONS_PER_RECORD, QUESTIONS_PER_RECORD),
                        help="questions (= Focus scenes in training) per record, drawn per record from MIN..MAX")
    parser.add_argument("--router-questions", type=int, default=0, metavar="N",
                        help="router-only questions per record (the LLM never reads them); default none")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    records = more_questions(args.data, args.repeats, args.seed, args.phrasing, tuple(args.questions),
                             args.router_questions)
    args.out.write_text(json.dumps(records))
    print(f"{len(records)} records, {sum(len(r['lb_sim']) for r in records)} questions -> {args.out}")


if __name__ == "__main__":
    main()
