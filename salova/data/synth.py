"""Deterministic synthetic corpora: real H.264 videos with hard cuts and, for the same
videos, every record format the project reads.

    python -m salova.data.synth --preset {ci,demo,niah,train,small} --out DIR [--seed N]
        [--size 64x48] [--fps 4] [--video-seconds 10 40] [--scenes 3 6]

Every scene is one flat background, one moving shape and a printed word
(``salova.data.render``), so each scene has five describable attributes: background
colour, shape, shape colour, motion and label. Consecutive scenes differ in background,
so the cuts are hard. Everything derived from the videos comes from these ground-truth
attributes:

- captions: ``SceneSpec.caption()`` of each scene;
- ``sen_sim`` (T2T) and ``lb_sim`` (V2T), rows = captions or questions, columns =
  scenes: 1.0 / 0.24-0.30 for the caption's own scene, and for other scenes a value
  growing with the fraction of shared attributes that stays below the reference
  thresholds (T2T <= 0.69 < 0.83, V2T <= 0.17 < 0.20), plus a little deterministic
  noise. Under the reference label rules each caption or question row is positive on
  its own scene only;
- questions about one scene: the scene is named by a few of its attributes that no other
  scene of the video shares all together, and one other attribute is asked, so the
  answer lives in exactly one scene. Distractor scenes share attributes with it, and the
  wrong options are preferably values shown elsewhere in the same video. The correct
  option's position is dealt so that each set uses every letter equally often.

The `small` preset is *perceivable-only* (``Preset.perceivable_only``): nothing is printed,
captions name shape colour, shape and background, and every question names its scene by one
colour no other scene shows in that role and asks the other colour (``ask_perceivable``);
the SFT questions use many phrasings (``TRAIN_PHRASINGS``) and the NIAH needle is named by a
colour the haystack never shows in that role.

The layout on disk (documented in docs/data.md) mirrors the public downloads::

    DIR/manifest.json        preset, seed, parameters, counts, sha256 of every file written
    DIR/ground_truth.json    scene attributes, captions and frame ranges of every video; what each question asks
    DIR/train/               stage1.json (clips/, images/), scenewalk.json, sft.json (videos/)
    DIR/videomme/            test-00000-of-00001.parquet, data/<videoID>.mp4
    DIR/mlvu/                test-00000-of-00001.parquet, <video_name>
    DIR/longvideobench/      lvb_val.json, validation-00000-of-00001.parquet, videos/, subtitles/
    DIR/niah/                test-00000-of-00001.parquet (Video-MME schema), data/<videoID>.mp4

The same preset and seed give byte-identical files on the same machine (the H.264
encoder is deterministic for a given thread count).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image
from tqdm import tqdm

from salova.data import render
from salova.errors import ConfigError

# ---------------------------------------------------------------------------------------
# Vocabulary of the scenes
# ---------------------------------------------------------------------------------------

ATTRIBUTES = ("background", "shape", "shape_color", "motion", "label")
COLORS = tuple(render.PALETTE)
LABELS = ("cat", "dog", "sun", "key", "cup", "hat", "box", "pen", "owl", "map", "jar", "fox")
NEEDLE_LABELS = ("zap", "vex", "qua", "jib", "kol")  # never used outside needle scenes
VOCABULARY = {
    "background": COLORS,
    "shape": render.SHAPES,
    "shape_color": COLORS,
    "motion": tuple(render.MOTIONS),
    "label": LABELS,
}
# The words SceneSpec.caption() uses for each motion (a test keeps the two in step).
MOTION_PHRASES = {"static": "standing still", "left": "moving left", "right": "moving right",
                  "up": "moving up", "down": "moving down"}  # fmt: skip

# What the `small` model's vision features carry (a linear probe on its scene features,
# docs/results.md): the background colour perfectly, the shape colour partly; the shape weakly,
# the motion and a printed word not at all. Perceivable-only corpora key and ask only these.
PERCEIVABLE = ("background", "shape_color")
UNLABELLED = ("",)  # the label of a perceivable-only scene: nothing printed

Look = dict  # attribute -> value, one scene without its duration


def attribute_text(attribute: str, value: str) -> str:
    """How a value is written in questions, options and captions."""
    return MOTION_PHRASES[value] if attribute == "motion" else value


def caption(look: Look, perceivable_only: bool) -> str:
    """A scene's caption: all five attributes (SceneSpec.caption), or, perceivable-only, the
    colours and the shape: 'A red circle on a blue background.'"""
    if not perceivable_only:
        return render.SceneSpec(duration_s=1.0, **look).caption()
    return f"A {look['shape_color']} {look['shape']} on {_article(look['background'])} {look['background']} background."


# ---------------------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    name: str
    size: tuple[int, int] = (64, 48)
    fps: int = 4
    stage1_clips: int = 0
    stage1_images: int = 0
    train_videos: int = 0
    sft_questions: int = 3  # per training video
    benchmark_videos: int = 0  # per benchmark
    benchmark_questions: int = 3  # per benchmark video
    video_seconds: tuple[float, float] = (10.0, 40.0)
    scenes: tuple[int, int] = (3, 6)
    niah_minutes: tuple[float, ...] = ()
    niah_depths: tuple[int, ...] = (0, 25, 50, 75, 100)
    niah_fps: int = 1
    niah_needles: int = 1  # needles (each with its own haystack) per haystack length
    # Held-out benchmark videos of their own length and scene count (None: as the training videos).
    benchmark_video_seconds: tuple[float, float] | None = None
    benchmark_scenes: tuple[int, int] | None = None
    # True: the corpus uses only what the `small` model's vision features carry (see
    # PERCEIVABLE): no printed labels, captions without label and motion, every question keyed
    # by one colour unique in its video and asking the other, varied training phrasings.
    perceivable_only: bool = False

    def held_out(self) -> Preset:
        """The preset the benchmark writers plan their videos with."""
        return replace(self, video_seconds=self.benchmark_video_seconds or self.video_seconds,
                       scenes=self.benchmark_scenes or self.scenes)


PRESETS = {
    "ci": Preset("ci", stage1_clips=4, stage1_images=2, train_videos=3, benchmark_videos=2,
                 niah_minutes=(1, 2), niah_depths=(0, 50, 100)),
    "demo": Preset("demo", stage1_clips=8, stage1_images=4, train_videos=4, benchmark_videos=8,
                   benchmark_questions=4, video_seconds=(20.0, 120.0), scenes=(3, 10), niah_minutes=(1, 3)),
    "niah": Preset("niah", niah_minutes=(1, 5, 15, 30, 60), niah_needles=4),
    "train": Preset("train", stage1_clips=300, stage1_images=100, train_videos=80, sft_questions=4,
                    benchmark_videos=20, video_seconds=(20.0, 180.0), scenes=(3, 12)),
    # The corpus of the `small` model's CPU reproduction (training/reproduce.py), perceivable
    # attributes only: 240 training videos (480 together with a 2400-step stage 2 did worse, ninth
    # session, docs/results.md) of 8-40 scenes with 5 questions each (= Focus K, so every answer
    # scene is in the Focus stage 2 trains with); held-out benchmark videos of 30-120 scenes
    # (1-4 min), so a question's scene is one of many look-alikes; NIAH haystacks up to 1 h, four
    # needles a length (one gave each depth the same 5 needles: models at about 60 % on four
    # needles had scored 86-96 % on one; docs/results.md, fifteenth session).
    "small": Preset("small", stage1_clips=2000, stage1_images=200, train_videos=240, sft_questions=5,
                    benchmark_videos=12, benchmark_questions=4, video_seconds=(20.0, 100.0), scenes=(8, 40),
                    benchmark_video_seconds=(70.0, 250.0), benchmark_scenes=(30, 120),
                    niah_minutes=(1, 5, 15, 30, 60), niah_needles=4, perceivable_only=True),
}  # fmt: skip
MIN_SCENE_SECONDS = 2.0
VIDEO_SECONDS_RANGE = (10.0, 3600.0)


def configure(name: str, size=None, fps=None, video_seconds=None, scenes=None, train_videos=None) -> Preset:
    """A named preset with the command-line overrides applied and checked."""
    if name not in PRESETS:
        raise ConfigError(f"--preset: {name!r} is not one of {sorted(PRESETS)}")
    preset = PRESETS[name]
    overrides = {key: value for key, value in
                 {"size": size, "fps": fps, "video_seconds": video_seconds, "scenes": scenes,
                  "train_videos": train_videos}.items() if value is not None}  # fmt: skip
    preset = replace(preset, **overrides)
    low, high = preset.video_seconds
    if not VIDEO_SECONDS_RANGE[0] <= low <= high <= VIDEO_SECONDS_RANGE[1]:
        raise ConfigError(f"--video-seconds: {low}..{high} must lie within {VIDEO_SECONDS_RANGE[0]:g}..{VIDEO_SECONDS_RANGE[1]:g} s")
    if not 1 <= preset.scenes[0] <= preset.scenes[1]:
        raise ConfigError(f"--scenes: {preset.scenes[0]}..{preset.scenes[1]} must be at least 1 and ordered")
    if preset.scenes[0] * MIN_SCENE_SECONDS > high:
        raise ConfigError(f"--scenes: {preset.scenes[0]} scenes of >= {MIN_SCENE_SECONDS:g} s do not fit in {high:g} s")
    if preset.train_videos < 0:
        raise ConfigError(f"--train-videos: {preset.train_videos} must be at least 0")
    if not 1 <= preset.fps <= 60:
        raise ConfigError(f"--fps: {preset.fps} must be within 1..60")
    width, height = preset.size
    if width < 16 or height < 16 or width % 2 or height % 2:
        raise ConfigError(f"--size: {width}x{height} must be even and at least 16x16")
    return preset


# ---------------------------------------------------------------------------------------
# Scenes: looks, durations, videos
# ---------------------------------------------------------------------------------------


def _pick(rng: np.random.Generator, values: Sequence[str], exclude: Sequence[str] = ()) -> str:
    allowed = [v for v in values if v not in exclude]
    return allowed[int(rng.integers(len(allowed)))]


def random_look(rng: np.random.Generator, labels: Sequence[str] = LABELS) -> Look:
    background = _pick(rng, COLORS)
    return {"background": background, "shape": _pick(rng, render.SHAPES),
            "shape_color": _pick(rng, COLORS, exclude=[background]), "motion": _pick(rng, tuple(render.MOTIONS)),
            "label": _pick(rng, labels)}  # fmt: skip


def _drawable(look: Look, previous: Look | None) -> bool:
    """Shape visible on its background, and a hard cut from the previous scene."""
    return look["shape_color"] != look["background"] and (previous is None or look["background"] != previous["background"])


def related_looks(rng: np.random.Generator, count: int, share: float = 0.6, labels: Sequence[str] = LABELS) -> list[Look]:
    """``count`` distinct looks; with probability ``share`` a scene copies one or two
    attributes of an earlier scene, so videos hold look-alike distractors."""
    looks: list[Look] = []
    while len(looks) < count:
        look = random_look(rng, labels)
        if looks and rng.random() < share:
            model = looks[int(rng.integers(len(looks)))]
            for attribute in rng.permutation(ATTRIBUTES)[: int(rng.integers(1, 3))]:
                look[str(attribute)] = model[str(attribute)]
        if _drawable(look, looks[-1] if looks else None) and look not in looks:
            looks.append(look)
    return looks


def split_frames(rng: np.random.Generator, total: int, count: int, minimum: int) -> list[int]:
    """``count`` scene lengths in frames, each >= minimum, summing to ``total``."""
    weights = rng.uniform(0.5, 1.5, count)
    frames = minimum + np.floor(weights / weights.sum() * (total - count * minimum)).astype(int)
    frames[: total - int(frames.sum())] += 1
    return [int(f) for f in frames]


@dataclass
class Video:
    """A video to write: its looks, scene lengths and encoding settings."""

    path: str  # relative to the output folder
    looks: list[Look]
    frames: list[int]  # per scene
    fps: int
    size: tuple[int, int]
    seed: int
    spans: list[tuple[int, int]] = field(default_factory=list)  # half-open frame ranges, once written

    @property
    def specs(self) -> list[render.SceneSpec]:
        return [render.SceneSpec(duration_s=n / self.fps, **look) for look, n in zip(self.looks, self.frames)]

    @property
    def duration_s(self) -> float:
        return sum(self.frames) / self.fps

    def seconds(self, scene: int) -> tuple[float, float]:
        start, end = self.spans[scene]
        return start / self.fps, end / self.fps

    def scene_records(self) -> list[dict]:
        return [{"start_frame": s, "end_frame": e, "start_fps": self.fps, "end_fps": self.fps} for s, e in self.spans]

    def write(self, out: Path) -> None:
        (out / self.path).parent.mkdir(parents=True, exist_ok=True)
        self.spans = render.write_scene_video(out / self.path, self.specs, fps=self.fps, size=self.size, seed=self.seed)


def plan_video(rng: np.random.Generator, path: str, preset: Preset, share: float = 0.6) -> Video:
    seconds = max(rng.uniform(*preset.video_seconds), preset.scenes[0] * MIN_SCENE_SECONDS)
    total = round(seconds * preset.fps)
    minimum = round(MIN_SCENE_SECONDS * preset.fps)
    most = min(preset.scenes[1], total // minimum)
    count = int(rng.integers(preset.scenes[0], most + 1))
    frames = split_frames(rng, total, count, minimum)
    looks = related_looks(rng, count, share, UNLABELLED if preset.perceivable_only else LABELS)
    return Video(path, looks, frames, preset.fps, preset.size, int(rng.integers(2**31)))


# ---------------------------------------------------------------------------------------
# Similarities (rows = captions or questions, columns = scenes)
# ---------------------------------------------------------------------------------------


def shared_fraction(look: Look, other: Look, attributes: Sequence[str] = ATTRIBUTES) -> float:
    return sum(look[a] == other[a] for a in attributes) / len(attributes)


def caption_similarities(rng: np.random.Generator, looks: list[Look]) -> tuple[np.ndarray, np.ndarray]:
    """sen_sim (T2T) and lb_sim (V2T), both (T, T): own scene 1.0 / 0.24-0.30, others
    0.30 + 0.45 * shared (<= 0.69) / 0.06 + 0.12 * shared (<= 0.17)."""
    count = len(looks)
    shared = np.array([[shared_fraction(a, b) for b in looks] for a in looks])  # (T, T)
    sen_sim = 0.30 + 0.45 * shared + rng.uniform(-0.02, 0.02, (count, count))
    lb_sim = 0.06 + 0.12 * shared + rng.uniform(-0.01, 0.01, (count, count))
    np.fill_diagonal(sen_sim, 1.0)
    np.fill_diagonal(lb_sim, rng.uniform(0.24, 0.30, count))
    return sen_sim.round(4), lb_sim.round(4)


def question_similarities(rng: np.random.Generator, looks: list[Look], key: Look, scene: int) -> np.ndarray:
    """The V2T row (T,) of a question naming ``scene`` by ``key``."""
    row = np.array([0.06 + 0.12 * shared_fraction(key, look, list(key)) for look in looks])
    row += rng.uniform(-0.01, 0.01, len(looks))
    row[scene] = rng.uniform(0.24, 0.30)
    return row.round(4)


# ---------------------------------------------------------------------------------------
# Questions about one scene
# ---------------------------------------------------------------------------------------

# SFT uses the training phrasings; benchmark and NIAH questions use the held-out ones.
TRAIN_TEMPLATES = {
    "shape": "In {scene}, which shape is shown?",
    "shape_color": "In {scene}, what color is the {thing}?",
    "background": "In {scene}, what color is the background?",
    "motion": "In {scene}, how does the {thing} move?",
    "label": "In {scene}, which word is printed?",
}
HELD_OUT_TEMPLATES = {
    "shape": "What kind of shape appears in {scene}?",
    "shape_color": "Which color does the {thing} have in {scene}?",
    "background": "What is the background color of {scene}?",
    "motion": "Which way does the {thing} go in {scene}?",
    "label": "What word is written in {scene}?",
}
# Perceivable-only SFT phrasings: many, some with the scene at the end like the held-out ones,
# none of them a held-out template (a test checks).
TRAIN_PHRASINGS = {
    "background": (
        "In {scene}, what color is the background?", "What color is the background in {scene}?",
        "Which color is the background of {scene}?", "Tell me the background color in {scene}.",
        "Name the color behind the {thing} in {scene}.", "Look at {scene}. Which color is its background?",
        "What background color is used in {scene}?", "For {scene}, what is the color of the background?",
    ),
    "shape_color": (
        "In {scene}, what color is the {thing}?", "What color is the {thing} in {scene}?",
        "Which color is the {thing} shown in {scene}?", "Tell me the color of the {thing} in {scene}.",
        "Name the color of the {thing} that appears in {scene}.", "Look at {scene}. Which color is its {thing}?",
        "What is the color of the {thing} in {scene}?", "For {scene}, what color does the {thing} have?",
    ),
}
VIDEOMME_TASK_TYPE = {"shape": "Object Recognition", "shape_color": "Attribute Perception",
                      "background": "Attribute Perception", "motion": "Action Recognition", "label": "OCR Problems"}  # fmt: skip
MC_INSTRUCTION = "Answer with the option's letter from the given choices directly."


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def scene_phrase(key: Look) -> str:
    """Names a scene by some of its attributes: 'the scene with a red circle moving left
    on a blue background labelled "cat"'."""
    noun = " ".join(w for w in (key.get("shape_color"), key.get("shape", "object")) if w)
    phrase = f"{_article(noun)} {noun}"
    if "motion" in key:
        phrase += " " + MOTION_PHRASES[key["motion"]]
    if "background" in key:
        phrase += f" on {_article(key['background'])} {key['background']} background"
    if "label" in key:
        phrase += f' labelled "{key["label"]}"'
    return "the scene with " + phrase


