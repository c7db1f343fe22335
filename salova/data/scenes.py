"""Scene boundaries of a video, found online while it is decoded.

Detector: PySceneDetect's `AdaptiveDetector` (the content detector family). Its
threshold is per video and per moment: a frame is a cut when its HSV content
change is `adaptive_threshold` times the mean change of its `window_width`
neighbours on each side (and at least `min_content_val`). A video with a lot
of camera motion raises its own bar, a static one lowers it, with no first
pass over the file, so the video is still decoded once. `ContentDetector`
with one fixed threshold for every video was the alternative; it needs either
a global threshold (wrong for some videos) or a statistics pass before
detection (a second decode).

The detector sees small copies of every frame (`frame_width` pixels wide). It
confirms a cut `window_width` frames late; `SceneSegmenter.latency` says how
far behind the decoder the scene of a frame is final.

Scenes longer than `max_scene_s` are split at multiples of the sampling stride
from the scene start, so frames stay anchored at each scene's start.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np
from scenedetect import AdaptiveDetector, FrameTimecode

from salova.errors import ConfigError, RecordError


@dataclass(frozen=True)
class Scene:
    start_frame: int  # first frame (index in presentation order)
    end_frame: int  # one past the last frame
    start_time: float  # seconds, presentation time of start_frame
    end_time: float  # seconds, presentation time of end_frame (end of the video for the last scene)


@dataclass(frozen=True)
class DetectorSettings:
    adaptive_threshold: float = 3.0
    min_content_val: float = 15.0
    window_width: int = 2  # frames each side; also the confirmation delay
    min_scene_s: float = 1.0
    max_scene_s: float | None = 300.0  # None: never split
    frame_width: int = 128  # width of the copies the detector sees

    def __post_init__(self):
        if self.window_width < 1:
            raise ConfigError(f"DetectorSettings.window_width: must be >= 1, got {self.window_width}")
        if self.min_scene_s < 0:
            raise ConfigError(f"DetectorSettings.min_scene_s: must be >= 0, got {self.min_scene_s}")
        if self.max_scene_s is not None and self.max_scene_s <= 0:
            raise ConfigError(f"DetectorSettings.max_scene_s: must be > 0 or None, got {self.max_scene_s}")
        if self.frame_width < 8:
            raise ConfigError(f"DetectorSettings.frame_width: must be >= 8, got {self.frame_width}")


def detector_frame(rgb: np.ndarray, width: int) -> np.ndarray:
    """(H, W, 3) RGB uint8 -> small (h, w, 3) BGR uint8 copy for the detector,
    w = min(width, W).
    Bilinear down to twice the target, then area averaging: close to a plain area
    resize and several times faster on large frames."""
    width = min(width, rgb.shape[1])
    height = max(2, round(rgb.shape[0] * width / rgb.shape[1]))
    if rgb.shape[1] > 2 * width and rgb.shape[0] > 2 * height:
        rgb = cv2.resize(rgb, (2 * width, 2 * height), interpolation=cv2.INTER_LINEAR)
    small = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(small[:, :, ::-1])


def max_scene_frames(settings: DetectorSettings, avg_fps: float, stride: int) -> int | None:
    """The longest scene in frames: a whole number of strides."""
    if settings.max_scene_s is None:
        return None
    return max(1, math.ceil(settings.max_scene_s * avg_fps / stride)) * stride


class SceneSegmenter:
    """Feed the detector copies of the frames (`detector_frame`) in order; get back
    frames whose scene is final, as (frame_index, scene_start) pairs, `latency`
    frames behind the input."""

    def __init__(self, settings: DetectorSettings, avg_fps: float, stride: int):
        self.settings = settings
        self.fps = float(avg_fps)
        self.max_len = max_scene_frames(settings, avg_fps, stride)
        min_len = round(settings.min_scene_s * avg_fps)
        self.detector = AdaptiveDetector(
            adaptive_threshold=settings.adaptive_threshold,
            min_scene_len=min_len,
            window_width=settings.window_width,
            min_content_val=settings.min_content_val,
        )
        self.latency = settings.window_width
        self.cuts: set[int] = set()
        self.pending: deque[int] = deque()
        self.starts: list[int] = []

    def push(self, index: int, small: np.ndarray) -> list[tuple[int, int]]:
        found = self.detector.process_frame(FrameTimecode(index, fps=self.fps), small)
        self.cuts.update(cut.frame_num for cut in found)
        self.pending.append(index)
        final = []
        while self.pending and self.pending[0] <= index - self.latency:
            final.append(self._finalize(self.pending.popleft()))
        return final

    def finish(self) -> list[tuple[int, int]]:
        final = [self._finalize(index) for index in self.pending]
        self.pending.clear()
        return final

    def _finalize(self, index: int) -> tuple[int, int]:
        if not self.starts:
            self.starts.append(index)
        elif index in self.cuts or (self.max_len and index - self.starts[-1] >= self.max_len):
            self.starts.append(index)
        return index, self.starts[-1]

    def scene_ranges(self, num_frames: int) -> list[tuple[int, int]]:
        ends = self.starts[1:] + [num_frames]
        return list(zip(self.starts, ends))


class GivenScenes:
    """Scenes fixed in advance (a record's frame ranges): no detection (`small` is
    ignored), no delay.
    Frames outside every scene get scene_start None and are never sampled."""

    latency = 0

    def __init__(self, ranges: list[tuple[int, int]]):
        self.ranges = ranges
        self.position = 0

    def push(self, index: int, small) -> list[tuple[int, int | None]]:
        while self.position < len(self.ranges) and index >= self.ranges[self.position][1]:
            self.position += 1
        if self.position < len(self.ranges) and index >= self.ranges[self.position][0]:
            return [(index, self.ranges[self.position][0])]
        return [(index, None)]

    def finish(self) -> list:
        return []

    def scene_ranges(self, num_frames: int) -> list[tuple[int, int]]:
        return [(start, min(end, num_frames)) for start, end in self.ranges]


def check_ranges(ranges: list[tuple[int, int]], source: str) -> list[tuple[int, int]]:
    """Given scene ranges must be non-empty, in order and not overlap (gaps are allowed)."""
    if not ranges:
        raise RecordError(f"{source}: scenes: empty list")
    for i, (start, end) in enumerate(ranges):
        if not 0 <= start < end:
            raise RecordError(f"{source}: scenes[{i}]: empty or negative frame range [{start}, {end})")
        if i and start < ranges[i - 1][1]:
            raise RecordError(f"{source}: scenes[{i}].start_frame: {start} overlaps the previous scene")
    return ranges


def scenes_from_record(record_scenes: list[dict], fps: float, source: str = "record") -> list[Scene]:
    """Reference records' scenes ({start_frame, end_frame, start_fps, end_fps}, frame
    indices at their own fps) -> Scenes with frame indices at `fps`. Times are
    nominal (frame / fps); decode_video replaces them with the frames' real times."""
    ranges = []
    for i, entry in enumerate(record_scenes):
        try:
            start, end = int(entry["start_frame"]), int(entry["end_frame"])
            start_fps = float(entry.get("start_fps", fps))
            end_fps = float(entry.get("end_fps", start_fps))
        except (KeyError, TypeError, ValueError) as error:
            raise RecordError(
                f"{source}: scenes[{i}]: needs integer start_frame and end_frame ({error!r})"
            ) from None
        if start_fps <= 0 or end_fps <= 0:
            raise RecordError(
                f"{source}: scenes[{i}].start_fps/end_fps: must be > 0, got {start_fps}/{end_fps}"
            )
        ranges.append((round(start * fps / start_fps), round(end * fps / end_fps)))
    return [Scene(start, end, start / fps, end / fps) for start, end in check_ranges(ranges, source)]
