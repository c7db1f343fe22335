"""Synthetic test videos: each scene is a flat background, one moving shape and
a printed label, with a hard cut between scenes. Written as real H.264 mp4
files with PyAV, deterministic for a seed, small and fast enough for tests.

Frame ranges returned by the writers are half-open `(start_frame, end_frame)`,
the convention of the reference scene records (`range(start, end, stride)`).

Also here: the odd files the decoder tests need (variable frame rate,
audio only, a single frame)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from salova.errors import ConfigError

# Clearly distinct colours (RGB); names are used in captions. Chosen so that a cut
# between any two backgrounds changes the frame by >= 25 in PySceneDetect's
# content score (mean |dH|, |dS|, |dV| in OpenCV HSV; tests/test_render.py checks).
PALETTE: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "gray": (128, 128, 128),
    "red": (190, 0, 0),
    "orange": (255, 128, 0),
    "yellow": (255, 255, 100),
    "green": (0, 170, 0),
    "cyan": (80, 255, 255),
    "blue": (0, 0, 200),
    "magenta": (255, 0, 255),
    "purple": (110, 30, 140),
    "brown": (110, 60, 20),
}
SHAPES = ("circle", "square", "triangle", "diamond", "cross", "ring")
# Direction of travel in (dx, dy) per scene, as fractions of the free span.
MOTIONS: dict[str, tuple[int, int]] = {
    "static": (0, 0),
    "left": (-1, 0),
    "right": (1, 0),
    "up": (0, -1),
    "down": (0, 1),
}
_MOTION_WORDS = {
    "static": "standing still",
    "left": "moving left",
    "right": "moving right",
    "up": "moving up",
    "down": "moving down",
}


@dataclass(frozen=True)
class SceneSpec:
    """One scene of a synthetic video."""

    background: str  # PALETTE name
    shape: str  # one of SHAPES
    shape_color: str  # PALETTE name
    motion: str  # one of MOTIONS
    label: str  # printed text: a digit or a short word
    duration_s: float

    def __post_init__(self):
        for field, value, allowed in (
            ("background", self.background, PALETTE),
            ("shape", self.shape, SHAPES),
            ("shape_color", self.shape_color, PALETTE),
            ("motion", self.motion, MOTIONS),
        ):
            if value not in allowed:
                raise ConfigError(f"SceneSpec.{field}: {value!r} is not one of {sorted(allowed)}")
        if self.shape_color == self.background:
            raise ConfigError(f"SceneSpec.shape_color: {self.shape_color!r} equals the background")
        if not self.duration_s > 0:
            raise ConfigError(f"SceneSpec.duration_s: must be > 0, got {self.duration_s}")

    def caption(self) -> str:
        return (
            f"A {self.shape_color} {self.shape} {_MOTION_WORDS[self.motion]} "
            f'on a {self.background} background, with the label "{self.label}".'
        )

    def num_frames(self, fps: float) -> int:
        return max(1, round(self.duration_s * fps))


def scene_frame_ranges(scenes: list[SceneSpec], fps: float) -> list[tuple[int, int]]:
    """Half-open frame ranges of the scenes, back to back from frame 0."""
    ranges, start = [], 0
    for scene in scenes:
        end = start + scene.num_frames(fps)
        ranges.append((start, end))
        start = end
    return ranges


# ---- drawing ---------------------------------------------------------------


def _shape_mask(shape: str, side: int) -> np.ndarray:  # (side, side) bool
    y, x = np.mgrid[0:side, 0:side] + 0.5
    c, r = side / 2, side / 2
    dx, dy = np.abs(x - c), np.abs(y - c)
    if shape == "circle":
        return dx**2 + dy**2 <= r**2
    if shape == "square":
        return np.ones((side, side), bool)
    if shape == "triangle":  # apex up
        return dx <= (y / side) * r
    if shape == "diamond":
        return dx + dy <= r
    if shape == "cross":
        return (dx <= r / 3) | (dy <= r / 3)
    return (dx**2 + dy**2 <= r**2) & (dx**2 + dy**2 >= (0.55 * r) ** 2)  # ring


@lru_cache(maxsize=64)
def _label_mask(label: str, height: int) -> np.ndarray:  # (h, w) bool
    font = ImageFont.load_default(size=max(8, height))
    left, top, right, bottom = font.getbbox(label)
    image = Image.new("L", (max(1, right - left), max(1, bottom - top)), 0)
    ImageDraw.Draw(image).text((-left, -top), label, fill=255, font=font)
    return np.asarray(image) > 127


def _label_color(background: str) -> tuple[int, int, int]:
    r, g, b = PALETTE[background]
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 128 else (255, 255, 255)


def _paste(frame: np.ndarray, mask: np.ndarray, top: int, left: int, color) -> None:
    """Colour the pixels of `mask` placed at (top, left), clipped to the frame."""
    h, w = frame.shape[:2]
    mh, mw = mask.shape
    y0, x0 = max(0, top), max(0, left)
    y1, x1 = min(h, top + mh), min(w, left + mw)
    if y1 <= y0 or x1 <= x0:
        return
    sub = mask[y0 - top : y1 - top, x0 - left : x1 - left]
    frame[y0:y1, x0:x1][sub] = color


class _SceneDrawer:
    """Draws the frames of one scene; the shape's start point comes from the seed."""

    def __init__(self, spec: SceneSpec, size: tuple[int, int], num_frames: int, rng: np.random.Generator):
        width, height = size
        self.spec, self.num_frames = spec, num_frames
        self.background = np.empty((height, width, 3), np.uint8)
        self.background[:] = PALETTE[spec.background]
        side = max(4, min(width, height) // 3)
        self.shape_mask = _shape_mask(spec.shape, side)
        self.span = (width - side, height - side)
        self.start = (rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8))  # fractions of the span
        label = _label_mask(spec.label, max(8, height // 3))
        self.label_mask = label[:, : width - 2]
        self.label_color = _label_color(spec.background)

    def frame(self, i: int) -> np.ndarray:  # (H, W, 3) uint8
        frame = self.background.copy()
        _paste(frame, self.label_mask, 1, 1, self.label_color)
        dx, dy = MOTIONS[self.spec.motion]
        progress = i / max(1, self.num_frames - 1) - 0.5  # -0.5 .. 0.5 across the scene
        fx = min(1.0, max(0.0, self.start[0] + 0.6 * dx * progress))
        fy = min(1.0, max(0.0, self.start[1] + 0.6 * dy * progress))
        _paste(
            frame,
            self.shape_mask,
            round(fy * self.span[1]),
            round(fx * self.span[0]),
            PALETTE[self.spec.shape_color],
        )
        return frame


def render_frames(scenes: list[SceneSpec], fps: float, size: tuple[int, int], seed: int = 0):
    """Yield the RGB frames (H, W, 3) uint8 of the scenes in order."""
    rng = np.random.default_rng(seed)
    for spec, (start, end) in zip(scenes, scene_frame_ranges(scenes, fps)):
        drawer = _SceneDrawer(spec, size, end - start, rng)
        for i in range(end - start):
            yield drawer.frame(i)


# ---- writers ---------------------------------------------------------------


def _check_size(size: tuple[int, int], path) -> tuple[int, int]:
    width, height = size
    if width < 2 or height < 2 or width % 2 or height % 2:
        raise ConfigError(f"{path}: video size must be even and >= 2 for H.264 yuv420p, got {size}")
    return int(width), int(height)


def _add_video_stream(container, codec: str, fps, size, gop: int | None, time_base: Fraction | None = None):
    stream = container.add_stream(codec, rate=fps)
    stream.width, stream.height = size
    stream.pix_fmt = "yuv420p"
    if time_base is not None:
        stream.codec_context.time_base = time_base
    options = {"preset": "ultrafast", "crf": "18"} if codec == "libx264" else {}
    if gop is not None:
        stream.codec_context.gop_size = gop
        if codec == "libx264":
            options["keyint"] = str(gop)
    stream.codec_context.options = options
    return stream


def write_scene_video(
    path,
    scenes: list[SceneSpec],
    fps: int = 30,
    size: tuple[int, int] = (64, 48),
    seed: int = 0,
    codec: str = "libx264",
    gop: int | None = None,
    faststart: bool = False,
) -> list[tuple[int, int]]:
    """Write the scenes as one mp4 with hard cuts; return their half-open frame ranges.
    `gop`: keyframe interval; `faststart`: index (moov) before the media data, as web videos."""
    if not scenes:
        raise ConfigError(f"{path}: write_scene_video needs at least one scene")
    size = _check_size(size, path)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), mode="w", options=options) as container:
        stream = _add_video_stream(container, codec, fps, size, gop)
        for rgb in render_frames(scenes, fps, size, seed):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())
    return scene_frame_ranges(scenes, fps)


