"""decode_video: one pass, frames anchored at scene starts, budget, backends, bad input."""

import importlib.util
import json
import threading
from fractions import Fraction

import av
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salova.data import video as video_module
from salova.data.render import (
    PALETTE,
    SceneSpec,
    render_frames,
    vfr_frame_times,
    write_audio_only,
    write_scene_video,
    write_single_frame_video,
    write_vfr_video,
)
from salova.data.scenes import Scene
from salova.data.video import PyAVBackend, SamplerSettings, decode_video
from salova.errors import ConfigError, RecordError, VideoError

HAS_DECORD = importlib.util.find_spec("decord") is not None
needs_decord = pytest.mark.skipif(not HAS_DECORD, reason="decord is not installed")

SCENES = [
    SceneSpec("blue", "circle", "red", "right", "1", 2.5),
    SceneSpec("yellow", "triangle", "purple", "down", "2", 1.5),
    SceneSpec("black", "square", "white", "static", "3", 3.2),
    SceneSpec("green", "ring", "magenta", "left", "4", 1.0),
]
SMALL = SamplerSettings(image_size=16)


def anchored(ranges, stride):
    return [i for start, end in ranges for i in range(start, end, stride)]


@pytest.fixture(scope="module")
def scene_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "scenes.mp4"
    ranges = write_scene_video(path, SCENES, fps=30, size=(64, 48))
    return path, ranges


def test_frames_are_anchored_at_each_scene_start(scene_video):
    path, ranges = scene_video
    decoded = decode_video(path, SMALL, backend="pyav")
    assert [(s.start_frame, s.end_frame) for s in decoded.scenes] == ranges
    assert decoded.stride == 30
    assert decoded.frame_indices.tolist() == anchored(ranges, 30)
    assert decoded.frames_per_scene == [len(range(start, end, 30)) for start, end in ranges]
    assert decoded.timestamps == pytest.approx(decoded.frame_indices / 30)
    assert decoded.frames.shape == (len(decoded.frame_indices), 16, 16, 3)
    assert decoded.frames_decoded == ranges[-1][1]


def test_each_sampled_frame_shows_its_scene(scene_video):
    path, ranges = scene_video
    decoded = decode_video(path, SMALL, backend="pyav")
    for frame, index in zip(decoded.frames, decoded.frame_indices):
        spec = next(spec for spec, (start, end) in zip(SCENES, ranges) if start <= index < end)
        median = np.median(frame.reshape(-1, 3), axis=0)
        assert np.abs(median - PALETTE[spec.background]).max() < 25, (index, spec.background, median)


def test_scene_times_come_from_the_frames(scene_video):
    path, ranges = scene_video
    decoded = decode_video(path, SMALL, backend="pyav")
    assert [s.start_time for s in decoded.scenes] == pytest.approx([start / 30 for start, _ in ranges])
    assert [s.end_time for s in decoded.scenes] == pytest.approx([end / 30 for _, end in ranges])
    assert decoded.duration_s == pytest.approx(ranges[-1][1] / 30)


def test_video_is_decoded_once_whatever_the_number_of_scenes(scene_video, monkeypatch):
    path, ranges = scene_video
    opens, frames = [], []

    class CountingBackend(PyAVBackend):
        def __init__(self, p):
            opens.append(p)
            super().__init__(p)

        def frames(self):
            for item in super().frames():
                frames.append(item[0])
                yield item

    real_open = av.open
    av_opens = []
    monkeypatch.setattr(video_module.av, "open", lambda *a, **k: av_opens.append(a[0]) or real_open(*a, **k))
    monkeypatch.setitem(video_module.BACKENDS, "pyav", CountingBackend)
    decoded = decode_video(path, SMALL, backend="pyav")
    assert len(decoded.scenes) == 4
    assert len(opens) == 1 and len(av_opens) == 1
    assert len(frames) == decoded.frames_decoded == ranges[-1][1]


