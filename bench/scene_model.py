"""A seeded model of scene lengths in long videos, at 1 frame per second.

Scene lengths are log-normal with a mean of 33 s (the reference's average
scene length on long videos, salova.md §2.7) and sigma 0.9, which gives a long
tail: about 1 scene in 20 lasts over 90 s. Scenes are at least 1 s, and the
last scene is cut so the lengths add up to the video's frame count exactly.
"""

import math

import numpy as np

MEAN_SCENE_SECONDS = 33.0
SIGMA = 0.9


def scene_lengths(total_frames: int, seed: int = 0) -> list[int]:
    """Frames per scene of a `total_frames`-frame video (1 fps), seeded."""
    rng = np.random.default_rng(seed)
    mu = math.log(MEAN_SCENE_SECONDS) - SIGMA**2 / 2  # log-normal mean = exp(mu + sigma^2 / 2)
    lengths, remaining = [], total_frames
    while remaining > 0:
        length = min(remaining, max(1, round(rng.lognormal(mu, SIGMA))))
        lengths.append(length)
        remaining -= length
    return lengths