def vfr_frame_times(num_frames: int, fps: float, pattern: tuple[float, ...] = (0.5, 1.5)) -> list[float]:
    """Show times (s, millisecond resolution) of a variable-rate video: the gap after
    frame k is `pattern[k % len(pattern)] / fps`, so the mean rate stays near `fps`."""
    times, t = [], 0.0
    for k in range(num_frames):
        times.append(round(t, 3))
        t += pattern[k % len(pattern)] / fps
    return times


def write_vfr_video(
    path,
    scenes: list[SceneSpec],
    fps: int = 30,
    size: tuple[int, int] = (64, 48),
    seed: int = 0,
    pattern: tuple[float, ...] = (0.5, 1.5),
) -> list[tuple[int, int]]:
    """Like `write_scene_video`, but frames are shown at `vfr_frame_times(...)`
    (millisecond time base) instead of a constant rate; returns the frame ranges."""
    if not scenes:
        raise ConfigError(f"{path}: write_vfr_video needs at least one scene")
    size = _check_size(size, path)
    ranges = scene_frame_ranges(scenes, fps)
    times_ms = [round(t * 1000) for t in vfr_frame_times(ranges[-1][1], fps, pattern)]
    if any(b <= a for a, b in zip(times_ms, times_ms[1:])):
        raise ConfigError(f"{path}: pattern {pattern} at {fps} fps gives frames closer than 1 ms")
    with av.open(str(path), mode="w") as container:
        stream = _add_video_stream(container, "libx264", fps, size, None, Fraction(1, 1000))
        for rgb, t in zip(render_frames(scenes, fps, size, seed), times_ms):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return ranges


def write_single_frame_video(path, scene: SceneSpec, size: tuple[int, int] = (64, 48), fps: int = 30) -> None:
    """A video of exactly one frame."""
    one_frame = SceneSpec(
        scene.background, scene.shape, scene.shape_color, scene.motion, scene.label, 1 / fps
    )
    write_scene_video(path, [one_frame], fps=fps, size=size)


def write_audio_only(path, duration_s: float = 1.0, sample_rate: int = 16000) -> None:
    """An mp4 holding a single AAC audio stream (a 440 Hz tone), no video."""
    samples = np.arange(round(duration_s * sample_rate)) / sample_rate
    tone = (0.2 * np.sin(2 * np.pi * 440 * samples)).astype(np.float32)[None]  # (1, n)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=sample_rate)
        stream.layout = "mono"
        chunk = 1024
        for start in range(0, tone.shape[1], chunk):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(tone[:, start : start + chunk]), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = sample_rate, start
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
