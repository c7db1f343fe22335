"""The sixteenth session's fine-tuning records (docs/results.md, "Sixteenth session"), derived from
one-question stage-2 records of a `small` corpus:

    python -m salova.data.more_questions DATA --repeats 10 --seed 3 --questions 1 1 --out ONE.json
    python docs/results/sixteenth/reading_records.py DATA ONE.json {shape-only,key-free,pairs} OUT.json

shape-only  the records asking a shape's colour;
key-free    every record, its question replaced by "What color is the background?" or
            "What color is the shape?" (or object, figure): nothing names the scene;
pairs       every record as two key-free turns about its scene, background and shape colour in
            random order (the same Focus, so only the question's role tells the answers apart).
"""

import json
import random
import sys


def asked_scene(record: dict, scenes: list[dict]) -> tuple[str, dict] | None:
    """(attribute asked, scene) of a one-question record: the one scene whose asked colour is the
    answer and whose other colour the question names."""
    question, answer = record["conversations"][0]["value"], record["conversations"][1]["value"].rstrip(".").lower()
    for asked, other, word in (("shape_color", "background", "background"), ("background", "shape_color", "object")):
        hits = [s for s in scenes if s[asked] == answer and f"{s[other]} {word}" in question]
        if len(hits) == 1:
            return asked, hits[0]
    return None


def turn(text: str, answer: str, first: bool) -> list[dict]:
    return [{"from": "human", "value": ("<image>\n" if first else "") + text}, {"from": "gpt", "value": answer.capitalize() + "."}]


def main(data: str, records: str, mode: str, out: str) -> None:
    videos = json.load(open(f"{data}/ground_truth.json"))["videos"]
    rng = random.Random({"key-free": 0}.get(mode, 1))
    written = []
    for record in json.load(open(records)):
        found = asked_scene(record, videos["train/" + record["video"]]["scenes"])
        if found is None:
            continue
        asked, scene = found
        thing = rng.choice(["shape", "object", "figure"])
        questions = {"background": "What color is the background?", "shape_color": f"What color is the {thing}?"}
        if mode == "shape-only" and asked == "shape_color":
            written.append(record)
        elif mode == "key-free":
            written.append(dict(record, conversations=turn(questions[asked], scene[asked], True)))
        elif mode == "pairs":
            order = ["background", "shape_color"]
            rng.shuffle(order)
            conversations = [t for i, a in enumerate(order) for t in turn(questions[a], scene[a], i == 0)]
            written.append(dict(record, conversations=conversations, lb_sim=record["lb_sim"] * 2))
    json.dump(written, open(out, "w"))
    print(f"{len(written)} records -> {out}")


if __name__ == "__main__":
    main(*sys.argv[1:])
