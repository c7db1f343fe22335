"""Tower preprocessing against the transformers image processors (PIL backend).

Both sides resize uint8 images with PIL's bicubic filter and normalise in
float32, so the outputs should agree to float32 rounding: tolerance 1e-5
(one ulp of values of size ~2 is 2.4e-7; 1e-5 leaves room for a different
order of the subtract/divide, but is far below one grey level, 1/255/0.27 = 0.015)."""

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from salova.data.transforms import CLIP_MEAN, CLIP_STD, normalize_frames, resize_frame, short_side_size
from salova.errors import ConfigError

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    try:  # transformers 5 names its PIL-based processors with a Pil suffix
        from transformers import CLIPImageProcessorPil, SiglipImageProcessorPil
    except ImportError:  # transformers 4.x: the plain classes are the PIL-based ones
        from transformers import CLIPImageProcessor as CLIPImageProcessorPil
        from transformers import SiglipImageProcessor as SiglipImageProcessorPil

TOLERANCE = 1e-5


def reference(family, frame, size):
    if family == "siglip":
        processor = SiglipImageProcessorPil(size={"height": size, "width": size})
    else:
        processor = CLIPImageProcessorPil(
            size={"shortest_edge": size}, crop_size={"height": size, "width": size}
        )
    return processor(images=[frame], return_tensors="pt")["pixel_values"]  # (1, 3, S, S)


@settings(max_examples=25, deadline=None)
@given(
    family=st.sampled_from(["siglip", "clip"]),
    height=st.integers(8, 90),
    width=st.integers(8, 90),
    size=st.sampled_from([7, 16, 24, 33]),
    seed=st.integers(0, 2**16),
)
def test_matches_transformers_processor(family, height, width, size, seed):
    frame = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    resized = resize_frame(frame, size, family)
    assert resized.shape == (size, size, 3) and resized.dtype == np.uint8
    ours = normalize_frames(resized[None], family)
    torch.testing.assert_close(ours, reference(family, frame, size), atol=TOLERANCE, rtol=0)


def test_clip_crops_the_center_and_siglip_squashes():
    # A wide frame: left third red, middle green, right third blue.
    frame = np.zeros((30, 90, 3), np.uint8)
    frame[:, :30, 0] = frame[:, 30:60, 1] = frame[:, 60:, 2] = 255
    clip = resize_frame(frame, 30, "clip")
    siglip = resize_frame(frame, 30, "siglip")
    assert (clip[:, :, 1] == 255).all() and (clip[:, :, [0, 2]] == 0).all()  # only the green middle survives
    assert siglip[15, 2, 0] == 255 and siglip[15, 15, 1] == 255 and siglip[15, 27, 2] == 255


def test_normalisation_constants():
    white = np.full((1, 2, 2, 3), 255, np.uint8)
    black = np.zeros((1, 2, 2, 3), np.uint8)
    assert torch.allclose(normalize_frames(white, "siglip"), torch.ones(1, 3, 2, 2))
    assert torch.allclose(normalize_frames(black, "siglip"), -torch.ones(1, 3, 2, 2))
    expected = [(1 - m) / s for m, s in zip(CLIP_MEAN, CLIP_STD)]
    assert torch.allclose(normalize_frames(white, "clip")[0, :, 0, 0], torch.tensor(expected))


@pytest.mark.parametrize(
    "height,width,expected", [(360, 640, (24, 42)), (640, 360, (42, 24)), (100, 100, (24, 24))]
)
def test_short_side_size_truncates_like_transformers(height, width, expected):
    assert short_side_size(height, width, 24) == expected


def test_unknown_family_is_a_config_error():
    with pytest.raises(ConfigError, match="tower_family"):
        resize_frame(np.zeros((4, 4, 3), np.uint8), 2, "dino")
