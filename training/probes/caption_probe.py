"""Does the LLM read the video? Teacher-forced caption tokens with a clip's own video vs another
clip's video, on fresh single-scene clips the model never trained on.

    python -m training.probes.caption_probe CKPT [--clips 64] [--seed 99] [--all-attributes]

Writes --clips new stage-1 clips (salova.data.synth, a corpus of clips only, seed --seed; the
`small` corpus's kind unless --all-attributes) to a temporary folder, feeds each caption
teacher-forced as stage 1 does, and counts how often the LLM's arg-max at the first token of
each attribute word (shape colour, shape, background; with --all-attributes also motion and
label) is that token (its first byte with the byte tokenizer, the whole word with the `small`
preset's word tokenizer), once with the clip's own visual tokens and once with the next clip's.
Equal accuracies mean the LLM guesses from the text prior and ignores the video. Two more rows
take the clip's Focus (local) tokens and its Fast (routing) token from different clips, which
shows the pathway the LLM reads an attribute from: a long video has one routing token a scene,
so a reading that needs the clip's own routing token does not carry over to long videos.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from salova.data import synth
from salova.data.collate import Collator, DataSettings, build_dataset
from salova.modeling.salova import SalovaForCausalLM, SceneFeatures
from salova.processing import SalovaProcessor


def word_starts(caption: str, scene: dict) -> dict[str, int]:
    """Character offset of each attribute's word in the caption (absent ones left out)."""
    starts = {"shape_color": 2, "shape": 3 + len(scene["shape_color"]),
              "background": caption.index(f"{scene['background']} background")}  # fmt: skip
    motion = caption.find(synth.MOTION_PHRASES[scene["motion"]])
    if motion >= 0:
        starts["motion"] = motion
    if scene["label"]:
        starts["label"] = caption.index(f'"{scene["label"]}"') + 1
    return starts


def word_token_positions(tokenizer, caption: str, scene: dict) -> dict[str, int]:
    """Index, among the caption's tokens, of the token that holds each attribute word's first character."""
    offsets = tokenizer(caption, return_offsets_mapping=True, add_special_tokens=False)["offset_mapping"]
    return {attribute: next(i for i, (low, high) in enumerate(offsets) if low <= start < high)
            for attribute, start in word_starts(caption, scene).items()}  # fmt: skip


def first_token_hits(model, tokenizer, collator, sample, features, caption: str, scene: dict) -> dict[str, bool]:
    inputs, _ = collator([sample])
    inputs.pop("pixel_values")
    inputs.pop("frames_per_scene")
    with torch.no_grad():
        logits = model(videos=[features], **inputs).logits[0]
    labels = inputs["labels"][0]
    offset = logits.shape[0] - labels.shape[0]  # the visual tokens spliced in before the text
    answer = next(i for i in range(len(labels)) if labels[i] != -100)
    caption_ids = tokenizer(caption, add_special_tokens=False)["input_ids"]
    if labels[answer : answer + len(caption_ids)].tolist() != caption_ids:
        raise ValueError(f"caption {caption!r}: the sample's answer tokens are not the caption's tokens")
    hits = {}
    for attribute, index in word_token_positions(tokenizer, caption, scene).items():
        position = answer + index
        hits[attribute] = int(logits[position + offset - 1].argmax()) == int(labels[position])
    return hits


def probe_inputs(features: list[SceneFeatures], i: int) -> dict[str, SceneFeatures]:
    """The visual tokens clip i's caption is read with: its own, the next clip's, and the two mixes."""
    own, other = features[i], features[(i + 1) % len(features)]
    return {"own video": own, "other video": other,
            "own Focus, other Fast": SceneFeatures(routing=other.routing, local=own.local),
            "other Focus, own Fast": SceneFeatures(routing=own.routing, local=other.local)}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.probes.caption_probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--seed", type=int, default=99)
    parser.add_argument("--all-attributes", action="store_true", help="clips of the all-attribute kind (labels printed)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model = SalovaForCausalLM.from_pretrained(args.checkpoint).eval()
    processor = SalovaProcessor.from_pretrained(args.checkpoint, config=model.config)
    preset = synth.Preset("probe", stage1_clips=args.clips, perceivable_only=not args.all_attributes)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        synth.generate(preset, root, seed=args.seed, show_progress=False)
        truth = json.loads((root / "ground_truth.json").read_text())["videos"]
        dataset = build_dataset("pretrain", root / "train/stage1.json", root / "train", root / "train", processor,
                                DataSettings.for_config(model.config, 2048))  # fmt: skip
        collator, rng = Collator(processor.tokenizer.pad_token_id, True), np.random.default_rng(0)
        samples = [dataset.sample(i, rng) for i in range(len(dataset))]
        with torch.no_grad():
            features = [model.encode_video(s["pixels"], s["frames_per_scene"]) for s in samples]
        scenes = [truth[f"train/{record.media.relative_to((root / 'train').resolve()).as_posix()}"]["scenes"][0]
                  for record in dataset.records]  # fmt: skip
        hits: dict[str, dict[str, list[bool]]] = {}
        for i, (sample, record, scene) in enumerate(zip(samples, dataset.records, scenes)):
            for name, video in probe_inputs(features, i).items():
                found = first_token_hits(model, processor.tokenizer, collator, sample, video, record.caption, scene)
                for attribute, hit in found.items():
                    hits.setdefault(name, {}).setdefault(attribute, []).append(hit)
        for name, by_attribute in hits.items():
            print(f"{args.checkpoint} {name}: " + ", ".join(f"{a} {np.mean(h):.2f}" for a, h in by_attribute.items()))


if __name__ == "__main__":
    main()
