"""ST-Connector: packed forward against the padded yardstick, scene independence,
parameter count, frames beyond the table, token drop, the CUDA attention path's math."""

import copy
import warnings
from fractions import Fraction
from functools import lru_cache

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import salova.modeling.connector as connector_module
from salova.errors import ConfigError
from salova.modeling.baseline import padded_forward, per_scene_forward
from salova.modeling.connector import (
    STConnector,
    flex_scene_attention,
    kept_tokens,
    looped_scene_attention,
    scene_block_mask,
)
from salova.modeling.positions import positions

DIM, PATCHES, LATENTS, TABLE = 32, 4, 8, 8


@lru_cache(maxsize=1)
def small_connector():
    torch.manual_seed(0)
    connector = STConnector(DIM, PATCHES, num_latents=LATENTS, max_frames=TABLE).eval()
    with torch.no_grad():  # non-trivial LayerNorm affine, so the folded kv weights are really tested
        for layer in connector.layers:
            layer.attn.norm_media.weight.uniform_(0.5, 1.5)
            layer.attn.norm_media.bias.normal_(0, 0.3)
    return connector


def video(frames, seed=0):
    generator = torch.Generator().manual_seed(seed)
    patches = torch.randn(sum(frames), PATCHES, DIM, generator=generator)
    scene_cls = torch.randn(len(frames), DIM, generator=generator)
    return patches, scene_cls


scene_lengths = st.lists(st.integers(1, 12), min_size=1, max_size=5)


@settings(max_examples=15, deadline=None)
@given(frames=scene_lengths)
def test_packed_equals_padded_baseline(frames):
    connector = small_connector()
    patches, scene_cls = video(frames)
    with torch.no_grad():
        packed = connector(patches, frames, scene_cls)
        padded = padded_forward(connector, patches, frames, scene_cls)
    assert packed.shape == (len(frames), 1 + LATENTS, DIM)
    torch.testing.assert_close(packed, padded, atol=1e-5, rtol=1e-5)


def test_per_scene_baseline_equals_padded_baseline():
    connector = small_connector()
    frames = [2, 9, 1, 5]
    patches, scene_cls = video(frames, seed=3)
    with torch.no_grad():
        torch.testing.assert_close(per_scene_forward(connector, patches, frames, scene_cls),
                                   padded_forward(connector, patches, frames, scene_cls), atol=1e-5, rtol=1e-5)


@settings(max_examples=15, deadline=None)
@given(frames=scene_lengths, data=st.data())
def test_scene_output_independent_of_other_scenes(frames, data):
    connector = small_connector()
    patches, scene_cls = video(frames, seed=1)
    scenes = list(zip(patches.split(frames), scene_cls))
    order = data.draw(st.permutations(range(len(frames))))
    chosen = order[:data.draw(st.integers(1, len(frames)))]  # some scenes removed, the rest reordered
    with torch.no_grad():
        full = connector(patches, frames, scene_cls)
        subset = connector(torch.cat([scenes[i][0] for i in chosen]), [frames[i] for i in chosen],
                           torch.stack([scenes[i][1] for i in chosen]))
    torch.testing.assert_close(subset, full[chosen], atol=1e-5, rtol=1e-5)


def test_parameter_count_at_siglip_size():
    with torch.device("meta"):
        connector = STConnector(1152, 196, num_latents=256, depth=2, heads=2, dim_head=64,
                                ff_mult=4, max_frames=2160)
    released, dead_latents = 25_735_680, (1 + 256) * 1152  # released module minus cls_latents + vis_latents
    assert sum(p.numel() for p in connector.parameters()) == released - dead_latents == 25_439_616
    attn = connector.layers[0].attn
    assert attn.to_q.bias is None and attn.to_kv.bias is None and attn.to_out.bias is None
    assert connector.latents.shape == (257, 1152)


def test_routing_latent_starts_at_zero():
    connector = STConnector(DIM, PATCHES, num_latents=LATENTS)
    assert torch.count_nonzero(connector.latents[0]) == 0
    assert torch.count_nonzero(connector.latents[1:]) == LATENTS * DIM


