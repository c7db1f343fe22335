"""Which scene attributes can the `small` model's scene features carry? A linear probe on the
features of the stage-1 clips of a synthetic corpus, or of its long videos' scenes.

    python -m training.probes.linear_probe (CKPT | fresh) --data runs/small-v2/data [--clips 1000] [--test 200]
    python -m training.probes.linear_probe CKPT --data runs/small-v2/data --long-videos 240

Every one of the first --clips single-scene clips (train/clips/, attributes from the corpus's
ground_truth.json) is encoded as training reads it (collate.video_pixels, the whole clip as one
scene); three feature vectors per clip: the routing token, the flattened local (Focus) tokens and
the frame-mean of the vision tower's patches. A ridge one-vs-rest least-squares classifier
(lambda 10, features standardised on the fitting clips) is fit on all but the last --test clips
and scored on those. Chance: background and shape colour 1/12, shape 1/6, motion 1/5. `fresh`
probes a random-init `small` model (torch seed 0).

With --long-videos N the probe reads what the LLM is given for a scene of a long video: every
ground-truth scene of the first N training videos (train/videos/) is encoded as the model reads
it (at its sampling rate, with the video's other scenes beside it) and the probe is fit on those,
then scored on every scene of the held-out benchmark videos (Video-MME, LongVideoBench, MLVU).
Features: the routing token, the flattened local tokens and their mean over the L slots (what an
attention head that weighs the slots alike would see).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from salova.config import SalovaConfig
from salova.data.collate import WHOLE_CLIP, DataSettings, video_pixels
from salova.modeling.salova import SalovaForCausalLM

ATTRIBUTES = ("background", "shape_color", "shape", "motion")


def clip_features(model, settings: DataSettings, path: Path) -> dict[str, np.ndarray]:
    pixels, frames = video_pixels(path, settings.sampler, WHOLE_CLIP)
    features = model.encode_video(pixels, frames)
    patches, _ = model.vision_tower(pixels)
    return {"routing": features.routing[0].numpy(), "local": features.local[0].flatten().numpy(),
            "patches": patches.mean(0).flatten().numpy()}  # fmt: skip


HELD_OUT_FOLDERS = ("videomme/", "longvideobench/", "mlvu/")


def scene_features(model, settings: DataSettings, path: Path, video: dict) -> dict[str, np.ndarray]:
    """Every ground-truth scene of one long video as the model encodes it -> {name: (T, dims)}."""
    fps = video["fps"]
    scenes = [{"start_frame": s["start_frame"], "end_frame": s["end_frame"], "start_fps": fps, "end_fps": fps}
              for s in video["scenes"]]  # fmt: skip
    pixels, frames = video_pixels(path, settings.sampler, scenes)
    features = model.encode_video(pixels, frames)
    return {"routing": features.routing.numpy(), "local": features.local.flatten(1).numpy(),
            "local mean": features.local.mean(1).numpy()}  # fmt: skip


def long_video_probe(model, settings: DataSettings, data: Path, videos: dict, fit_videos: int) -> dict[str, dict]:
    """{feature: {attribute: accuracy on the held-out benchmark scenes}}, fit on the training videos' scenes."""
    training = sorted(path for path in videos if path.startswith("train/videos/"))[:fit_videos]
    held_out = sorted(path for path in videos if path.startswith(HELD_OUT_FOLDERS))
    rows, scenes = [], []
    with torch.no_grad():
        for path in [*training, *held_out]:
            rows.append(scene_features(model, settings, data / path, videos[path]))
            scenes += videos[path]["scenes"]
    fit = sum(len(videos[path]["scenes"]) for path in training)
    return {name: {a: probe_accuracy(np.concatenate([row[name] for row in rows]), [s[a] for s in scenes], fit)
                   for a in ATTRIBUTES}
            for name in rows[0]}  # fmt: skip


def probe_accuracy(features: np.ndarray, values: list[str], fit: int, ridge: float = 10.0) -> float:
    """Held-out accuracy of a ridge least-squares one-vs-rest classifier fit on the first `fit` rows."""
    mean, std = features[:fit].mean(0), features[:fit].std(0) + 1e-6
    design = np.hstack([(features - mean) / std, np.ones((len(features), 1))])
    classes = sorted(set(values))
    targets = np.array([[value == c for c in classes] for value in values], float)
    gram = design[:fit].T @ design[:fit] + ridge * np.eye(design.shape[1])
    weights = np.linalg.solve(gram, design[:fit].T @ targets[:fit])
    return float((np.argmax(design[fit:] @ weights, 1) == targets[fit:].argmax(1)).mean())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.probes.linear_probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a save_pretrained folder, or `fresh`")
    parser.add_argument("--data", type=Path, required=True, help="a synthetic corpus (salova.data.synth)")
    parser.add_argument("--clips", type=int, default=1000)
    parser.add_argument("--test", type=int, default=200)
    parser.add_argument("--long-videos", type=int, metavar="N",
                        help="probe long videos' scenes instead: fit on N training videos, score on the benchmarks'")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = (SalovaForCausalLM(SalovaConfig.from_preset("small")) if args.checkpoint == "fresh"
             else SalovaForCausalLM.from_pretrained(args.checkpoint)).eval()  # fmt: skip
    settings = DataSettings.for_config(model.config, 2048)
    videos = json.loads((args.data / "ground_truth.json").read_text())["videos"]
    if args.long_videos:
        for name, scores in long_video_probe(model, settings, args.data, videos, args.long_videos).items():
            rounded = {a: round(value, 3) for a, value in scores.items()}
            print(f"{args.checkpoint} long-video scenes, {name}: {rounded}", flush=True)
        return
    clips = sorted(path for path in videos if path.startswith("train/clips/"))[: args.clips]
    with torch.no_grad():
        rows = [clip_features(model, settings, args.data / path) for path in clips]
    scenes = [videos[path]["scenes"][0] for path in clips]
    fit = len(clips) - args.test
    for name in rows[0]:
        features = np.stack([row[name] for row in rows])
        scores = {a: round(probe_accuracy(features, [s[a] for s in scenes], fit), 2) for a in ATTRIBUTES}
        print(f"{args.checkpoint} {name} ({features.shape[1]} dims, fit {fit}, test {args.test}): {scores}", flush=True)


if __name__ == "__main__":
    main()
