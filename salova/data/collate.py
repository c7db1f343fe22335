"""Training samples of the three stages, and the collator that batches them into the
keyword arguments of `SalovaForCausalLM.forward`.

Stage 1 (`pretrain`), one record = one image or short video = one segment:
    LLM target  plain template: <image> caption
    router      the caption; in-batch (every caption against every sample's segment)
Stage 1.5 (`longvideo`), one record = one long video, all its scenes:
    router      up to `max_queries` scene captions, drawn with the sample's generator;
                labels (sen_sim > t2t) | (lb_sim > v2t) per caption row
    LLM target  plain template: <image> + the FIRST drawn caption;
                Focus = that caption's positive scenes, the K best by V2T
Stage 2 (`sft`), one record = one video with a multi-turn QA conversation:
    LLM target  the backbone's chat template, every turn
    router      up to `max_queries` of its questions; labels lb_sim > v2t, argmax fallback
    Focus       the positives of those questions, the K best by their best V2T

A record whose media cannot be read raises a SalovaError naming it; the training stream
(training/stream.py) skips it with a warning and counts it.
"""

from __future__ import annotations

import copy
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from salova.chat import get_template
from salova.data.records import (
    LabelThresholds,
    Where,
    focus_scenes,
    load_scenewalk,
    load_sft,
    parse_stage1,
    read_rows,
)
from salova.data.scenes import Scene
from salova.data.transforms import normalize_frames, resize_frame
from salova.data.video import SamplerSettings, decode_video
from salova.errors import ConfigError, RecordError, VideoError
from salova.lru import ByteLRU

IGNORE_INDEX = -100
WHOLE_CLIP = [Scene(0, 2**62, 0.0, 0.0)]  # one scene covering the whole video (clipped to its length)


@dataclass(frozen=True)
class DataSettings:
    sampler: SamplerSettings
    thresholds: LabelThresholds
    max_queries: int = 16
    model_max_length: int = 8192
    decoded_cache_mb: float = 0  # decoded videos kept in memory for their next epoch (salova.lru)

    @classmethod
    def for_config(cls, config, model_max_length: int = 8192, decoded_cache_mb: float = 0) -> DataSettings:
        thresholds = LabelThresholds(t2t=config.t2t_threshold, v2t_longvideo=config.v2t_threshold_longvideo,
                                     v2t_sft=config.v2t_threshold_sft, focus_k=config.focus_k)
        return cls(SamplerSettings.for_config(config), thresholds, config.max_queries, model_max_length,
                   decoded_cache_mb)


# ---------------------------------------------------------------- media -> pixels


def decoded_frames(path: Path, settings: SamplerSettings, scenes) -> tuple[np.ndarray, tuple[int, ...]]:
    """Decode `path` with the given scenes -> frames (sum F_i, S, S, 3) uint8, frames_per_scene (F_1..F_T)."""
    decoded = decode_video(path, settings, scenes=scenes, progress=False)
    empty = [i for i, n in enumerate(decoded.frames_per_scene) if n == 0]
    if empty:
        raise VideoError(f"{path}: scenes {empty} have no frame (the video has {decoded.frames_decoded} frames)")
    return decoded.frames, tuple(decoded.frames_per_scene)


def video_pixels(path: Path, settings: SamplerSettings, scenes) -> tuple[torch.Tensor, list[int]]:
    """Decode `path` with the given scenes -> pixels (sum F_i, 3, S, S), frames_per_scene [F_1..F_T]."""
    frames, counts = decoded_frames(path, settings, scenes)
    return normalize_frames(frames, settings.tower_family), list(counts)


def image_pixels(path: Path, settings: SamplerSettings) -> tuple[torch.Tensor, list[int]]:
    """An image as a one-frame segment -> pixels (1, 3, S, S), [1]."""
    try:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError) as error:
        raise VideoError(f"{path}: cannot read the image ({error})") from None
    frame = resize_frame(rgb, settings.image_size, settings.tower_family)
    return normalize_frames(frame[None], settings.tower_family), [1]


def record_scenes(record) -> list[dict]:
    return [asdict(scene) for scene in record.scenes]