def test_frame_budget_multiplies_the_stride_evenly(tmp_path):
    scenes = [
        SceneSpec("blue", "circle", "red", "right", "1", 30.0),
        SceneSpec("white", "square", "black", "static", "2", 30.0),
    ]
    ranges = write_scene_video(tmp_path / "long.mp4", scenes, fps=10, size=(32, 32))
    decoded = decode_video(
        tmp_path / "long.mp4", SamplerSettings(image_size=8, frame_budget=25), backend="pyav"
    )
    # 600 frames at base stride 10 -> 60 estimated frames > 25 -> multiplier ceil(60 / 25) = 3
    assert decoded.budget.requested == 25
    assert decoded.budget.estimated_frames == 60
    assert decoded.budget.stride_multiplier == 3
    assert decoded.stride == 30
    assert decoded.frame_indices.tolist() == anchored(ranges, 30)
    assert len(decoded.frames) <= 25 + len(decoded.scenes)
    summary = json.loads(json.dumps(decoded.summary()))
    assert summary["budget"] == {"requested": 25, "estimated_frames": 60, "stride_multiplier": 3}


def test_no_budget_multiplier_when_the_video_fits(scene_video):
    decoded = decode_video(scene_video[0], SamplerSettings(image_size=8, frame_budget=10_000), backend="pyav")
    assert decoded.budget.stride_multiplier == 1 and decoded.stride == 30


def test_record_scenes_are_used_as_given(scene_video):
    path, _ = scene_video
    record = [  # frame numbers at 60 fps; the video is 30 fps; a gap between the scenes
        {"start_frame": 20, "end_frame": 100, "start_fps": 60, "end_fps": 60},
        {"start_frame": 200, "end_frame": 400, "start_fps": 60, "end_fps": 60},
    ]
    decoded = decode_video(path, SMALL, scenes=record, backend="pyav")
    assert [(s.start_frame, s.end_frame) for s in decoded.scenes] == [(10, 50), (100, 200)]
    assert decoded.frame_indices.tolist() == [10, 40, 100, 130, 160, 190]
    assert decoded.frames_per_scene == [2, 4]
    assert decoded.scenes[1].start_time == pytest.approx(100 / 30)


def test_scene_objects_are_used_as_given(scene_video):
    path, _ = scene_video
    given = [Scene(0, 45, 0.0, 1.5), Scene(45, 90, 1.5, 3.0)]
    decoded = decode_video(path, SMALL, scenes=given, backend="pyav")
    assert decoded.frame_indices.tolist() == [0, 30, 45, 75]
    assert decoded.frames_per_scene == [2, 2]


def test_given_scene_beyond_the_video_is_an_error(scene_video):
    path, ranges = scene_video
    beyond = [Scene(0, 30, 0, 1), Scene(ranges[-1][1] + 5, ranges[-1][1] + 50, 0, 0)]
    with pytest.raises(VideoError, match=r"scenes\[1\]") as error:
        decode_video(path, SMALL, scenes=beyond, backend="pyav")
    assert path.name in str(error.value)


def test_clip_family_crops_the_center(tmp_path):
    # 96x32 frame: the shape sits in the center third only when seen through CLIP's crop.
    write_scene_video(
        tmp_path / "wide.mp4",
        [SceneSpec("blue", "square", "yellow", "static", "", 1.0)],
        fps=10,
        size=(96, 32),
    )
    siglip = decode_video(
        tmp_path / "wide.mp4", SamplerSettings(image_size=16, tower_family="siglip"), backend="pyav"
    )
    clip = decode_video(
        tmp_path / "wide.mp4", SamplerSettings(image_size=16, tower_family="clip"), backend="pyav"
    )
    assert siglip.frames.shape == clip.frames.shape == (1, 16, 16, 3)
    assert not np.array_equal(siglip.frames, clip.frames)


# ---- odd but valid files --------------------------------------------------------


def test_single_frame_video(tmp_path):
    write_single_frame_video(tmp_path / "one.mp4", SCENES[0])
    decoded = decode_video(tmp_path / "one.mp4", SMALL, backend="pyav")
    assert decoded.frames_decoded == 1 and decoded.frame_indices.tolist() == [0]
    assert [(s.start_frame, s.end_frame) for s in decoded.scenes] == [(0, 1)]


def test_variable_frame_rate_video_keeps_exact_times(tmp_path):
    ranges = write_vfr_video(tmp_path / "vfr.mp4", SCENES, fps=20)
    decoded = decode_video(tmp_path / "vfr.mp4", SMALL, backend="pyav")
    show_times = np.array(vfr_frame_times(ranges[-1][1], 20))
    assert decoded.frames_decoded == ranges[-1][1]
    assert decoded.timestamps == pytest.approx(show_times[decoded.frame_indices], abs=1e-6)
    assert [(s.start_frame, s.end_frame) for s in decoded.scenes] == ranges
    assert decoded.frame_indices.tolist() == anchored(ranges, 20)


