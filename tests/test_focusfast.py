"""FocusFast: top-K selection in temporal order, the block layout [Focus ; Fast] and its length
K*L + T, the pathway ablations, and splicing at the single placeholder with ignored labels."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from salova.config import SalovaConfig
from salova.errors import ConfigError, RecordError
from salova.modeling.focusfast import select_focus, splice, visual_block
from salova.modeling.projector import Projector

IMAGE = -200
LATENTS = SalovaConfig.from_preset("tiny").connector_latents  # L of the tiny model


@given(scores=st.lists(st.floats(-5, 5, allow_nan=False), min_size=1, max_size=30), k=st.integers(1, 40))
def test_select_focus_takes_the_best_scenes_in_temporal_order(scores, k):
    chosen = select_focus(torch.tensor(scores), k).tolist()
    # independent expectation: rank by (score descending, index ascending), keep k, sort by time
    ranked = sorted(range(len(scores)), key=lambda i: (-torch.tensor(scores[i]).item(), i))
    assert chosen == sorted(ranked[:k])
    assert len(chosen) == min(k, len(scores))
    if k >= len(scores):
        assert chosen == list(range(len(scores)))


def test_select_focus_example():
    assert select_focus(torch.tensor([0.1, 0.9, -0.3, 0.5, 0.7]), 3).tolist() == [1, 3, 4]


@given(num_scenes=st.integers(1, 12), k=st.integers(1, 15), seed=st.integers(0, 100))
def test_visual_block_is_focus_locals_then_all_routing_tokens(num_scenes, k, seed):
    latents = LATENTS
    generator = torch.Generator().manual_seed(seed)
    local = torch.randn(num_scenes, latents, 8, generator=generator)
    routing = torch.randn(num_scenes, 8, generator=generator)
    focus = select_focus(torch.randn(num_scenes, generator=generator), k)
    block = visual_block(nn.Identity(), local, routing, focus)
    assert block.shape == (min(k, num_scenes) * latents + num_scenes, 8)
    for slot, scene in enumerate(focus.tolist()):
        torch.testing.assert_close(block[slot * latents:(slot + 1) * latents], local[scene])
    torch.testing.assert_close(block[-num_scenes:], routing)


def test_visual_block_projects_every_token_with_the_one_mlp():
    torch.manual_seed(0)
    projector = Projector(8, 12)
    local, routing = torch.randn(3, 4, 8), torch.randn(3, 8)
    block = visual_block(projector, local, routing, torch.tensor([0, 2]))
    expected_first = projector.linear_2(torch.nn.functional.gelu(projector.linear_1(local[0, 0])))
    torch.testing.assert_close(block[0], expected_first)
    assert block.shape == (2 * 4 + 3, 12)


def test_pathway_ablations_drop_one_part():
    local, routing, focus = torch.randn(5, 4, 8), torch.randn(5, 8), torch.tensor([1, 3])
    only_focus = visual_block(nn.Identity(), local, routing, focus, use_fast=False)
    only_fast = visual_block(nn.Identity(), local, routing, focus, use_focus=False)
    torch.testing.assert_close(only_focus, local[[1, 3]].flatten(0, 1))
    torch.testing.assert_close(only_fast, routing)
    with pytest.raises(ConfigError):
        visual_block(nn.Identity(), local, routing, focus, use_focus=False, use_fast=False)


@given(before=st.integers(0, 6), after=st.integers(0, 6), block_len=st.integers(1, 9))
def test_splice_replaces_the_placeholder_and_ignores_the_block(before, after, block_len):
    ids = torch.tensor([*range(1, before + 1), IMAGE, *range(50, 50 + after)])
    embeds = torch.arange(len(ids), dtype=torch.float).unsqueeze(1).expand(-1, 3)
    labels = ids.clone()
    block = torch.full((block_len, 3), -1.0)
    spliced, spliced_labels = splice(embeds, ids, labels, block, IMAGE)
    assert spliced.shape == (len(ids) - 1 + block_len, 3)
    torch.testing.assert_close(spliced[:before], embeds[:before])
    torch.testing.assert_close(spliced[before:before + block_len], block)
    torch.testing.assert_close(spliced[before + block_len:], embeds[before + 1:])
    assert spliced_labels.tolist() == [*range(1, before + 1), *[-100] * block_len, *range(50, 50 + after)]


@pytest.mark.parametrize("ids", [[1, 2, 3], [1, IMAGE, 2, IMAGE]])
def test_splice_needs_exactly_one_placeholder(ids):
    ids = torch.tensor(ids)
    with pytest.raises(RecordError, match="placeholder"):
        splice(torch.zeros(len(ids), 3), ids, None, torch.zeros(2, 3), IMAGE)
