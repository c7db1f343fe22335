"""Decode a video once into the frames the model sees.

One sequential pass over the file, whatever the number of scenes:

    worker thread: backend (PyAV or decord) -> (time, full-resolution RGB frame,
                   small copy for the scene detector)
    main thread:   scene segmenter (online detection on the small copies)
                   -> frames whose scene is final, `latency` frames behind
                   -> every `stride`-th frame from its scene's start is resized
                      for the tower and kept

`stride = round(avg_fps / fps)`, multiplied when the video would give more
than `frame_budget` frames (decided from container metadata before decoding,
recorded in `DecodedVideo.budget`). The detector confirms a cut a few frames
late, so the frames it has not judged yet wait in a short queue; no frame is
kept or dropped before its scene is known. Only that queue holds
full-resolution frames; kept frames are stored at tower size.

The worker hands frames over through a bounded queue. If no frame arrives for
`decode_timeout_s`, decoding is abandoned with a VideoError (a stalled decoder
never hangs the caller).
"""

from __future__ import annotations

import functools
import math
import queue
import sys
import threading
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

import av
import numpy as np
from tqdm.auto import tqdm

from salova.data.scenes import (
    DetectorSettings,
    GivenScenes,
    Scene,
    SceneSegmenter,
    check_ranges,
    detector_frame,
    scenes_from_record,
)
from salova.data.transforms import check_family, resize_frame
from salova.errors import ConfigError, SalovaError, VideoError

BACKEND_CHOICES = ("auto", "pyav", "decord")


@dataclass(frozen=True)
class SamplerSettings:
    fps: float = 1.0  # sampled frames per second of video
    frame_budget: int = 7200  # most frames sampled from one video (stride grows beyond it)
    image_size: int = 384  # tower input side S
    tower_family: str = "siglip"  # "siglip" (plain resize) or "clip" (short side + center crop)
    detector: DetectorSettings = field(default_factory=DetectorSettings)
    decode_timeout_s: float = 60.0  # abandon decoding after this long without a new frame
    backend: str = "auto"  # "auto" (decord if installed, else PyAV), "pyav", "decord"

    def __post_init__(self):
        if not self.fps > 0:
            raise ConfigError(f"SamplerSettings.fps: must be > 0, got {self.fps}")
        if self.frame_budget < 1:
            raise ConfigError(f"SamplerSettings.frame_budget: must be >= 1, got {self.frame_budget}")
        if self.image_size < 1:
            raise ConfigError(f"SamplerSettings.image_size: must be >= 1, got {self.image_size}")
        if not self.decode_timeout_s > 0:
            raise ConfigError(f"SamplerSettings.decode_timeout_s: must be > 0, got {self.decode_timeout_s}")
        if self.backend not in BACKEND_CHOICES:
            raise ConfigError(f"SamplerSettings.backend: {self.backend!r} is not one of {BACKEND_CHOICES}")
        check_family(self.tower_family)

    @classmethod
    def for_config(cls, config, **overrides) -> SamplerSettings:
        """Sampler for a SalovaConfig: its fps, tower family and tower image size."""
        values = dict(
            fps=config.fps,
            tower_family=config.tower_family,
            image_size=int(config.vision_config["image_size"]),
        )
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True)
class FrameBudget:
    requested: int  # SamplerSettings.frame_budget
    estimated_frames: int  # frames at the base stride, from container metadata
    stride_multiplier: int  # 1 when the budget was not needed


@dataclass
class DecodedVideo:
    path: str
    backend: str
    avg_fps: float
    duration_s: float  # end of the last frame
    frames_decoded: int
    stride: int  # applied stride, budget included
    frames: np.ndarray  # (N, S, S, 3) uint8, scene after scene
    timestamps: np.ndarray  # (N,) float64 seconds, from the frames' pts
    frame_indices: np.ndarray  # (N,) int64 frame numbers in presentation order
    scenes: list[Scene]
    frames_per_scene: list[int]  # sum == N
    budget: FrameBudget

    def summary(self) -> dict:
        """Everything but the pixels, JSON-ready."""
        return {
            "path": self.path,
            "backend": self.backend,
            "avg_fps": self.avg_fps,
            "duration_s": self.duration_s,
            "frames_decoded": self.frames_decoded,
            "stride": self.stride,
            "num_frames": int(len(self.frames)),
            "frames_per_scene": list(self.frames_per_scene),
            "scenes": [asdict(scene) for scene in self.scenes],
            "budget": asdict(self.budget),
        }


