"""The synthetic video writer: real H.264 files whose decoded content matches the specs."""

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salova.data.render import (
    PALETTE,
    SceneSpec,
    scene_frame_ranges,
    vfr_frame_times,
    write_audio_only,
    write_scene_video,
    write_single_frame_video,
    write_vfr_video,
)
from salova.errors import ConfigError

SCENES = [
    SceneSpec("blue", "circle", "red", "right", "7", 1.0),
    SceneSpec("yellow", "triangle", "purple", "down", "cat", 0.5),
    SceneSpec("black", "square", "white", "static", "42", 0.7),
]


def decode_all(path):
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    return np.stack([f.to_ndarray(format="rgb24") for f in frames]), [float(f.time) for f in frames]


def shape_centroid(frame, color):  # (x, y) of the pixels near the shape colour
    distance = np.abs(frame.astype(int) - np.array(color)).sum(-1)
    ys, xs = np.nonzero(distance < 60)
    return xs.mean(), ys.mean()


def test_frame_ranges_are_back_to_back_and_match_the_file(tmp_path):
    ranges = write_scene_video(tmp_path / "v.mp4", SCENES, fps=10, size=(64, 48))
    assert ranges == [(0, 10), (10, 15), (15, 22)]
    frames, times = decode_all(tmp_path / "v.mp4")
    assert frames.shape == (22, 48, 64, 3)
    assert times == pytest.approx([i / 10 for i in range(22)])


def test_each_scene_shows_its_background_colour(tmp_path):
    ranges = write_scene_video(tmp_path / "v.mp4", SCENES, fps=10, size=(64, 48))
    frames, _ = decode_all(tmp_path / "v.mp4")
    for spec, (start, end) in zip(SCENES, ranges):
        for frame in frames[start:end]:
            median = np.median(frame.reshape(-1, 3), axis=0)
            assert np.abs(median - PALETTE[spec.background]).max() < 20, (spec, median)


def test_shape_moves_in_the_named_direction(tmp_path):
    scenes = [
        SceneSpec("blue", "circle", "red", "right", "1", 1.0),
        SceneSpec("white", "square", "green", "down", "2", 1.0),
    ]
    ranges = write_scene_video(tmp_path / "v.mp4", scenes, fps=10, size=(96, 96))
    frames, _ = decode_all(tmp_path / "v.mp4")
    (s0, e0), (s1, e1) = ranges
    x_first, _ = shape_centroid(frames[s0], PALETTE["red"])
    x_last, _ = shape_centroid(frames[e0 - 1], PALETTE["red"])
    assert x_last > x_first + 5
    _, y_first = shape_centroid(frames[s1], PALETTE["green"])
    _, y_last = shape_centroid(frames[e1 - 1], PALETTE["green"])
    assert y_last > y_first + 5


def test_same_seed_same_frames_other_seed_other_positions(tmp_path):
    write_scene_video(tmp_path / "a.mp4", SCENES, fps=10, seed=3)
    write_scene_video(tmp_path / "b.mp4", SCENES, fps=10, seed=3)
    write_scene_video(tmp_path / "c.mp4", SCENES, fps=10, seed=4)
    a, b, c = (decode_all(tmp_path / f"{n}.mp4")[0] for n in "abc")
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_label_is_printed(tmp_path):
    with_label = [SceneSpec("white", "circle", "yellow", "static", "88", 0.1)]
    without_label = [SceneSpec("white", "circle", "yellow", "static", "", 0.1)]
    write_scene_video(tmp_path / "a.mp4", with_label, fps=10)
    write_scene_video(tmp_path / "b.mp4", without_label, fps=10)
    a, b = decode_all(tmp_path / "a.mp4")[0], decode_all(tmp_path / "b.mp4")[0]

    def dark_top(frames):  # black text on white
        return (frames[0, :16].max(-1) < 100).sum()

    assert dark_top(a) > 10 and dark_top(b) == 0


def test_caption_names_every_attribute():
    caption = SceneSpec("blue", "triangle", "orange", "left", "9", 2.0).caption()
    for word in ("blue", "triangle", "orange", "left", '"9"'):
        assert word in caption


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(background="teal"),
        dict(shape="hexagon"),
        dict(motion="spin"),
        dict(shape_color="blue"),  # same as the background
        dict(duration_s=0.0),
    ],
)
def test_invalid_spec_is_rejected(kwargs):
    fields = dict(
        background="blue", shape="circle", shape_color="red", motion="left", label="1", duration_s=1.0
    )
    fields.update(kwargs)
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        SceneSpec(**fields)


def test_odd_size_is_rejected_naming_the_file(tmp_path):
    with pytest.raises(ConfigError, match="odd.mp4"):
        write_scene_video(tmp_path / "odd.mp4", SCENES, size=(63, 48))


def test_vfr_video_has_the_requested_show_times(tmp_path):
    ranges = write_vfr_video(tmp_path / "vfr.mp4", SCENES, fps=20)
    frames, times = decode_all(tmp_path / "vfr.mp4")
    assert len(frames) == ranges[-1][1] == 20 + 10 + 14
    assert times == pytest.approx(vfr_frame_times(len(frames), 20), abs=1e-3)
    gaps = np.diff(times)
    assert gaps.min() < 0.03 and gaps.max() > 0.07  # truly variable: 25 ms and 75 ms


def test_single_frame_audio_only_and_wide_files(tmp_path):
    write_single_frame_video(tmp_path / "one.mp4", SCENES[0])
    assert decode_all(tmp_path / "one.mp4")[0].shape == (1, 48, 64, 3)
    write_audio_only(tmp_path / "audio.mp4", duration_s=0.5)
    with av.open(str(tmp_path / "audio.mp4")) as container:
        assert len(container.streams.video) == 0 and len(container.streams.audio) == 1
    write_scene_video(tmp_path / "wide.mp4", SCENES, fps=10, size=(640, 16))
    assert decode_all(tmp_path / "wide.mp4")[0].shape == (22, 16, 640, 3)


@settings(max_examples=50, deadline=None)
@given(
    durations=st.lists(st.floats(0.01, 100.0), min_size=1, max_size=20),
    fps=st.sampled_from([1, 10, 24, 30, 60]),
)
def test_frame_ranges_tile_the_video(durations, fps):
    scenes = [SceneSpec("blue", "circle", "red", "static", "1", d) for d in durations]
    ranges = scene_frame_ranges(scenes, fps)
    assert ranges[0][0] == 0
    assert all(end == next_start for (_, end), (next_start, _) in zip(ranges, ranges[1:]))
    assert all(end - start == max(1, round(d * fps)) for (start, end), d in zip(ranges, durations))


def test_every_pair_of_backgrounds_is_a_detectable_cut():
    """PySceneDetect's content score of a cut between two flat colours: the mean of the
    absolute H, S and V differences (OpenCV HSV). Its default floor is 15."""
    import itertools

    import cv2

    def hsv(rgb):
        return cv2.cvtColor(np.array([[rgb]], np.uint8), cv2.COLOR_RGB2HSV)[0, 0].astype(int)

    scores = {
        (a, b): np.abs(hsv(PALETTE[a]) - hsv(PALETTE[b])).mean()
        for a, b in itertools.combinations(PALETTE, 2)
    }
    assert min(scores.values()) >= 25, min(scores.items(), key=lambda item: item[1])
