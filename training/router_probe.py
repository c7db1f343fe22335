"""Router recall on held-out synthetic videos with the ground-truth scenes: does the router find
the right scene when scene detection is out of the way?

    python -m training.router_probe CKPT --data runs/small/data [--benchmarks videomme,mlvu,longvideobench]

For every held-out video of the named benchmark sets (ground_truth.json of a synthetic corpus),
the video is encoded with its true scenes and the router scores every scene against
- each question (target: the question's answer scene),
- the same question in a training phrasing ("rephrased": the first SFT phrasing of the asked
  attribute, naming the scene the same way), which separates the router's generalisation to
  unseen phrasings from its generalisation to unseen, longer videos, and
- each scene's caption (target: that scene),
giving recall@1 and recall@5 with chance (1/T and min(5, T)/T averaged over the queries).
evals.run's router diagnostics measure the same on detected scenes, questions only.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from salova.data import synth
from salova.data.collate import DataSettings, video_pixels
from salova.modeling.salova import SalovaForCausalLM
from salova.processing import SalovaProcessor

BENCHMARK_FOLDERS = {"videomme": "videomme/", "mlvu": "mlvu/", "longvideobench": "longvideobench/"}


@dataclass
class HeldOutVideo:
    path: Path
    scenes: list[dict]  # scene records (start/end frame and fps), in temporal order
    captions: list[str]  # one per scene
    questions: list[tuple[str, int]]  # (router query text, answer scene)
    rephrased: list[tuple[str, int]]  # the same questions in a training phrasing


def held_out_videos(root: Path, benchmarks=tuple(BENCHMARK_FOLDERS)) -> list[HeldOutVideo]:
    truth = json.loads((root / "ground_truth.json").read_text())
    prefixes = tuple(BENCHMARK_FOLDERS[b] for b in benchmarks)
    texts = question_texts(root)
    videos = {}
    for relative, video in sorted(truth["videos"].items()):
        if relative.startswith(prefixes):
            scenes = [{"start_frame": s["start_frame"], "end_frame": s["end_frame"], "start_fps": video["fps"],
                       "end_fps": video["fps"]} for s in video["scenes"]]  # fmt: skip
            videos[relative] = HeldOutVideo(root / relative, scenes, [s["caption"] for s in video["scenes"]], [], [])
    for question in truth["questions"]:
        key = (question["benchmark"], question["question_id"])
        if question["video"] in videos and key in texts:
            videos[question["video"]].questions.append((texts[key], question["answer_scene"]))
            videos[question["video"]].rephrased.append((training_phrasing(question), question["answer_scene"]))
    return list(videos.values())


def training_phrasing(question: dict) -> str:
    """A ground-truth question (key, asked) in the first SFT phrasing of the asked attribute
    (for the colours, the same as the all-attribute corpora's training template)."""
    asked = question["asked"]
    template = synth.TRAIN_PHRASINGS[asked][0] if asked in synth.TRAIN_PHRASINGS else synth.TRAIN_TEMPLATES[asked]
    text = template.format(scene=synth.scene_phrase(question["key"]), thing="shape")
    return text[0].upper() + text[1:]


def question_texts(root: Path) -> dict[tuple[str, str], str]:
    """(benchmark, question id) -> the question as evals.run's router sees it (options cut off)."""
    from evals.lmms_model import router_query
    from salova.data.records import load_questions

    files = {"videomme": "videomme/test-00000-of-00001.parquet", "mlvu": "mlvu/test-00000-of-00001.parquet",
             "longvideobench": "longvideobench/lvb_val.json"}  # fmt: skip
    texts = {}
    for benchmark, relative in files.items():
        if (root / relative).exists():
            for question in load_questions(root / relative, benchmark, check_media=False):
                texts[(benchmark, question.id)] = router_query({"question": question.question})
    return texts


def recall(scores: torch.Tensor, targets: list[int], k: int) -> list[bool]:
    """scores (Q, T) -> per query: is the target among the k best-scored scenes."""
    best = scores.topk(min(k, scores.shape[1]), dim=1).indices
    return [target in row.tolist() for row, target in zip(best, targets)]


@torch.no_grad()
def probe(model: SalovaForCausalLM, processor: SalovaProcessor, videos: list[HeldOutVideo], k: int = 5) -> dict:
    sampler = DataSettings.for_config(model.config).sampler
    kinds = ("question", "rephrased", "caption")
    hits = {kind: ([], []) for kind in kinds}  # (hit@1, hit@k) per query
    chance = {kind: ([], []) for kind in kinds}  # (1/T, min(k, T)/T) per query
    for video in videos:
        pixels, frames = video_pixels(video.path, sampler, video.scenes)
        features = model.encode_video(pixels, frames)
        count = features.num_scenes
        queries = {"caption": (video.captions, list(range(count))),
                   "question": ([q for q, _ in video.questions], [s for _, s in video.questions]),
                   "rephrased": ([q for q, _ in video.rephrased], [s for _, s in video.rephrased])}  # fmt: skip
        for kind, (texts, targets) in queries.items():
            if not texts:
                continue
            ids, mask = processor.queries(texts)
            scores = model.score_scenes(features, ids, mask)  # (Q, T)
            hits[kind][0].extend(recall(scores, targets, 1))
            hits[kind][1].extend(recall(scores, targets, k))
            chance[kind][0].extend([1 / count] * len(texts))
            chance[kind][1].extend([min(k, count) / count] * len(texts))
    return {kind: {"n": len(hits[kind][0]), "recall@1": _mean(hits[kind][0]), f"recall@{k}": _mean(hits[kind][1]),
                   "chance@1": _mean(chance[kind][0]), f"chance@{k}": _mean(chance[kind][1])}
            for kind in hits}  # fmt: skip


def _mean(values) -> float | None:
    return sum(values) / len(values) if values else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.router_probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="save_pretrained folder")
    parser.add_argument("--data", type=Path, required=True, help="a synthetic corpus (salova.data.synth --out)")
    parser.add_argument("--benchmarks", default=",".join(BENCHMARK_FOLDERS))
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model = SalovaForCausalLM.from_pretrained(args.checkpoint).eval()
    processor = SalovaProcessor.from_pretrained(args.checkpoint, config=model.config)
    videos = held_out_videos(args.data, tuple(b.strip() for b in args.benchmarks.split(",")))
    result = probe(model, processor, videos, args.k)
    print(json.dumps({"checkpoint": str(args.checkpoint), "videos": len(videos), **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
