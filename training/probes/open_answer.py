"""Does the model see the answer once it has the right scene? Open answers scored by likelihood,
with four choices of Focus scenes, on the held-out synthetic questions.

    python -m training.probes.open_answer CKPT --data-root DATA [--k 5] [--limit N] [--out FILE]

For every question of DATA/ground_truth.json (the Video-MME-, MLVU-, LongVideoBench-shaped sets
and NIAH), the question is put as the open question the benchmark asks before its options (the
held-out phrasing of its attribute, e.g. "What is the background color of the scene with a purple
object?"), and the LLM's log-likelihood of each of the 12 colours as the whole answer ("Purple.",
the form of the stage-2 open answers) is computed. The prediction is the most likely colour
(chance 1/12): no option letter is involved, so this measures perception and retrieval apart
from the letter-picking skill the `small` LLM lacks (docs/results.md).

Focus choices, each with the video's Fast tokens as usual:
  router   the router's top-K scenes for the question (what the model does);
  uniform  K scenes evenly spaced over the video (the no-router baseline);
  oracle   the ground-truth answer scene plus the router's best K-1 others (an upper bound:
           can the LLM read the answer when the scene is in its Focus?);
  other    the router's top-K on a different held-out video (a control: the answer cannot be seen).
Scenes are those the model's index detects; the answer scene is the detected scene overlapping
the ground-truth one most. Prints a table (accuracy in %, with the questions counted) and, with
--out, writes it as JSON.
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from salova.checkpoint import load_checkpoint
from salova.data import synth
from salova.index import VideoIndex
from salova.likelihood import answer_loglikelihoods
from salova.modeling.focusfast import select_focus, uniform_focus

MODES = ("router", "uniform", "oracle", "other")


def open_question(question: dict, scene: str | None = None) -> str:
    """The held-out phrasing of the question, without options (the first held-out template),
    naming the scene as `scene` says (default: by the question's key)."""
    template = synth.HELD_OUT_TEMPLATES[question["asked"]]
    template = template if isinstance(template, str) else template[0]
    text = template.format(scene=scene or synth.scene_phrase(question["key"]), thing="shape")
    return text[0].upper() + text[1:]


def detected_scene(indexed, span: tuple[float, float]) -> int:
    """The detected scene that overlaps the time span (start_s, end_s) most."""
    overlaps = [min(s.end_time, span[1]) - max(s.start_time, span[0]) for s in indexed.scenes]
    return max(range(len(overlaps)), key=overlaps.__getitem__)


def answer_span(videos: dict, question: dict) -> tuple[float, float]:
    video = videos[question["video"]]
    scene = video["scenes"][question["answer_scene"]]
    return scene["start_frame"] / video["fps"], scene["end_frame"] / video["fps"]


def colour_scores(model, processor, features, focus: torch.Tensor, question: str) -> torch.Tensor:
    """Log-likelihood of each colour as the whole answer, given the question and the Focus: (12,)."""
    return answer_loglikelihoods(model, processor, features, focus, question, [synth.open_answer(c) for c in synth.COLORS])


def evaluate(model, processor, index: VideoIndex, data_root: Path, k: int, limit: int | None) -> pd.DataFrame:
    truth = json.loads((data_root / "ground_truth.json").read_text())
    questions = truth["questions"][:limit] if limit else truth["questions"]
    videos = sorted({q["video"] for q in questions})
    load = functools.cache(lambda relative: index.features(data_root / relative))  # each video read once
    rows = []
    for question in tqdm(questions, desc="questions"):
        indexed = load(question["video"])
        other = load(videos[(videos.index(question["video"]) + 1) % len(videos)])
        text = open_question(question)
        query_ids, query_mask = processor.queries([text])
        target = detected_scene(indexed, answer_span(truth["videos"], question))
        router_scores = model.score_scenes(indexed.features, query_ids, query_mask)[0]
        routed = select_focus(router_scores, k)
        best_others = [int(s) for s in router_scores.argsort(descending=True) if int(s) != target][: k - 1]
        focus = {"router": (indexed, routed),
                 "uniform": (indexed, uniform_focus(indexed.features.num_scenes, k)),
                 "oracle": (indexed, torch.tensor([target, *best_others])),
                 "other": (other, model.route(other.features, query_ids, query_mask, k)[0].focus)}
        answer = synth.COLORS.index(question["answer"])
        row = {"benchmark": question["benchmark"], "question_id": question["question_id"],
               "scenes": indexed.features.num_scenes, "answer_in_router_focus": target in routed.tolist()}
        for mode in MODES:
            video, chosen = focus[mode]
            row[mode] = int(colour_scores(model, processor, video.features, chosen, text).argmax()) == answer
        rows.append(row)
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Accuracy in % per benchmark and overall, for each Focus choice, with question counts."""
    groups = [(name, part) for name, part in table.groupby("benchmark")] + [("all", table)]
    return pd.DataFrame([{"set": name, "questions": len(part), **{m: 100 * part[m].mean() for m in MODES},
                          "answer scene in router Focus": 100 * part.answer_in_router_focus.mean()}
                         for name, part in groups])


def probe_arguments(name: str, doc: str, data_help: str) -> argparse.ArgumentParser:
    """The arguments the question probes share: checkpoint, --data-root, --limit, --cache, --out."""
    parser = argparse.ArgumentParser(prog=f"python -m training.probes.{name}", description=doc.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--data-root", required=True, type=Path, help=data_help)
    parser.add_argument("--limit", type=int, help="only the first N questions")
    parser.add_argument("--cache", type=Path, help="feature cache folder (default: CKPT/../probe-features)")
    parser.add_argument("--out", type=Path, help="write the summary and every question's result as JSON here")
    return parser


def model_and_index(args: argparse.Namespace) -> tuple:
    """The checkpoint on the CPU (one thread, eval mode), its processor and a feature index."""
    torch.set_num_threads(1)
    model, processor = load_checkpoint(Path(args.checkpoint), torch.device("cpu"))
    return model, processor, VideoIndex(model, processor, args.cache or Path(args.checkpoint).parent / "probe-features")


def main(argv: list[str] | None = None) -> None:
    parser = probe_arguments("open_answer", __doc__, "a synthetic corpus (salova.data.synth --out)")
    parser.add_argument("--k", type=int, default=5, help="Focus scenes")
    args = parser.parse_args(argv)
    model, processor, index = model_and_index(args)
    table = evaluate(model, processor, index, args.data_root, args.k, args.limit)
    result = summary(table)
    print(result.to_markdown(index=False, floatfmt=".1f"))
    if args.out:
        args.out.write_text(json.dumps({"checkpoint": str(args.checkpoint), "k": args.k, "summary": result.to_dict("records"),
                                        "questions": table.to_dict("records")}, indent=1, default=bool))


if __name__ == "__main__":
    main()