def test_very_wide_video(tmp_path):
    ranges = write_scene_video(tmp_path / "wide.mp4", SCENES, fps=30, size=(1280, 16))
    decoded = decode_video(tmp_path / "wide.mp4", SMALL, backend="pyav")
    assert [(s.start_frame, s.end_frame) for s in decoded.scenes] == ranges
    assert decoded.frames.shape[1:] == (16, 16, 3)


# ---- PyAV and decord agree --------------------------------------------------------


@needs_decord
@pytest.mark.parametrize("kind", ["cfr", "vfr", "wide"])
def test_pyav_and_decord_return_the_same_frames_and_times(tmp_path, kind):
    path = tmp_path / f"{kind}.mp4"
    if kind == "vfr":
        write_vfr_video(path, SCENES, fps=20)
    else:
        write_scene_video(path, SCENES, fps=30, size=(640, 16) if kind == "wide" else (64, 48))
    pyav = decode_video(path, SMALL, backend="pyav")
    decord = decode_video(path, SMALL, backend="decord")
    assert (pyav.backend, decord.backend) == ("pyav", "decord")
    assert [(s.start_frame, s.end_frame) for s in pyav.scenes] == [
        (s.start_frame, s.end_frame) for s in decord.scenes
    ]
    assert np.array_equal(pyav.frame_indices, decord.frame_indices)
    assert np.array_equal(pyav.frames, decord.frames)
    # decord reports times as float32: 1e-5 s covers its rounding on short videos
    np.testing.assert_allclose(pyav.timestamps, decord.timestamps, atol=1e-5, rtol=0)
    assert pyav.frames_decoded == decord.frames_decoded


def test_auto_backend_prefers_decord_when_installed(scene_video):
    decoded = decode_video(scene_video[0], SMALL)
    assert decoded.backend == ("decord" if HAS_DECORD else "pyav")


def test_auto_backend_falls_back_to_pyav_when_decord_is_unusable(scene_video, monkeypatch):
    monkeypatch.setattr(video_module, "decord_available", lambda: False)
    assert decode_video(scene_video[0], SMALL).backend == "pyav"
    with pytest.raises(ConfigError, match="decord"):
        decode_video(scene_video[0], SMALL, backend="decord")


# ---- bad input ------------------------------------------------------------------------


def make_bad_file(kind, tmp_path):
    path = tmp_path / f"{kind}.mp4"
    if kind == "missing":
        return path
    if kind == "zero_byte":
        path.touch()
    elif kind == "text":
        path.write_text("this is not a video\n" * 40)
    elif kind == "audio_only":
        write_audio_only(path, duration_s=0.5)
    else:
        source = tmp_path / "whole.mp4"
        write_scene_video(source, SCENES, fps=30, faststart=kind == "truncated_faststart")
        data = source.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    return path


BAD_FILES = {
    "missing": "not found",
    "zero_byte": "empty file",
    "text": "not a readable video",
    "audio_only": "no video stream|not a readable video",
    "truncated": "not a readable video",  # index (moov) at the end: lost
    "truncated_faststart": "truncated",  # index first: frames missing
}


@pytest.mark.parametrize("backend", ["pyav", pytest.param("decord", marks=needs_decord)])
@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_input_is_a_video_error_naming_the_file(tmp_path, kind, backend):
    path = make_bad_file(kind, tmp_path)
    with pytest.raises(VideoError, match=BAD_FILES[kind]) as error:
        decode_video(path, SMALL, backend=backend)
    assert str(path) in str(error.value)


def test_audio_only_message_lists_the_streams(tmp_path):
    path = make_bad_file("audio_only", tmp_path)
    with pytest.raises(VideoError, match=r"no video stream \(streams found: \['audio'\]\)"):
        decode_video(path, SMALL, backend="pyav")


def test_file_with_no_decodable_frames(tmp_path, monkeypatch):
    class NoFrames(PyAVBackend):
        def frames(self):
            return iter(())

    monkeypatch.setitem(video_module.BACKENDS, "pyav", NoFrames)
    write_scene_video(tmp_path / "v.mp4", SCENES[:1], fps=10)
    with pytest.raises(VideoError, match="no decodable video frames") as error:
        decode_video(tmp_path / "v.mp4", SMALL, backend="pyav")
    assert "v.mp4" in str(error.value)