# ---------------------------------------------------------------- stage datasets


class StageDataset:
    """Records of one stage; `sample(index, rng)` builds one training sample."""

    def __init__(self, records: list, processor, settings: DataSettings):
        self.records, self.processor, self.settings = records, processor, settings
        self.plain = copy.copy(processor)  # stages 1 and 1.5 train on the plain template
        self.plain.template = get_template("plain")
        self.decoded = ByteLRU(settings.decoded_cache_mb)

    def __len__(self) -> int:
        return len(self.records)

    def describe(self, index: int) -> str:
        record = self.records[index]
        return f"{record.source} ({getattr(record, 'video', None) or getattr(record, 'media', '')})"

    def _text(self, processor, turns, source: str) -> tuple[torch.Tensor, torch.Tensor]:
        """ids, labels (N,), cut at model_max_length; a sample left with no trained token is refused."""
        ids, labels = processor.conversation([(turn.speaker, turn.text) for turn in turns])
        limit = self.settings.model_max_length
        ids, labels = ids[:limit], labels[:limit]
        if not (labels != IGNORE_INDEX).any():
            raise RecordError(f"{source}: field 'conversations' leaves no answer token within "
                              f"model_max_length = {limit}")
        return ids, labels

    def _video_pixels(self, path: Path, scenes) -> tuple[torch.Tensor, list[int]]:
        """`video_pixels`, keeping the decoded frames for the video's next epoch (within the budget)."""
        sampler = self.settings.sampler
        frames, counts = self.decoded.get((str(path), repr(scenes)), lambda: decoded_frames(path, sampler, scenes))
        return normalize_frames(frames, sampler.tower_family), list(counts)

    def _sample(self, ids, labels, pixels, frames_per_scene, queries, router_labels, focus) -> dict:
        query_ids, query_mask = self.processor.queries(list(queries))
        return dict(input_ids=ids, labels=labels, pixels=pixels, frames_per_scene=frames_per_scene,
                    query_ids=query_ids, query_mask=query_mask, router_labels=router_labels,
                    focus=torch.as_tensor(focus, dtype=torch.long))


class PretrainDataset(StageDataset):
    in_batch_router = True

    def sample(self, index: int, rng: np.random.Generator) -> dict:
        record = self.records[index]
        if record.media_kind == "image":
            pixels, frames = image_pixels(record.media, self.settings.sampler)
        else:
            pixels, frames = self._video_pixels(record.media, WHOLE_CLIP)
        ids, labels = self._text(self.plain, record.conversations, record.source)
        return self._sample(ids, labels, pixels, frames, [record.caption], None, [0])


class LongVideoDataset(StageDataset):
    in_batch_router = False

    def sample(self, index: int, rng: np.random.Generator) -> dict:
        record = self.records[index]
        num_scenes = len(record.scenes)
        drawn = rng.choice(num_scenes, size=min(num_scenes, self.settings.max_queries), replace=False)  # (N_s,)
        labels = record.router_labels(self.settings.thresholds).labels[drawn]  # (N_s, T) bool
        target = int(drawn[0])  # the caption the LLM must write
        focus = focus_scenes(labels[0], record.lb_sim[target], self.settings.thresholds.focus_k)
        pixels, frames = self._video_pixels(record.video, record_scenes(record))
        turns = record.conversations[2 * target: 2 * target + 2]
        ids, lm_labels = self._text(self.plain, turns, record.source)
        captions = [record.captions[i] for i in drawn]
        return self._sample(ids, lm_labels, pixels, frames, captions, torch.from_numpy(labels).float(), focus)


