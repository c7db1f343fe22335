"""The `salova` command. One function adds each subcommand's arguments, one function runs it.

    salova info --preset qwen2.5-7b-siglip [--json]     parameter counts per component
    salova index VIDEO [--checkpoint CKPT]              decode, segment, encode, cache; JSON summary
    salova ask VIDEO "QUESTION" [--checkpoint CKPT] [--k K]   answer and the scenes looked at
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from salova.config import PRESETS, SalovaConfig
from salova.errors import SalovaError

COMPONENTS = ("vision_tower", "text_tower", "connector", "router", "projector", "llm")


def parameter_counts(config: SalovaConfig) -> dict[str, int]:
    """Parameters per component and in total, counted on the meta device (no memory, no download).

    Shared tensors (tied LLM embeddings) are counted once.
    """
    from salova.modeling.salova import SalovaForCausalLM

    with torch.device("meta"):
        model = SalovaForCausalLM(config)
    counts = {name: _count(getattr(model, name).parameters()) for name in COMPONENTS}
    counts["total"] = _count(model.parameters())
    return counts


def _count(parameters) -> int:
    unique = {id(p): p.numel() for p in parameters}
    return sum(unique.values())


# ---------------------------------------------------------------- info

def add_info_command(subparsers) -> None:
    parser = subparsers.add_parser("info", help="parameter counts of a preset, per component")
    parser.add_argument("--preset", required=True, choices=sorted(PRESETS), help="model preset")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(run=run_info)


def run_info(args) -> int:
    config = SalovaConfig.from_preset(args.preset)
    counts = parameter_counts(config)
    if args.json:
        print(json.dumps({"preset": args.preset, "parameters": counts}, indent=2))
        return 0
    print(f"preset {args.preset}")
    for name, count in counts.items():
        print(f"  {name:<13} {count:>15,}  ({count / 1e9:.3f} B)")
    return 0


# ---------------------------------------------------------------- index / ask

def default_cache_dir() -> Path:
    from evals import cache_root

    return cache_root() / "features"  # the same feature cache evals.run uses


def add_video_arguments(parser) -> None:
    parser.add_argument("video", type=Path, help="video file")
    parser.add_argument("--checkpoint", type=Path, help="save_pretrained folder (default: the built-in demo checkpoint)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="feature cache (default: $SALOVA_CACHE/features)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")


def open_index(args):
    from salova.checkpoint import load_checkpoint
    from salova.index import VideoIndex

    checkpoint = args.checkpoint
    if checkpoint is None:
        from evals.demo_checkpoint import demo_checkpoint

        checkpoint = demo_checkpoint()
    model, processor = load_checkpoint(checkpoint, device=args.device)
    return VideoIndex(model, processor, args.cache_dir or default_cache_dir())


def add_index_command(subparsers) -> None:
    parser = subparsers.add_parser("index", help="decode, segment and encode a video into the feature cache")
    add_video_arguments(parser)
    parser.set_defaults(run=run_index)


def run_index(args) -> int:
    indexed = open_index(args).features(args.video)
    meta = indexed.meta
    summary = {
        "video": str(args.video),
        "duration_s": meta["duration_s"],
        "decoded_frames": meta["frames_decoded"],
        "sampled_frames": meta["num_frames"],
        "scenes": [{"index": i, "start_s": round(s.start_time, 3), "end_s": round(s.end_time, 3),
                    "frames": n} for i, (s, n) in enumerate(zip(indexed.scenes, meta["frames_per_scene"]))],
        "cache_path": str(indexed.cache_path),
        "from_cache": indexed.from_cache,
    }
    print(json.dumps(summary, indent=2))
    return 0


def add_ask_command(subparsers) -> None:
    parser = subparsers.add_parser("ask", help="answer a question about a video")
    add_video_arguments(parser)
    parser.add_argument("question", help="the question")
    parser.add_argument("--k", type=int, default=None, help="Focus scenes (default: the checkpoint's focus_k)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(run=run_ask)


def run_ask(args) -> int:
    answer = open_index(args).ask(args.video, args.question, k=args.k, max_new_tokens=args.max_new_tokens)
    if args.json:
        print(json.dumps({"answer": answer.text, "focus": answer.focus, "scene_times": answer.scene_times,
                          "scores": answer.scores, "from_cache": answer.from_cache}, indent=2))
        return 0
    print(answer.text)
    print("scenes looked at:")
    for index, (start, end) in zip(answer.focus, answer.scene_times):
        print(f"  scene {index:>3}  {start:8.2f}s - {end:8.2f}s  score {answer.scores[index]:+.3f}")
    return 0


# ---------------------------------------------------------------- entry point

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="salova", description="SALOVA long-video assistant")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_info_command(subparsers)
    add_index_command(subparsers)
    add_ask_command(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except SalovaError as err:
        print(f"salova {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