@dataclass(frozen=True)
class SceneQuestion:
    scene: int  # the one scene holding the answer
    asked: str  # the attribute asked
    key: Look  # the attributes naming the scene (unique to it within the video)
    text: str  # the question, without options
    answer: str  # the answer as text
    options: tuple[str, ...]  # option texts, the answer among them
    answer_index: int


def unique_key(rng: np.random.Generator, looks: list[Look], scene: int, asked: str) -> Look | None:
    """The fewest attributes other than ``asked`` that only ``scene`` shows all together."""
    others = [a for a in ATTRIBUTES if a != asked]
    for size in range(1, len(others) + 1):
        subsets = list(itertools.combinations(others, size))
        for index in rng.permutation(len(subsets)):
            key = {a: looks[scene][a] for a in subsets[index]}
            if [i for i, look in enumerate(looks) if all(look[a] == v for a, v in key.items())] == [scene]:
                return key
    return None


def _distractors(rng: np.random.Generator, looks: list[Look], scene: int, asked: str, count: int) -> list[str]:
    """Wrong values of ``asked``: first those shown in other scenes of the video."""
    answer = looks[scene][asked]
    shown = sorted({look[asked] for look in looks} - {answer})
    unseen = sorted(set(VOCABULARY[asked]) - set(shown) - {answer})
    return [str(v) for v in rng.permutation(shown)] + [str(v) for v in rng.permutation(unseen)][: max(0, count - len(shown))]


