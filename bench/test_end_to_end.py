"""End to end, tiny model: a cold question vs a warm one from the feature cache.

The video: 10 minutes of synthetic scenes (30 s each, 64x48, 30 fps H.264),
written once per run. A cold question decodes the video, detects its scenes,
encodes every sampled frame with the vision tower, runs the ST-Connector and
then the text tower, router and LLM; a warm question about the same video
loads the scene features from VideoIndex's cache and runs only the last three.

Asserted: cold / warm >= 20 (the goal), and the warm answer equals the cold one.
Reported: decoding time against the video's duration (realtime factor), and
where the cold question's time goes.
"""

import time

import pytest
import torch

from salova.config import SalovaConfig
from salova.data.render import MOTIONS, PALETTE, SHAPES, SceneSpec, write_scene_video
from salova.data.video import decode_video
from salova.index import VideoIndex
from salova.modeling.salova import SalovaForCausalLM
from salova.processing import SalovaProcessor

DURATION_S, SCENE_S, FPS = 600, 30, 30
QUESTION = "What colour is the circle?"


@pytest.fixture(scope="module")
def ten_minute_video(tmp_path_factory):
    colours, motions = list(PALETTE), list(MOTIONS)
    scenes = [SceneSpec(colours[i % 12], SHAPES[i % 6], colours[(i + 5) % 12], motions[i % 5], str(i), SCENE_S)
              for i in range(DURATION_S // SCENE_S)]
    path = tmp_path_factory.mktemp("e2e") / "ten_minutes.mp4"
    write_scene_video(path, scenes, fps=FPS, size=(64, 48))
    return path


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    config = SalovaConfig.from_preset("tiny")
    return SalovaForCausalLM(config).eval(), SalovaProcessor.for_config(config)


def test_warm_question_vs_cold(benchmark, record, ten_minute_video, tiny_model, tmp_path):
    model, processor = tiny_model
    index = VideoIndex(model, processor, tmp_path / "cache")

    start = time.perf_counter()
    cold = index.ask(ten_minute_video, QUESTION, max_new_tokens=8)
    cold_s = time.perf_counter() - start
    assert not cold.from_cache

    warm = benchmark.pedantic(lambda: index.ask(ten_minute_video, QUESTION, max_new_tokens=8),
                              rounds=5, iterations=1)
    warm_s = benchmark.stats.stats.median
    assert warm.from_cache and (warm.text, warm.focus) == (cold.text, cold.focus)
    assert index.counters["decoded"] == 1 and index.counters["encoded"] == 1

    start = time.perf_counter()
    decoded = decode_video(ten_minute_video, index.sampler, progress=False)
    decode_s = time.perf_counter() - start

    ratio = cold_s / warm_s
    record({
        "cold_s": cold_s, "warm_s": warm_s, "cold_over_warm_ratio": ratio,
        "decode_s": decode_s, "decode_share_of_cold": decode_s / cold_s,
        "decode_realtime_ratio": DURATION_S / decode_s, "scenes": len(decoded.scenes),
        "sampled_frames": len(decoded.frames),
    }, goals={"cold_over_warm_ratio": ">= 20"})
    assert ratio >= 20