@pytest.mark.parametrize("stall_in", ["open", "frames"])
def test_a_stalled_decoder_times_out(scene_video, monkeypatch, stall_in):
    release = threading.Event()

    class Stalling(PyAVBackend):
        def __init__(self, p):
            if stall_in == "open":
                release.wait(10)  # without the timeout, decoding resumes after 10 s: the test fails
            super().__init__(p)

        def frames(self):
            for k, item in enumerate(super().frames()):
                if k == 5:
                    release.wait(10)  # without the timeout, decoding resumes after 10 s: the test fails
                yield item

    monkeypatch.setitem(video_module.BACKENDS, "pyav", Stalling)
    settings = SamplerSettings(image_size=8, decode_timeout_s=0.3)
    try:
        with pytest.raises(VideoError, match="no progress for 0.3 s") as error:
            decode_video(scene_video[0], settings, backend="pyav")
        assert str(scene_video[0]) in str(error.value)
        assert ("opening" in str(error.value)) == (stall_in == "open")
    finally:
        release.set()


def test_progress_bar_only_when_asked(scene_video, capsys):
    decode_video(scene_video[0], SMALL, backend="pyav", progress=False)
    assert "frame" not in capsys.readouterr().err
    decode_video(scene_video[0], SMALL, backend="pyav", progress=True)
    assert "decode scenes.mp4" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kwargs,field",
    [
        (dict(fps=0), "fps"),
        (dict(frame_budget=0), "frame_budget"),
        (dict(backend="opencv"), "backend"),
        (dict(tower_family="dino"), "tower_family"),
        (dict(decode_timeout_s=0), "decode_timeout_s"),
    ],
)
def test_sampler_settings_are_validated(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        SamplerSettings(**kwargs)


def test_sampler_for_config_reads_the_model_config():
    class Config:
        fps, tower_family, vision_config = 0.5, "clip", {"image_size": 336}

    settings = SamplerSettings.for_config(Config())
    assert (settings.fps, settings.tower_family, settings.image_size) == (0.5, "clip", 336)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cuts=st.lists(st.integers(1, 246), min_size=0, max_size=6, unique=True),
    fps=st.sampled_from([1.0, 2.0, 0.5]),
)
def test_frames_are_anchored_for_any_given_scenes(scene_video, cuts, fps):
    path, ranges = scene_video
    total = ranges[-1][1]
    bounds = [0, *sorted(cuts), total]
    given = [Scene(a, b, a / 30, b / 30) for a, b in zip(bounds, bounds[1:])]
    decoded = decode_video(path, SamplerSettings(image_size=4, fps=fps), scenes=given, backend="pyav")
    stride = round(30 / fps)
    assert decoded.stride == stride
    assert decoded.frame_indices.tolist() == anchored(list(zip(bounds, bounds[1:])), stride)
    assert sum(decoded.frames_per_scene) == len(decoded.frames)


def test_times_count_from_the_stream_start(tmp_path):
    """A stream whose first frame is shown at 2.5 s: times start at 0 on both backends."""
    path = tmp_path / "offset.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 30)
        for k, rgb in enumerate(render_frames(SCENES[:2], 30, (64, 48))):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = k + 75, Fraction(1, 30)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    for backend in ["pyav", "decord"] if HAS_DECORD else ["pyav"]:
        decoded = decode_video(path, SMALL, backend=backend)
        assert decoded.timestamps == pytest.approx(decoded.frame_indices / 30, abs=1e-5)
        assert decoded.scenes[0].start_time == 0.0


def test_many_short_given_scenes_keep_every_start(scene_video):
    """More kept frames than the duration predicts (one per scene start): the store grows."""
    path, ranges = scene_video
    total = ranges[-1][1]
    given = [Scene(a, a + 2, a / 30, (a + 2) / 30) for a in range(0, total - 1, 2)]
    many = decode_video(path, SMALL, scenes=given, backend="pyav")
    assert many.frame_indices.tolist() == list(range(0, total - 1, 2))
    assert many.frames_per_scene == [1] * len(given)
    plain = decode_video(path, SMALL, scenes=[Scene(0, total, 0, total / 30)], backend="pyav")
    for frame, index in zip(plain.frames, plain.frame_indices):
        assert np.array_equal(many.frames[index // 2], frame)


def test_overlapping_scene_objects_are_a_record_error(scene_video):
    with pytest.raises(RecordError, match=r"scenes\[1\].start_frame"):
        decode_video(scene_video[0], SMALL, scenes=[Scene(0, 50, 0, 1), Scene(40, 90, 1, 3)], backend="pyav")