def test_positions_within_table_are_the_first_rows():
    table = torch.randn(TABLE, DIM)
    assert torch.equal(positions(table, 5), table[:5])


def resampled_by_numpy(table, n):
    rows = table.detach().numpy()
    where = np.linspace(0, len(rows) - 1, n)
    return torch.tensor(np.stack([np.interp(where, np.arange(len(rows)), column) for column in rows.T], axis=1))


def test_positions_beyond_table_are_linearly_resampled():
    table = torch.randn(TABLE, DIM, dtype=torch.float64)
    torch.testing.assert_close(positions(table, 20), resampled_by_numpy(table, 20))


def test_scene_longer_than_frame_table():
    connector = small_connector()
    frames = [20, 3]  # scene 0 has more frames than the 8-row table
    patches, scene_cls = video(frames, seed=2)
    wide = copy.deepcopy(connector)  # the same model with the resampled rows written into a longer table
    wide.frame_embs = torch.nn.Parameter(resampled_by_numpy(connector.frame_embs, 20).float())
    with torch.no_grad():
        out = connector(patches, frames, scene_cls)
        expected_long = wide(patches[:20], [20], scene_cls[:1])
        expected_short = connector(patches[20:], [3], scene_cls[1:])
    torch.testing.assert_close(out[0], expected_long[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[1], expected_short[0], atol=1e-5, rtol=1e-5)


def exact_keep(n_tokens, rate):
    ratio = min(Fraction(n_tokens, 18000), Fraction(1))
    return max(1, int(n_tokens * (1 - ratio * rate)))  # int() floors a positive Fraction


def test_kept_tokens_reference_example():
    # p = 0.4, F = [3, 10, 120], P = 196: per-scene rule. (The released padded-max rule gives [588, 1960, 14112].)
    counts = [kept_tokens(frames * 196, 0.4) for frames in (3, 10, 120)]
    assert counts == [exact_keep(n, Fraction(2, 5)) for n in (588, 1960, 23520)] == [580, 1874, 14112]


@settings(max_examples=50, deadline=None)
@given(n_tokens=st.integers(1, 60000), twentieths=st.integers(0, 20))
def test_kept_tokens_formula(n_tokens, twentieths):
    assert kept_tokens(n_tokens, twentieths / 20) == exact_keep(n_tokens, Fraction(twentieths, 20))


def test_token_drop_keeps_per_scene_counts():
    connector = small_connector()
    frames = [3, 10, 7]
    tokens = [f * PATCHES for f in frames]
    kept_ids, counts = connector._drop_tokens(tokens, 0.7, "cpu")
    assert counts == [kept_tokens(n, 0.7) for n in tokens]
    starts = np.cumsum([0] + tokens)
    for scene, scene_ids in enumerate(kept_ids.split(counts)):
        assert scene_ids.unique().numel() == counts[scene]
        assert starts[scene] <= scene_ids.min() and scene_ids.max() < starts[scene + 1]


def test_token_drop_only_in_training():
    connector = copy.deepcopy(small_connector())
    frames = [40, 30]  # large enough that the drop removes tokens
    patches, scene_cls = video(frames, seed=4)
    with torch.no_grad():
        eval_once = connector.eval()(patches, frames, scene_cls, token_drop_rate=0.5)
        eval_twice = connector(patches, frames, scene_cls, token_drop_rate=0.5)
        no_drop = connector(patches, frames, scene_cls)
        train_no_rate = connector.train()(patches, frames, scene_cls, token_drop_rate=0.0)
        train_drop = connector(patches, frames, scene_cls, token_drop_rate=0.5)
    assert torch.equal(eval_once, eval_twice) and torch.equal(eval_once, no_drop)
    torch.testing.assert_close(train_no_rate, no_drop)
    assert (train_drop - no_drop).abs().max() > 1e-3


def test_gradients_match_padded_baseline():
    frames = [2, 5]
    patches, scene_cls = video(frames, seed=5)
    packed_model = copy.deepcopy(small_connector())
    padded_model = copy.deepcopy(small_connector())
    packed_model(patches, frames, scene_cls).square().sum().backward()
    padded_forward(padded_model, patches, frames, scene_cls).square().sum().backward()
    for (name, packed_param), padded_param in zip(packed_model.named_parameters(), padded_model.parameters()):
        torch.testing.assert_close(packed_param.grad, padded_param.grad, atol=1e-4, rtol=1e-4, msg=name)


@pytest.mark.parametrize("tokens, n_latents", [([12, 4, 28], 9), ([300, 5, 140, 1], 9), ([40, 260, 7], 130)])
def test_flex_attention_path_matches_scene_loop(tokens, n_latents):
    """The CUDA path's math, run eagerly on CPU (it is selected automatically only on CUDA),
    with scenes inside one block, scenes spanning several, and latents padded to two blocks."""
    generator = torch.Generator().manual_seed(6)
    q = torch.randn(len(tokens), n_latents, 128, generator=generator)
    media_kv = torch.randn(sum(tokens), 256, generator=generator)
    latent_kv = torch.randn(len(tokens), n_latents, 256, generator=generator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "flex_attention called without torch.compile"
        flex = flex_scene_attention(q, media_kv, latent_kv, tokens, heads=2, compile=False)
    torch.testing.assert_close(flex, looped_scene_attention(q, media_kv, latent_kv, tokens, heads=2),
                               atol=1e-5, rtol=1e-5)


def test_frame_count_mismatch_is_a_config_error():
    connector = small_connector()
    patches, scene_cls = video([3, 4])
    with pytest.raises(ConfigError, match="frames_per_scene sums to 8"):
        connector(patches, [3, 5], scene_cls)


def listed_blocks(num_blocks: torch.Tensor, indices: torch.Tensor) -> list[set[int]]:
    """Each query block's listed key blocks, from a BlockMask's (count, indices) pair."""
    return [set(row[:count].tolist()) for count, row in zip(num_blocks[0, 0], indices[0, 0])]


@settings(max_examples=30, deadline=None)
@given(tokens=st.lists(st.integers(1, 300), min_size=1, max_size=6), n_latents=st.integers(1, 300))
def test_flex_block_mask_lists_exactly_the_needed_blocks(tokens, n_latents):
    """Each query block (one scene's padded latents) lists as full exactly the key blocks wholly
    inside its scene's keys, and as partial exactly the other blocks its scene's keys touch."""
    block = 128
    padded = -(-n_latents // block) * block
    mask = scene_block_mask(tuple(tokens), n_latents, padded, torch.device("cpu"), block_size=block)
    full = listed_blocks(mask.full_kv_num_blocks, mask.full_kv_indices)
    partial = listed_blocks(mask.kv_num_blocks, mask.kv_indices)
    assert len(full) == len(tokens) * padded // block
    start = 0
    for scene, n_tokens in enumerate(tokens):
        end = start + n_tokens + n_latents
        touched = set(range(start // block, (end - 1) // block + 1))
        inside = {b for b in touched if b * block >= start and (b + 1) * block <= end}
        for query_block in range(scene * padded // block, (scene + 1) * padded // block):
            assert full[query_block] == inside
            assert partial[query_block] == touched - inside
        start = end


def test_chunking_does_not_change_the_output(monkeypatch):
    """Media chunks that split scenes and feed-forward chunks of a few scenes give the same result."""
    connector = small_connector()
    frames = [3, 7, 1, 4, 9]
    patches, scene_cls = video(frames, seed=7)
    monkeypatch.setitem(connector_module.MEDIA_CHUNK_FRAMES, "cpu", 2)
    monkeypatch.setitem(connector_module.FF_CHUNK_SCENES, "cpu", 3)
    with torch.no_grad():
        torch.testing.assert_close(connector(patches, frames, scene_cls),
                                   padded_forward(connector, patches, frames, scene_cls), atol=1e-5, rtol=1e-5)
