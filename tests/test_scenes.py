"""Scene detection on decoded videos, scene-length limits, record scenes."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salova.data.render import MOTIONS, PALETTE, SHAPES, SceneSpec, write_scene_video
from salova.data.scenes import (
    DetectorSettings,
    GivenScenes,
    SceneSegmenter,
    detector_frame,
    scenes_from_record,
)
from salova.data.video import SamplerSettings, decode_video
from salova.errors import ConfigError, RecordError

COLOURS = list(PALETTE)


def random_scenes(seed: int, total_s: float, min_s=2.0, max_s=8.0) -> list[SceneSpec]:
    """Scenes of random length; consecutive backgrounds always differ."""
    rng = np.random.default_rng(seed)
    scenes, elapsed, background = [], 0.0, None
    while elapsed < total_s:
        background = rng.choice([c for c in COLOURS if c != background])
        shape_color = rng.choice([c for c in COLOURS if c != background])
        duration = float(rng.uniform(min_s, max_s))
        scenes.append(
            SceneSpec(
                str(background),
                str(rng.choice(SHAPES)),
                str(shape_color),
                str(rng.choice(list(MOTIONS))),
                str(rng.integers(0, 100)),
                duration,
            )
        )
        elapsed += duration
    return scenes


def boundary_f1(found_s: list[float], truth_s: list[float], tolerance_s: float) -> float:
    """F1 of cut times, each true cut matched to at most one found cut within tolerance."""
    unmatched = list(found_s)
    hits = 0
    for t in truth_s:
        near = [f for f in unmatched if abs(f - t) <= tolerance_s]
        if near:
            unmatched.remove(min(near, key=lambda f: abs(f - t)))
            hits += 1
    if not found_s and not truth_s:
        return 1.0
    precision = hits / len(found_s) if found_s else 0.0
    recall = hits / len(truth_s) if truth_s else 0.0
    return 0.0 if hits == 0 else 2 * precision * recall / (precision + recall)


def test_boundary_f1_helper():
    assert boundary_f1([1.0, 5.0], [1.4, 5.0], 1.0) == 1.0
    assert boundary_f1([1.0, 9.0], [1.0, 5.0], 1.0) == pytest.approx(0.5)
    assert boundary_f1([], [3.0], 1.0) == 0.0


@pytest.mark.parametrize(
    "total_s,size,fps,seed",
    [
        (20, (64, 48), 30, 0),
        (45, (64, 48), 25, 1),
        (30, (160, 90), 24, 2),
        (15, (320, 180), 30, 3),
        (25, (256, 16), 30, 4),  # very wide
    ],
)
def test_detected_boundaries_match_the_cuts(tmp_path, total_s, size, fps, seed):
    scenes = random_scenes(seed, total_s)
    ranges = write_scene_video(tmp_path / "v.mp4", scenes, fps=fps, size=size, seed=seed)
    decoded = decode_video(tmp_path / "v.mp4", SamplerSettings(image_size=8), backend="pyav")
    truth = [start / fps for start, _ in ranges[1:]]
    found = [scene.start_time for scene in decoded.scenes[1:]]
    assert boundary_f1(found, truth, tolerance_s=1.0) >= 0.95, (found, truth)
    assert decoded.scenes[0].start_frame == 0 and decoded.scenes[-1].end_frame == ranges[-1][1]


def test_detection_is_deterministic(tmp_path):
    write_scene_video(tmp_path / "v.mp4", random_scenes(7, 15), fps=30)
    first = decode_video(tmp_path / "v.mp4", SamplerSettings(image_size=8), backend="pyav")
    second = decode_video(tmp_path / "v.mp4", SamplerSettings(image_size=8), backend="pyav")
    assert first.scenes == second.scenes
    assert np.array_equal(first.frames, second.frames)


def test_long_scenes_are_split_at_multiples_of_the_stride(tmp_path):
    scenes = [
        SceneSpec("blue", "circle", "red", "right", "1", 20.0),
        SceneSpec("white", "square", "black", "static", "2", 4.0),
    ]
    write_scene_video(tmp_path / "v.mp4", scenes, fps=10)
    detector = DetectorSettings(max_scene_s=6.5)  # -> 7 strides of 10 frames = 70 frames
    decoded = decode_video(
        tmp_path / "v.mp4", SamplerSettings(image_size=8, detector=detector), backend="pyav"
    )
    starts = [scene.start_frame for scene in decoded.scenes]
    assert starts == [0, 70, 140, 200]  # 20 s scene split every 70 frames, then the real cut at 200
    assert decoded.frame_indices.tolist() == list(range(0, 240, 10))  # anchoring unchanged by the splits


def test_min_scene_length_suppresses_short_flashes(tmp_path):
    scenes = [
        SceneSpec("blue", "circle", "red", "static", "1", 3.0),
        SceneSpec("yellow", "square", "black", "static", "2", 0.5),
        SceneSpec("green", "ring", "white", "static", "3", 3.0),
    ]
    write_scene_video(tmp_path / "v.mp4", scenes, fps=20)
    strict = decode_video(
        tmp_path / "v.mp4",
        SamplerSettings(image_size=8, detector=DetectorSettings(min_scene_s=1.0)),
        backend="pyav",
    )
    loose = decode_video(
        tmp_path / "v.mp4",
        SamplerSettings(image_size=8, detector=DetectorSettings(min_scene_s=0.2)),
        backend="pyav",
    )
    assert [s.start_frame for s in strict.scenes] == [0, 60]
    assert [s.start_frame for s in loose.scenes] == [0, 60, 70]


def test_segmenter_reports_frames_only_after_its_latency():
    segmenter = SceneSegmenter(DetectorSettings(window_width=3, min_scene_s=0.0), avg_fps=10, stride=10)
    black, white = np.zeros((16, 16, 3), np.uint8), np.full((16, 16, 3), 255, np.uint8)
    reported = []
    for index in range(12):
        final = segmenter.push(index, black if index < 6 else white)
        assert all(i <= index - 3 for i, _ in final)
        reported += final
    reported += segmenter.finish()
    assert [i for i, _ in reported] == list(range(12))
    assert [start for _, start in reported] == [0] * 6 + [6] * 6
    assert segmenter.scene_ranges(12) == [(0, 6), (6, 12)]


def test_given_scenes_leave_gaps_unsampled():
    given = GivenScenes([(2, 5), (7, 9)])
    owners = [given.push(i, None)[0][1] for i in range(10)]
    assert owners == [None, None, 2, 2, 2, None, None, 7, 7, None]


def test_scenes_from_record_converts_frame_rates():
    record = [
        {"start_frame": 0, "end_frame": 120, "start_fps": 60, "end_fps": 60},
        {"start_frame": 120, "end_frame": 300, "start_fps": 60, "end_fps": 60},
    ]
    scenes = scenes_from_record(record, fps=30)
    assert [(s.start_frame, s.end_frame) for s in scenes] == [(0, 60), (60, 150)]
    assert scenes[1].start_time == pytest.approx(2.0) and scenes[1].end_time == pytest.approx(5.0)


@pytest.mark.parametrize(
    "record,field",
    [
        ([{"start_frame": 0}], "end_frame"),
        ([{"start_frame": 5, "end_frame": 5}], "scenes\\[0\\]"),
        (
            [{"start_frame": 0, "end_frame": 10}, {"start_frame": 8, "end_frame": 20}],
            "scenes\\[1\\].start_frame",
        ),
        ([{"start_frame": 0, "end_frame": 10, "start_fps": 0}], "start_fps"),
        ([], "empty"),
    ],
)
def test_bad_record_scenes_name_the_field(record, field):
    with pytest.raises(RecordError, match=field) as error:
        scenes_from_record(record, fps=30, source="train.json#7")
    assert "train.json#7" in str(error.value)


@settings(max_examples=50, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 500), min_size=1, max_size=10),
    gap=st.integers(0, 3),
    fps=st.sampled_from([24, 30]),
)
def test_record_scenes_at_the_video_rate_round_trip(lengths, gap, fps):
    starts = np.cumsum([0] + [n + gap for n in lengths[:-1]])
    record = [
        {"start_frame": int(s), "end_frame": int(s + n), "start_fps": fps, "end_fps": fps}
        for s, n in zip(starts, lengths)
    ]
    scenes = scenes_from_record(record, fps=fps)
    assert [(s.start_frame, s.end_frame) for s in scenes] == [
        (r["start_frame"], r["end_frame"]) for r in record
    ]


def test_detector_settings_are_validated():
    with pytest.raises(ConfigError, match="window_width"):
        DetectorSettings(window_width=0)
    with pytest.raises(ConfigError, match="max_scene_s"):
        DetectorSettings(max_scene_s=0)


def test_detector_frame_is_a_small_bgr_average():
    rgb = np.zeros((360, 640, 3), np.uint8)
    rgb[:, :320, 0] = 200  # left half red
    rgb[:, 320:, 2] = 100  # right half blue
    small = detector_frame(rgb, 128)
    assert small.shape == (72, 128, 3)
    assert (small[:, :60] == [0, 0, 200]).all() and (small[:, 68:] == [100, 0, 0]).all()  # BGR
    assert detector_frame(np.zeros((48, 64, 3), np.uint8), 128).shape == (48, 64, 3)  # never upscaled
    assert detector_frame(np.zeros((16, 1280, 3), np.uint8), 128).shape == (2, 128, 3)