class AnswerPositions:
    """Deals the correct option's position for the questions of one set so that every position
    is used equally often (exactly when the set's size is a multiple of the option count).
    Independent draws are not enough at these set sizes: seed 0 of the `small` corpus made "A"
    the answer of 24 of its 48 held-out Video-MME questions, and a model that always says "A"
    scored 50 %."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.decks: dict[int, list[int]] = {}

    def deal(self, option_count: int) -> int:
        deck = self.decks.setdefault(option_count, [])
        if not deck:
            deck.extend(int(i) for i in self.rng.permutation(option_count))
        return deck.pop()


def _template(rng: np.random.Generator, entry: str | Sequence[str]) -> str:
    """One template of a templates entry: the string itself, or one of several phrasings."""
    return entry if isinstance(entry, str) else entry[int(rng.integers(len(entry)))]


def make_question(rng: np.random.Generator, looks: list[Look], scene: int, asked: str, templates: dict,
                  option_count: int, positions: AnswerPositions, key: Look | None = None) -> SceneQuestion | None:  # fmt: skip
    """A question naming ``scene`` by ``key`` (by default the fewest attributes unique
    to it) and asking ``asked``; None when no such key exists."""
    key = key or unique_key(rng, looks, scene, asked)
    if key is None:
        return None
    text = _template(rng, templates[asked]).format(scene=scene_phrase(key), thing="shape")
    text = text[0].upper() + text[1:]
    values = _distractors(rng, looks, scene, asked, option_count - 1)[: option_count - 1]
    answer_index = positions.deal(len(values) + 1)
    values.insert(answer_index, looks[scene][asked])
    options = tuple(attribute_text(asked, v) for v in values)
    return SceneQuestion(scene, asked, key, text, options[answer_index], options, answer_index)


def ask_about(rng: np.random.Generator, looks: list[Look], count: int, templates: dict, option_count: int,
              positions: AnswerPositions) -> list[SceneQuestion]:  # fmt: skip
    """Up to ``count`` questions, each about a different (scene, attribute)."""
    pairs = [(s, a) for s in range(len(looks)) for a in ATTRIBUTES]
    questions = []
    for index in rng.permutation(len(pairs)):
        question = make_question(rng, looks, *pairs[index], templates, option_count, positions)
        if question is not None:
            questions.append(question)
        if len(questions) == count:
            break
    return questions


def _recolour(rng: np.random.Generator, looks: list[Look], index: int, attribute: str, exclude: set[str]) -> None:
    """Gives scene ``index`` another ``attribute`` colour outside ``exclude``, keeping the scene
    drawable (shape colour != background, background != the neighbours' backgrounds)."""
    look = looks[index]
    if attribute == "background":
        neighbours = {looks[i]["background"] for i in (index - 1, index + 1) if 0 <= i < len(looks)}
        exclude = exclude | neighbours | {look["shape_color"]}
    else:
        exclude = exclude | {look["background"]}
    look[attribute] = _pick(rng, COLORS, exclude=sorted(exclude))


def ask_perceivable(rng: np.random.Generator, looks: list[Look], count: int, templates: dict, option_count: int,
                    positions: AnswerPositions) -> list[SceneQuestion]:  # fmt: skip
    """Questions about ``count`` different scenes for a perceivable-only corpus: one colour of
    each scene (background or shape colour) is made unique in the video by recolouring the
    other scenes that show it, and the other colour is asked. Recolours ``looks`` in place, so
    call it before the video is written."""
    keys: dict[str, set[str]] = {attribute: set() for attribute in PERCEIVABLE}
    chosen = []
    for scene in rng.choice(len(looks), size=min(count, len(looks)), replace=False):
        attribute = PERCEIVABLE[int(rng.integers(len(PERCEIVABLE)))]
        value = looks[scene][attribute]
        for other in range(len(looks)):
            if other != scene and looks[other][attribute] == value:
                _recolour(rng, looks, other, attribute, keys[attribute] | {value})
        keys[attribute].add(value)
        chosen.append((int(scene), attribute))
    return [make_question(rng, looks, scene, other_colour(attribute), templates, option_count, positions,
                          {attribute: looks[scene][attribute]}) for scene, attribute in chosen]  # fmt: skip


def other_colour(attribute: str) -> str:
    (other,) = [a for a in PERCEIVABLE if a != attribute]
    return other


def questions_about(rng: np.random.Generator, preset: Preset, video: Video, templates: dict,
                    option_count: int, positions: AnswerPositions, count: int) -> list[SceneQuestion]:  # fmt: skip
    """The questions of one video: perceivable-only or over all attributes, as the preset says."""
    ask = ask_perceivable if preset.perceivable_only else ask_about
    return ask(rng, video.looks, count, templates, option_count, positions)


def lettered(options: Sequence[str]) -> str:
    return "\n".join(f"{chr(65 + i)}. {option}" for i, option in enumerate(options))


# ---------------------------------------------------------------------------------------
# Writers
# ---------------------------------------------------------------------------------------


class Corpus:
    """Collects what one run writes: files (for the manifest), ground truth and counts."""

    def __init__(self, out: Path, perceivable_only: bool = False):
        self.out = out
        self.perceivable_only = perceivable_only
        self.files: list[str] = []
        self.videos: dict[str, dict] = {}
        self.questions: list[dict] = []
        self.sft: list[dict] = []
        self.counts: dict[str, int] = {}

    def add_video(self, video: Video) -> None:
        video.write(self.out)
        self.files.append(video.path)
        captions = [self.caption(look) for look in video.looks]
        self.videos[video.path] = {
            "fps": video.fps, "size": list(video.size), "duration_s": video.duration_s,
            "scenes": [{"start_frame": s, "end_frame": e, **look, "caption": c}
                       for (s, e), look, c in zip(video.spans, video.looks, captions)],
        }  # fmt: skip

    def caption(self, look: Look) -> str:
        return caption(look, self.perceivable_only)

    def write_json(self, relative: str, value) -> None:
        path = self.out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        self.files.append(relative)

    def write_parquet(self, relative: str, rows: list[dict], schema: pa.Schema) -> None:
        path = self.out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
        self.files.append(relative)

    def add_question(self, benchmark: str, question_id: str, video: Video, question: SceneQuestion, **extra) -> None:
        self.questions.append({"benchmark": benchmark, "question_id": question_id, "video": video.path,
                               "answer_scene": question.scene, "asked": question.asked, "key": question.key,
                               "answer": question.answer, **extra})  # fmt: skip


def _progress(items, description: str, show: bool):
    return tqdm(items, desc=description, unit="video", disable=not show, leave=False)


STAGE1_VIDEO_PROMPTS = ("Describe the video briefly.", "Give a short caption of this clip.", "What does the video show?")
STAGE1_IMAGE_PROMPTS = ("Render a clear and concise summary of the photo.", "Describe the image briefly.")
SCENE_PROMPT = "<video>\nDescribe this scene in detail."


def write_stage1(corpus: Corpus, rng: np.random.Generator, preset: Preset, show: bool) -> None:
    """Single-scene clips (2-4 s) and still images, each with its caption."""
    records, labels = [], UNLABELLED if preset.perceivable_only else LABELS
    for n in _progress(range(preset.stage1_clips), "stage-1 clips", show):
        look = random_look(rng, labels)
        frames = round(rng.uniform(2.0, 4.0) * preset.fps)
        video = Video(f"train/clips/clip_{n:05d}.mp4", [look], [frames], preset.fps, preset.size, int(rng.integers(2**31)))
        corpus.add_video(video)
        prompt = STAGE1_VIDEO_PROMPTS[n % len(STAGE1_VIDEO_PROMPTS)]
        records.append({"id": f"synth_clip_{n:05d}", "video": video.path.removeprefix("train/"),
                        "conversations": turn_pair(f"<image>\n{prompt}", corpus.caption(look))})  # fmt: skip
    for n in range(preset.stage1_images):
        look = random_look(rng, labels)
        spec = render.SceneSpec(duration_s=1 / preset.fps, **look)
        frame = next(render.render_frames([spec], preset.fps, preset.size, seed=int(rng.integers(2**31))))
        relative = f"train/images/image_{n:05d}.png"
        (corpus.out / relative).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(frame).save(corpus.out / relative)
        corpus.files.append(relative)
        prompt = STAGE1_IMAGE_PROMPTS[n % len(STAGE1_IMAGE_PROMPTS)]
        records.append({"id": f"synth_image_{n:05d}", "image": relative.removeprefix("train/"),
                        "conversations": turn_pair(f"<image>\n{prompt}", corpus.caption(look))})  # fmt: skip
    corpus.write_json("train/stage1.json", records)
    corpus.counts["stage1_records"] = len(records)


def turn_pair(human: str, gpt: str) -> list[dict]:
    """One question-answer exchange in the LLaVA conversation schema."""
    return [{"from": "human", "value": human}, {"from": "gpt", "value": gpt}]


def open_answer(text: str) -> str:
    """A short answer as the SFT records write it: "gray" -> "Gray."."""
    return text[0].upper() + text[1:] + "."


def write_long_video_records(corpus: Corpus, rng: np.random.Generator, preset: Preset, show: bool) -> None:
    """The training videos, their SceneWalk records and their SFT records."""
    scenewalk, sft, positions = [], [], AnswerPositions(rng)
    templates = TRAIN_PHRASINGS if preset.perceivable_only else TRAIN_TEMPLATES
    for n in _progress(range(preset.train_videos), "training videos", show):
        video = plan_video(rng, f"train/videos/video_{n:05d}.mp4", preset)
        questions = questions_about(rng, preset, video, templates, 4, positions, preset.sft_questions)
        corpus.add_video(video)
        relative = video.path.removeprefix("train/")
        sen_sim, lb_sim = caption_similarities(rng, video.looks)
        conversations = [turn for look in video.looks for turn in turn_pair(SCENE_PROMPT, corpus.caption(look))]
        scenewalk.append({"id": f"synth_sw_{n:05d}", "video": relative, "clip_num": len(video.looks),
                          "scenes": video.scene_records(), "sen_sim": sen_sim.tolist(), "lb_sim": lb_sim.tolist(),
                          "conversations": conversations})  # fmt: skip
        sft.append(_sft_record(rng, f"synth_sft_{n:05d}", relative, video, questions))
        corpus.sft.append({"id": sft[-1]["id"], "question_scenes": [q.scene for q in questions]})
    corpus.write_json("train/scenewalk.json", scenewalk)
    corpus.write_json("train/sft.json", sft)
    corpus.counts.update(scenewalk_records=len(scenewalk), sft_records=len(sft),
                         sft_questions=sum(len(r["lb_sim"]) for r in sft))  # fmt: skip


def _sft_record(rng: np.random.Generator, record_id: str, relative: str, video: Video, questions: list[SceneQuestion]) -> dict:
    """Alternating multiple-choice and short-answer turns; one V2T row per question."""
    conversations, rows = [], []
    for i, question in enumerate(questions):
        placeholder = "<image>\n" if i == 0 else ""
        if i % 2 == 0:
            human = f"{placeholder}{question.text}\n{lettered(question.options)}\n{MC_INSTRUCTION}"
            gpt = chr(65 + question.answer_index)
        else:
            human, gpt = f"{placeholder}{question.text}", open_answer(question.answer)
        conversations += turn_pair(human, gpt)
        rows.append(question_similarities(rng, video.looks, question.key, question.scene).tolist())
    return {"id": record_id, "video": relative, "scenes": video.scene_records(), "lb_sim": rows, "conversations": conversations}


# Official schemas, plus the answer-scene columns of the synthetic sets.
ANSWER_FIELDS = [("answer_scene", pa.int64()), ("answer_start_s", pa.float64()), ("answer_end_s", pa.float64())]
VIDEOMME_SCHEMA = pa.schema(
    [(name, pa.string()) for name in ("video_id", "duration", "domain", "sub_category", "url", "videoID", "question_id",
                                      "task_type", "question")]
    + [("options", pa.list_(pa.string())), ("answer", pa.string())] + ANSWER_FIELDS
)  # fmt: skip
MLVU_SCHEMA = pa.schema(
    [("video_name", pa.string()), ("duration", pa.float64()), ("question", pa.string()),
     ("candidates", pa.list_(pa.string())), ("answer", pa.string()), ("task_type", pa.string()),
     ("question_id", pa.string())] + ANSWER_FIELDS
)  # fmt: skip
LVB_SCHEMA = pa.schema(
    [("video_id", pa.string()), ("id", pa.string()), ("video_path", pa.string()), ("subtitle_path", pa.string()),
     ("question", pa.string())] + [(f"option{i}", pa.string()) for i in range(5)]
    + [("correct_choice", pa.int64()), ("duration", pa.float64()), ("duration_group", pa.int64()),
       ("question_category", pa.string()), ("topic_category", pa.string()),
       ("starting_timestamp_for_subtitles", pa.float64())] + ANSWER_FIELDS
)  # fmt: skip
NIAH_SCHEMA = VIDEOMME_SCHEMA.append(pa.field("haystack_minutes", pa.float64())).append(pa.field("needle_depth", pa.int64()))


def videomme_duration(seconds: float) -> str:
    """Video-MME's buckets: short < 2 min, medium 4-15 min, long 30-60 min."""
    return "short" if seconds <= 120 else "medium" if seconds <= 900 else "long"


def lvb_duration_group(seconds: float) -> int:
    """LongVideoBench's groups: 8-15 s, 15-60 s, 180-600 s, 900-3600 s."""
    return next((group for group in (15, 60, 600) if seconds <= group), 3600)


def _answer_columns(video: Video, question: SceneQuestion) -> dict:
    start, end = video.seconds(question.scene)
    return {"answer_scene": question.scene, "answer_start_s": start, "answer_end_s": end}


def videomme_row(video: Video, video_id: str, video_name: str, k: int, question: SceneQuestion) -> dict:
    return {"video_id": video_id, "duration": videomme_duration(video.duration_s), "domain": "Life Record",
            "sub_category": "Daily Life", "url": f"synthetic://salova/{video_name}", "videoID": video_name,
            "question_id": f"{video_id}-{k + 1}", "task_type": VIDEOMME_TASK_TYPE[question.asked],
            "question": question.text, "options": [f"{chr(65 + i)}. {o}" for i, o in enumerate(question.options)],
            "answer": chr(65 + question.answer_index), **_answer_columns(video, question)}  # fmt: skip


def write_videomme(corpus: Corpus, rng: np.random.Generator, preset: Preset, show: bool) -> None:
    rows, positions = [], AnswerPositions(rng)
    for n in _progress(range(preset.benchmark_videos), "videomme", show):
        name = f"synth_vmme_{n:04d}"
        video = plan_video(rng, f"videomme/data/{name}.mp4", preset.held_out(), share=0.7)
        questions = questions_about(rng, preset, video, HELD_OUT_TEMPLATES, 4, positions, preset.benchmark_questions)
        corpus.add_video(video)
        for k, question in enumerate(questions):
            rows.append(videomme_row(video, f"{n + 1:03d}", name, k, question))
            corpus.add_question("videomme", rows[-1]["question_id"], video, question)
    corpus.write_parquet("videomme/test-00000-of-00001.parquet", rows, VIDEOMME_SCHEMA)
    corpus.counts["videomme_questions"] = len(rows)


def write_mlvu(corpus: Corpus, rng: np.random.Generator, preset: Preset, show: bool) -> None:
    rows, positions = [], AnswerPositions(rng)
    for n in _progress(range(preset.benchmark_videos), "mlvu", show):
        name = f"synth_mlvu_{n:04d}.mp4"
        video = plan_video(rng, f"mlvu/{name}", preset.held_out(), share=0.7)
        questions = questions_about(rng, preset, video, HELD_OUT_TEMPLATES, 4, positions, preset.benchmark_questions)
        corpus.add_video(video)
        for k, question in enumerate(questions):
            listed = "".join(f"\n({chr(65 + i)}) {o}" for i, o in enumerate(question.options))
            rows.append({"video_name": name, "duration": video.duration_s, "question": f"{question.text}{listed}\n",
                         "candidates": list(question.options), "answer": chr(65 + question.answer_index),
                         "task_type": "needle", "question_id": f"synth_mlvu_{n:04d}_{k}",
                         **_answer_columns(video, question)})  # fmt: skip
            corpus.add_question("mlvu", rows[-1]["question_id"], video, question)
    corpus.write_parquet("mlvu/test-00000-of-00001.parquet", rows, MLVU_SCHEMA)
    corpus.counts["mlvu_questions"] = len(rows)


def write_longvideobench(corpus: Corpus, rng: np.random.Generator, preset: Preset, show: bool) -> None:
    rows, positions = [], AnswerPositions(rng)
    for n in _progress(range(preset.benchmark_videos), "longvideobench", show):
        video_id = f"synth_lvb_{n:04d}"
        video = plan_video(rng, f"longvideobench/videos/{video_id}.mp4", preset.held_out(), share=0.7)
        questions = questions_about(rng, preset, video, HELD_OUT_TEMPLATES, 5, positions, preset.benchmark_questions)
        corpus.add_video(video)
        corpus.write_json(f"longvideobench/subtitles/{video_id}_en.json", [])
        for k, question in enumerate(questions):
            options = list(question.options) + ["N/A"] * (5 - len(question.options))
            rows.append({"video_id": video_id, "id": f"{video_id}_{k}", "video_path": f"{video_id}.mp4",
                         "subtitle_path": f"{video_id}_en.json", "question": question.text,
                         **{f"option{i}": o for i, o in enumerate(options)}, "correct_choice": question.answer_index,
                         "duration": video.duration_s, "duration_group": lvb_duration_group(video.duration_s),
                         "question_category": "S2A", "topic_category": "SY-Synthetic-Scenes",
                         "starting_timestamp_for_subtitles": 0.0, **_answer_columns(video, question)})  # fmt: skip
            corpus.add_question("longvideobench", rows[-1]["id"], video, question)
    corpus.write_json("longvideobench/lvb_val.json", rows)
    corpus.write_parquet("longvideobench/validation-00000-of-00001.parquet", rows, LVB_SCHEMA)
    corpus.counts["longvideobench_questions"] = len(rows)


def haystack_frames(rng: np.random.Generator, minutes: float, fps: int) -> list[int]:
    """Frames per scene of a haystack filling ``minutes``: scenes of 8-30 s, 18 s on average."""
    total = round(minutes * 60 * fps)
    return split_frames(rng, total, max(1, total // round(18 * fps)), round(8 * fps))


def haystack(rng: np.random.Generator, minutes: float, fps: int, needle: Look) -> tuple[list[Look], list[int]]:
    """Scenes of 8-30 s filling ``minutes``; a third of them copy the needle's shape and
    background (distractors), none uses a needle label."""
    frames = haystack_frames(rng, minutes, fps)
    looks: list[Look] = []
    while len(looks) < len(frames):
        look = random_look(rng)
        if rng.random() < 1 / 3:
            look.update(shape=needle["shape"], background=needle["background"])
        if _drawable(look, looks[-1] if looks else None):
            looks.append(look)
    return looks, frames


def perceivable_haystack(rng: np.random.Generator, minutes: float, fps: int, needle: Look) -> tuple[list[Look], list[int]]:
    """Scenes of 8-30 s filling ``minutes`` that never show the needle's background as a
    background nor its shape colour as a shape colour, so each names the needle alone; a third
    of them are look-alikes (the needle's shape and motion, and one of its colours in the other
    role: a red background where the needle has a red shape)."""
    frames = haystack_frames(rng, minutes, fps)
    looks: list[Look] = []
    while len(looks) < len(frames):
        look = random_look(rng, UNLABELLED)
        if rng.random() < 1 / 3:
            swapped = ("background", "shape_color")[int(rng.integers(2))]
            look.update(shape=needle["shape"], motion=needle["motion"], **{swapped: needle[other_colour(swapped)]})
        own_colours = look["background"] != needle["background"] and look["shape_color"] != needle["shape_color"]
        if own_colours and _drawable(look, looks[-1] if looks else None):
            looks.append(look)
    return looks, frames


def niah_haystack(rng: np.random.Generator, preset: Preset, minutes: float, index: int,
                  positions: AnswerPositions) -> tuple[Look, list[Look], list[int], list[SceneQuestion]]:  # fmt: skip
    """One haystack of ``minutes``, its needle and the two needle questions (needle last in
    the scene list). All attributes: the needle carries a label found nowhere else and the
    questions name it by it. Perceivable-only: each question names the needle by one of its
    colours, which no haystack scene shows in that role, and asks the other colour."""
    if preset.perceivable_only:
        needle = random_look(rng, UNLABELLED)
        looks, frames = perceivable_haystack(rng, minutes, preset.niah_fps, needle)
        keys = [("background", {"shape_color": needle["shape_color"]}), ("shape_color", {"background": needle["background"]})]
    else:
        needle = random_look(rng, labels=[NEEDLE_LABELS[index % len(NEEDLE_LABELS)]])
        looks, frames = haystack(rng, minutes, preset.niah_fps, needle)
        keys = [(asked, {"label": needle["label"]}) for asked in ("shape_color", "motion")]
    questions = [make_question(rng, looks + [needle], len(looks), asked, HELD_OUT_TEMPLATES, 4, positions, key)
                 for asked, key in keys]  # fmt: skip
    return needle, looks, frames, questions


def write_niah(corpus: Corpus, rng: np.random.Generator, preset: Preset, show: bool) -> None:
    """For each haystack length, ``niah_needles`` haystacks, each with its own needle scene
    (10 s) inserted between scenes at each depth; a needle's two questions are the same at
    every depth (niah_haystack). With all attributes the needle's background is redrawn to
    differ from its neighbours; a perceivable-only haystack never shows the needle's background."""
    hay_keys = [(minutes, index) for minutes in preset.niah_minutes for index in range(preset.niah_needles)]
    rows, settings = [], [(key, depth) for key in hay_keys for depth in preset.niah_depths]
    needle_frames = round(10 * preset.niah_fps)
    positions = AnswerPositions(rng)
    hays = {key: niah_haystack(rng, preset, key[0], index, positions) for index, key in enumerate(hay_keys)}
    for n, ((minutes, needle_index), depth) in enumerate(_progress(settings, "niah", show)):
        needle, looks, frames, questions = hays[minutes, needle_index]
        at = int(depth / 100 * len(looks) + 0.5)  # scene boundary nearest to the depth
        if not preset.perceivable_only:
            neighbours = [looks[i]["background"] for i in (at - 1, at) if 0 <= i < len(looks)]
            needle = dict(needle, background=_pick(rng, COLORS, exclude=neighbours + [needle["shape_color"]]))
        name = f"synth_niah_{n:04d}"
        video = Video(f"niah/data/{name}.mp4", looks[:at] + [needle] + looks[at:],
                      frames[:at] + [needle_frames] + frames[at:], preset.niah_fps, preset.size, int(rng.integers(2**31)))  # fmt: skip
        corpus.add_video(video)
        for k, question in enumerate(replace(question, scene=at) for question in questions):
            rows.append(videomme_row(video, f"{n + 1:03d}", name, k, question)
                        | {"haystack_minutes": float(minutes), "needle_depth": depth})  # fmt: skip
            corpus.add_question("niah", rows[-1]["question_id"], video, question, haystack_minutes=minutes, needle_depth=depth)
    corpus.write_parquet("niah/test-00000-of-00001.parquet", rows, NIAH_SCHEMA)
    corpus.counts["niah_questions"] = len(rows)


# ---------------------------------------------------------------------------------------
# Whole runs
# ---------------------------------------------------------------------------------------

PARTS = (  # (writer, does the preset ask for it); part i draws from its own stream [seed, i]
    (write_stage1, lambda p: p.stage1_clips + p.stage1_images > 0),
    (write_long_video_records, lambda p: p.train_videos > 0),
    (write_videomme, lambda p: p.benchmark_videos > 0),
    (write_mlvu, lambda p: p.benchmark_videos > 0),
    (write_longvideobench, lambda p: p.benchmark_videos > 0),
    (write_niah, lambda p: len(p.niah_minutes) > 0),
)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def generate(preset: Preset | str, out: str | Path, seed: int = 0, show_progress: bool = True) -> dict:
    """Write the corpus of ``preset`` under ``out``; return the manifest."""
    preset = configure(preset) if isinstance(preset, str) else preset
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    corpus = Corpus(out, preset.perceivable_only)
    for number, (write, wanted) in enumerate(PARTS):
        if wanted(preset):
            write(corpus, np.random.default_rng([seed, number]), preset, show_progress)
    corpus.counts["videos"] = len(corpus.videos)
    corpus.write_json("ground_truth.json", {"videos": corpus.videos, "questions": corpus.questions, "sft": corpus.sft})
    manifest = {
        "generator": "salova.data.synth",
        "preset": preset.name,
        "seed": seed,
        "parameters": asdict(preset),
        "counts": corpus.counts,
        "files": {relative: _sha256(out / relative) for relative in sorted(corpus.files)},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT, e.g. 64x48")
    return int(width), int(height)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m salova.data.synth", description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", required=True, choices=sorted(PRESETS))
    parser.add_argument("--out", required=True, type=Path, help="output folder (created)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=_size, help="frame size WIDTHxHEIGHT, even (default 64x48)")
    parser.add_argument("--fps", type=int, help="frame rate of the training and benchmark videos")
    parser.add_argument("--video-seconds", type=float, nargs=2, metavar=("MIN", "MAX"), help="video length range, 10..3600 s")
    parser.add_argument("--scenes", type=int, nargs=2, metavar=("MIN", "MAX"), help="scene count range per video")
    parser.add_argument("--train-videos", type=int, help="number of training videos (stages 1.5 and 2)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    try:
        preset = configure(args.preset, args.size, args.fps, args.video_seconds and tuple(args.video_seconds),
                           args.scenes and tuple(args.scenes), args.train_videos)  # fmt: skip
    except ConfigError as error:
        parser.error(str(error))
    manifest = generate(preset, args.out, args.seed, show_progress=not args.quiet)
    counts = ", ".join(f"{key} {value}" for key, value in manifest["counts"].items())
    print(f"{args.out}: preset {preset.name}, seed {args.seed}: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