class SFTDataset(StageDataset):
    in_batch_router = False

    def sample(self, index: int, rng: np.random.Generator) -> dict:
        record = self.records[index]
        num_questions = len(record.questions)
        drawn = np.sort(rng.choice(num_questions, size=min(num_questions, self.settings.max_queries), replace=False))
        labels = record.router_labels(self.settings.thresholds).labels[drawn]  # (N_q, T) bool
        best_v2t = record.lb_sim[drawn].max(axis=0)  # (T,) each scene's best V2T over the drawn questions
        focus = focus_scenes(labels.any(axis=0), best_v2t, self.settings.thresholds.focus_k)
        pixels, frames = self._video_pixels(record.video, record_scenes(record))
        ids, lm_labels = self._text(self.processor, record.conversations, record.source)
        questions = [record.questions[i] for i in drawn]
        room = self.settings.max_queries - len(drawn)
        if len(record.router_questions) and room > 0:  # router-only queries fill the rest of max_queries
            extra = np.sort(rng.choice(len(record.router_questions), size=min(room, len(record.router_questions)),
                                       replace=False))
            questions += [record.router_questions[i] for i in extra]
            labels = np.concatenate([labels, record.router_only_labels(self.settings.thresholds).labels[extra]])
        return self._sample(ids, lm_labels, pixels, frames, questions, torch.from_numpy(labels).float(), focus)


def load_stage1_records(path, image_folder, video_folder) -> list:
    """Stage-1 records; image paths resolve under `image_folder`, video paths under `video_folder`
    (either defaults to the other). Media are checked when read, so a missing file is skipped then."""
    records, seen = [], {}
    for index, raw in enumerate(read_rows(path)):
        where = Where(os.fspath(path), index, str(raw.get("id")) if isinstance(raw, dict) else None)
        root = (video_folder or image_folder) if isinstance(raw, dict) and "video" in raw else (image_folder or video_folder)
        record = parse_stage1(raw, where, media_root=root, check_media=False)
        if record.id in seen:
            raise where.error("id", f"repeats the id of record {seen[record.id]}")
        seen[record.id] = index
        records.append(record)
    return records


def build_dataset(stage: str, data_path, image_folder, video_folder, processor, settings: DataSettings) -> StageDataset:
    """The dataset of `stage` ("pretrain", "longvideo", "sft")."""
    if image_folder is None and video_folder is None:
        raise ConfigError(f"{data_path}: set image_folder or video_folder (the media paths resolve under them)")
    if stage == "pretrain":
        return PretrainDataset(load_stage1_records(data_path, image_folder, video_folder), processor, settings)
    if video_folder is None:
        raise ConfigError(f"{data_path}: stage {stage!r} needs video_folder")
    if stage == "longvideo":
        return LongVideoDataset(load_scenewalk(data_path, video_folder, check_media=False), processor, settings)
    if stage == "sft":
        return SFTDataset(load_sft(data_path, video_folder, check_media=False), processor, settings)
    raise ConfigError(f"unknown stage {stage!r}")


# ---------------------------------------------------------------- batching


class Collator:
    """Samples -> (forward kwargs, info). Right padding; the attention mask comes from the
    sequence lengths, never from comparing ids with the pad id."""

    def __init__(self, pad_token_id: int, in_batch_router: bool):
        self.pad_token_id, self.in_batch_router = pad_token_id, in_batch_router

    def __call__(self, samples: list[dict]) -> tuple[dict, dict]:
        if not samples:
            raise RecordError("an empty batch")
        lengths = [len(s["input_ids"]) for s in samples]
        longest = max(lengths)
        input_ids = torch.stack([F.pad(s["input_ids"], (0, longest - n), value=self.pad_token_id)
                                 for s, n in zip(samples, lengths)])  # (B, N)
        labels = torch.stack([F.pad(s["labels"], (0, longest - n), value=IGNORE_INDEX)
                              for s, n in zip(samples, lengths)])  # (B, N)
        attention_mask = (torch.arange(longest)[None] < torch.tensor(lengths)[:, None]).long()  # (B, N)
        kwargs = dict(
            input_ids=input_ids, attention_mask=attention_mask, labels=labels,
            pixel_values=[s["pixels"] for s in samples],
            frames_per_scene=[s["frames_per_scene"] for s in samples],
            query_ids=[s["query_ids"] for s in samples], query_mask=[s["query_mask"] for s in samples],
            router_labels=None if self.in_batch_router else [s["router_labels"] for s in samples],
            focus=[s["focus"] for s in samples], in_batch_router=self.in_batch_router,
        )
        info = {"positions": [s.get("position") for s in samples],
                "skipped": [name for s in samples for name in s.get("skipped", [])]}
        return kwargs, info