# ---- backends ---------------------------------------------------------------
# A backend opens the file on construction (raising VideoError), exposes
# avg_fps, frame_count (best estimate before decoding) and declared_frames (the
# container index's frame count, 0 when it has none) and `frames()` yields (time_s, rgb (H, W, 3)
# uint8) in presentation order.


def declared_frame_count(path: Path) -> int:
    """Frames the container's index declares (mp4 sample table), read without decoding."""
    try:
        with av.open(str(path)) as container:
            return container.streams.video[0].frames if container.streams.video else 0
    except (av.error.FFmpegError, OSError):
        return 0


class PyAVBackend:
    name = "pyav"

    def __init__(self, path: Path):
        self.path = path
        try:
            self.container = av.open(str(path))
        except (av.error.FFmpegError, OSError, UnicodeDecodeError) as error:
            raise VideoError(f"{path}: not a readable video container ({error})") from None
        if not self.container.streams.video:
            kinds = [stream.type for stream in self.container.streams]
            self.container.close()
            raise VideoError(f"{path}: no video stream (streams found: {kinds or 'none'})")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "SLICE"
        rate = self.stream.average_rate or self.stream.guessed_rate or self.stream.base_rate
        self.avg_fps = float(rate) if rate else 0.0
        if self.stream.duration is not None:
            duration_s = float(self.stream.duration * self.stream.time_base)
        else:
            duration_s = (self.container.duration or 0) / av.time_base
        self.declared_frames = self.stream.frames
        self.frame_count = self.declared_frames or round(duration_s * self.avg_fps)

    def frames(self):
        start = self.stream.start_time or 0
        try:
            for frame in self.container.decode(self.stream):
                time_s = float((frame.pts - start) * frame.time_base) if frame.pts is not None else math.nan
                yield time_s, frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as error:
            raise VideoError(f"{self.path}: decoding failed ({error})") from None
        finally:
            self.container.close()


class DecordBackend:
    name = "decord"

    def __init__(self, path: Path):
        import decord

        self.path = path
        try:
            self.reader = decord.VideoReader(str(path), ctx=decord.cpu(0))
        except (decord.DECORDError, RuntimeError) as error:
            raise VideoError(f"{path}: not a readable video ({str(error).splitlines()[0]})") from None
        self.avg_fps = float(self.reader.get_avg_fps())
        self.frame_count = len(self.reader)
        self.times = self.reader.get_frame_timestamp(np.arange(self.frame_count)).astype(np.float64)  # (n, 2)
        self.declared_frames = declared_frame_count(path)  # decord's own count stops at the damage

    def frames(self):
        import decord

        try:
            for i in range(self.frame_count):
                yield float(self.times[i, 0]), self.reader.next().asnumpy()
        except (decord.DECORDError, RuntimeError, StopIteration) as error:
            raise VideoError(f"{self.path}: decoding failed ({error})") from None


BACKENDS = {"pyav": PyAVBackend, "decord": DecordBackend}


@functools.cache
def decord_available() -> bool:
    """decord imports (it ships native libraries that can be missing or broken)."""
    try:
        import decord  # noqa: F401
    except Exception:
        return False
    return True


def resolve_backend(name: str) -> str:
    """ "auto" -> decord when it imports, else PyAV."""
    if name not in BACKEND_CHOICES:
        raise ConfigError(f"backend: {name!r} is not one of {BACKEND_CHOICES}")
    if name == "auto":
        return "decord" if decord_available() else "pyav"
    if name == "decord" and not decord_available():
        raise ConfigError("backend: 'decord' is not installed or does not import (pip install decord)")
    return name


