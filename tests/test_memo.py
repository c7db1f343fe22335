"""The byte-bounded LRU memo (salova/lru.py), the frozen vision tower's memo
(salova/modeling/tower_memo.py) and the training datasets' cache of decoded videos. Expectations:
a plain reference model of an LRU, and the uncached computations themselves."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from salova.config import SalovaConfig
from salova.data import synth
from salova.data.collate import DataSettings, build_dataset, record_scenes, video_pixels
from salova.data.records import LabelThresholds, load_scenewalk
from salova.data.video import SamplerSettings
from salova.lru import MIB, ByteLRU, nbytes
from salova.modeling.salova import SalovaForCausalLM
from salova.modeling.tower_memo import TowerMemo
from salova.processing import SalovaProcessor


def test_nbytes_counts_tensors_and_arrays_inside_tuples():
    value = (torch.zeros(3, 4), [np.zeros(5, np.uint8), torch.zeros(2, dtype=torch.float64)], "name")
    assert nbytes(value) == 3 * 4 * 4 + 5 + 2 * 8


@given(st.lists(st.tuples(st.integers(0, 6), st.integers(1, 40)), max_size=60), st.integers(0, 100))
def test_the_lru_keeps_the_most_recent_entries_that_fit_the_budget(requests, budget_bytes):
    """Against a reference: an ordered list of (key, size), most recent last, trimmed from the front."""
    cache = ByteLRU(budget_bytes / MIB)
    reference: list[tuple[int, int]] = []
    computed = 0
    for key, size in requests:
        known = dict(reference)
        stored_size = known.get(key, size)

        def compute(size=size):
            nonlocal computed
            computed += 1
            return np.zeros(size, np.uint8)

        value = cache.get(key, compute)
        if key in known:
            reference.remove((key, stored_size))
            reference.append((key, stored_size))
            assert len(value) == stored_size  # the stored value, not a new one
        else:
            assert len(value) == size
            if size <= budget_bytes:
                reference.append((key, size))
                while sum(s for _, s in reference) > budget_bytes:
                    reference.pop(0)
        assert [key for key, _ in reference] == list(cache.entries)
        assert cache.used == sum(s for _, s in reference) <= budget_bytes
    assert cache.misses == computed and cache.hits + cache.misses == len(requests)


def test_a_zero_budget_stores_nothing_and_computes_every_time():
    cache = ByteLRU(0)
    calls = []
    for _ in range(3):
        cache.get("a", lambda: calls.append(1) or torch.ones(2))
    assert len(calls) == 3 and cache.used == 0 and not cache.entries


@pytest.fixture(scope="module")
def frozen_model():
    torch.manual_seed(0)
    model = SalovaForCausalLM(SalovaConfig.from_preset("tiny"))
    model.vision_tower.requires_grad_(False)
    return model


def test_the_tower_memo_returns_the_towers_outputs_and_runs_it_once_per_distinct_video(frozen_model):
    tower = frozen_model.vision_tower
    size = frozen_model.config.vision_config["image_size"]
    first, second = torch.randn(5, 3, size, size), torch.randn(5, 3, size, size)
    memo = TowerMemo(budget_mb=16)
    for pixels in (first, second, first.clone(), second):
        patches, cls = memo(tower, pixels)
        expected_patches, expected_cls = tower(pixels)
        assert torch.equal(patches, expected_patches) and torch.equal(cls, expected_cls)
    assert (memo.cache.misses, memo.cache.hits) == (2, 2)  # equal bytes hit, whichever tensor holds them
    changed = first.clone()
    changed[4, 2, 0, 0] += 1e-3  # one value of one frame
    memo(tower, changed)
    assert memo.cache.misses == 3


def test_the_tower_memo_refuses_a_tower_that_trains():
    torch.manual_seed(0)
    model = SalovaForCausalLM(SalovaConfig.from_preset("tiny"))
    size = model.config.vision_config["image_size"]
    with pytest.raises(RuntimeError, match="trains"):
        TowerMemo(16)(model.vision_tower, torch.randn(1, 3, size, size))


def test_encode_video_with_the_memo_equals_encode_video_without(frozen_model):
    size = frozen_model.config.vision_config["image_size"]
    pixels = torch.randn(7, 3, size, size)
    frozen_model.eval()
    plain = frozen_model.encode_video(pixels, [3, 4])
    frozen_model.tower_memo = TowerMemo(16)
    try:
        memoised = [frozen_model.encode_video(pixels, [3, 4]) for _ in range(2)]
    finally:
        frozen_model.tower_memo = None
    for features in memoised:
        assert torch.equal(features.routing, plain.routing) and torch.equal(features.local, plain.local)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    assert synth.main(["--preset", "ci", "--out", str(root), "--quiet"]) == 0
    return root / "train"


def test_the_decoded_video_cache_gives_the_decoders_pixels_and_decodes_each_video_once(corpus):
    config = SalovaConfig.from_preset("tiny")
    sampler = SamplerSettings.for_config(config)
    settings = DataSettings(sampler, LabelThresholds(), decoded_cache_mb=64)
    data = build_dataset("longvideo", corpus / "scenewalk.json", corpus, corpus, SalovaProcessor.for_config(config), settings)
    records = load_scenewalk(corpus / "scenewalk.json", corpus)
    for index in list(range(len(records))) * 2:
        sample = data.sample(index, np.random.default_rng(index))
        pixels, frames = video_pixels(records[index].video, sampler, record_scenes(records[index]))
        assert torch.equal(sample["pixels"], pixels) and sample["frames_per_scene"] == frames
    assert (data.decoded.misses, data.decoded.hits) == (len(records), len(records))