# ---- decoding in a worker thread --------------------------------------------

_END = object()


class _Abandoned(Exception):
    """The consumer gave up; the worker stops quietly."""


def _worker(backend_class, path: Path, detector_width, out: queue.Queue, stop: threading.Event) -> None:
    """Open, decode and make the detector's small copies (None when no detection)."""

    def put(item):
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Abandoned

    try:
        backend = backend_class(path)
        put(backend)
        for time_s, rgb in backend.frames():
            put((time_s, rgb, detector_frame(rgb, detector_width) if detector_width else None))
        put(_END)
    except _Abandoned:
        return
    except BaseException as error:  # handed to the caller's thread
        try:
            put(error)
        except _Abandoned:
            return


class _FrameStream:
    """Iterates the worker's output; raises VideoError after `timeout_s` without progress."""

    def __init__(self, backend_class, path: Path, detector_width: int | None, timeout_s: float):
        self.path, self.timeout_s = path, timeout_s
        self.queue: queue.Queue = queue.Queue(maxsize=8)
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=_worker,
            args=(backend_class, path, detector_width, self.queue, self.stop),
            name=f"decode:{path.name}",
            daemon=True,
        )
        self.thread.start()

    def next(self, what: str):
        try:
            item = self.queue.get(timeout=self.timeout_s)
        except queue.Empty:
            self.stop.set()
            raise VideoError(
                f"{self.path}: decoder made no progress for {self.timeout_s} s while {what}"
            ) from None
        if isinstance(item, BaseException):
            self.stop.set()
            if isinstance(item, SalovaError):
                raise item
            raise VideoError(f"{self.path}: decoding failed ({item!r})") from item
        return item

    def close(self) -> None:
        self.stop.set()


# ---- sampling ------------------------------------------------------------------


def plan_stride(avg_fps: float, frame_count: int, settings: SamplerSettings) -> tuple[int, FrameBudget]:
    """Base stride round(avg_fps / fps), multiplied evenly when the video would exceed the budget."""
    base = max(1, round(avg_fps / settings.fps))
    estimated = math.ceil(frame_count / base)
    multiplier = max(1, math.ceil(estimated / settings.frame_budget))
    return base * multiplier, FrameBudget(settings.frame_budget, estimated, multiplier)


def _given_ranges(scenes, avg_fps: float, path: Path) -> list[tuple[int, int]]:
    if not all(isinstance(scene, Scene) for scene in scenes):
        scenes = scenes_from_record(list(scenes), avg_fps, source=str(path))
    return check_ranges([(scene.start_frame, scene.end_frame) for scene in scenes], source=str(path))


def decode_video(
    path,
    settings: SamplerSettings | None = None,
    scenes=None,
    backend: str | None = None,
    progress: bool | None = None,
) -> DecodedVideo:
    """Decode `path` once: scenes (detected, or `scenes` as given: Scene objects or
    reference record dicts) and the frames sampled at `settings.fps` from each
    scene's start, resized for the tower. `progress`: None shows a bar on a tty."""
    settings = settings or SamplerSettings()
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: video file not found")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file (0 bytes)")
    backend_name = resolve_backend(backend or settings.backend)
    detector_width = settings.detector.frame_width if scenes is None else None
    stream = _FrameStream(BACKENDS[backend_name], path, detector_width, settings.decode_timeout_s)
    try:
        return _decode(stream, path, settings, scenes, backend_name, progress)
    finally:
        stream.close()


class _FrameKeeper:
    """Holds decoded frames until their scene is final, then keeps every
    `stride`-th frame from the scene's start, resized for the tower."""

    def __init__(self, settings: SamplerSettings, stride: int, expected: int):
        self.settings, self.stride = settings, stride
        self.pending: deque[np.ndarray] = deque()  # full-resolution frames, scene not final yet
        self.times: list[float] = []  # every decoded frame's time (s)
        size = settings.image_size
        # np.empty only commits the pages written to; grown by doubling if scenes add more frames
        self.frames = np.empty((max(1, expected), size, size, 3), np.uint8)  # (capacity, S, S, 3)
        self.indices: list[int] = []

    def add(self, time_s: float, rgb: np.ndarray) -> int:
        self.times.append(time_s)
        self.pending.append(rgb)
        return len(self.times) - 1

    def settle(self, final: list[tuple[int, int | None]]) -> None:
        for index, scene_start in final:
            rgb = self.pending.popleft()
            if scene_start is not None and (index - scene_start) % self.stride == 0:
                self._keep(index, rgb)

    def _keep(self, index: int, rgb: np.ndarray) -> None:
        n = len(self.indices)
        if n == len(self.frames):
            grown = np.empty((2 * n, *self.frames.shape[1:]), np.uint8)
            grown[:n] = self.frames
            self.frames = grown
        self.frames[n] = resize_frame(rgb, self.settings.image_size, self.settings.tower_family)
        self.indices.append(index)


def _decode(stream: _FrameStream, path, settings, scenes, backend_name, progress) -> DecodedVideo:
    source = stream.next("opening the file")
    if not source.avg_fps > 0:
        raise VideoError(f"{path}: the video stream has no frame rate")
    stride, budget = plan_stride(source.avg_fps, source.frame_count, settings)
    if scenes is None:
        segmenter = SceneSegmenter(settings.detector, source.avg_fps, stride)
    else:
        segmenter = GivenScenes(_given_ranges(scenes, source.avg_fps, path))
    keeper = _FrameKeeper(settings, stride, expected=budget.estimated_frames // budget.stride_multiplier + 64)
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=source.frame_count or None, desc=f"decode {path.name}", unit="frame", disable=not show)
    while (item := stream.next(f"reading frame {len(keeper.times)}")) is not _END:
        time_s, rgb, small = item
        index = keeper.add(time_s if not math.isnan(time_s) else len(keeper.times) / source.avg_fps, rgb)
        keeper.settle(segmenter.push(index, small))
        bar.update(1)
    keeper.settle(segmenter.finish())
    bar.close()
    num_frames = len(keeper.times)
    if num_frames == 0:
        raise VideoError(f"{path}: no decodable video frames")
    if num_frames < source.declared_frames - max(2, source.declared_frames // 100):
        raise VideoError(
            f"{path}: truncated or damaged: the container declares {source.declared_frames} frames, "
            f"only {num_frames} could be decoded"
        )
    ranges = segmenter.scene_ranges(num_frames)
    for i, (start, _) in enumerate(ranges):
        if start >= num_frames:
            raise VideoError(
                f"{path}: scenes[{i}] starts at frame {start} but the video has {num_frames} frames"
            )
    return _result(path, backend_name, source, stride, budget, ranges, keeper)


def _result(path, backend_name, source, stride, budget, ranges, keeper: _FrameKeeper) -> DecodedVideo:
    end_of_video = keeper.times[-1] + 1.0 / source.avg_fps
    frame_times = np.asarray(keeper.times + [end_of_video], dtype=np.float64)  # (num_frames + 1,)
    indices = np.asarray(keeper.indices, dtype=np.int64)  # (N,) ascending
    starts, ends = np.array(ranges, dtype=np.int64).reshape(-1, 2).T  # (T,), (T,)
    frames_per_scene = np.searchsorted(indices, ends) - np.searchsorted(indices, starts)  # (T,)
    return DecodedVideo(
        path=str(path),
        backend=backend_name,
        avg_fps=source.avg_fps,
        duration_s=float(end_of_video),
        frames_decoded=len(keeper.times),
        stride=stride,
        frames=keeper.frames[: len(indices)],
        timestamps=frame_times[indices],
        frame_indices=indices,
        scenes=[Scene(int(a), int(b), float(frame_times[a]), float(frame_times[b])) for a, b in ranges],
        frames_per_scene=frames_per_scene.tolist(),
        budget=budget,
    )
