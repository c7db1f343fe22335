"""SR-Router: scores against an independent re-computation, scene-count and padding
independence, the similarity loss against hand-computed values, top-1 accuracy."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from salova.errors import ConfigError
from salova.modeling.router import SRRouter, in_batch_labels, router_top1_accuracy, similarity_loss

DIM, TEXT_DIM = 16, 12


def small_router(max_scenes=8, seed=0):
    torch.manual_seed(seed)
    router = SRRouter(DIM, TEXT_DIM, num_layers=2, num_heads=1, ffn_dim=24, max_scenes=max_scenes,
                      max_text=10, init_logit_scale=1.0).eval()
    with torch.no_grad():  # make the PReLU slopes differ from each other and from 0.25
        for index, layer in enumerate(router.layers):
            layer.activation.weight.fill_(0.1 + 0.3 * index)
    return router


def inputs(n_queries, n_scenes, n_text, seed=0):
    generator = torch.Generator().manual_seed(seed)
    routing = torch.randn(n_scenes, DIM, generator=generator)
    text = torch.randn(n_queries, n_text, TEXT_DIM, generator=generator)
    lengths = torch.randint(1, n_text + 1, (n_queries,), generator=generator)
    mask = torch.arange(n_text)[None, :] < lengths[:, None]
    return routing, text, mask


def scores_by_hand(router, routing, text_tokens, text_mask):
    """The router's math written out with plain tensor ops from its parameters."""
    text = text_tokens @ router.text_proj.weight.T + router.text_proj.bias
    n_scenes, n_text = routing.shape[0], text_tokens.shape[1]
    video = routing.expand(text_tokens.shape[0], -1, -1)
    video_pos, text_pos = router.scene_pos[:n_scenes], router.text_pos[:n_text]
    for layer in router.layers:
        w_q, w_k, w_v = layer.cross_attn.in_proj_weight.chunk(3)
        b_q, b_k, b_v = layer.cross_attn.in_proj_bias.chunk(3)
        q = (video + video_pos) @ w_q.T + b_q
        k = (text + text_pos) @ w_k.T + b_k
        v = text @ w_v.T + b_v
        logits = q @ k.transpose(1, 2) / math.sqrt(DIM)
        logits = logits.masked_fill(~text_mask[:, None, :], float("-inf"))
        attended = logits.softmax(-1) @ v @ layer.cross_attn.out_proj.weight.T + layer.cross_attn.out_proj.bias
        h = video + attended
        normed = F.layer_norm(h, (DIM,), layer.norm1.weight, layer.norm1.bias)
        hidden = normed @ layer.linear1.weight.T + layer.linear1.bias
        hidden = torch.where(hidden > 0, hidden, layer.activation.weight * hidden)
        video = F.layer_norm(h + hidden @ layer.linear2.weight.T + layer.linear2.bias, (DIM,),
                             layer.norm2.weight, layer.norm2.bias)
    query = text[:, 0]
    cosine = (video * query[:, None]).sum(-1) / (video.norm(dim=-1) * query.norm(dim=-1)[:, None])
    return math.exp(router.logit_scale.item()) * cosine


def test_scores_match_independent_computation():
    router = small_router()
    routing, text, mask = inputs(n_queries=3, n_scenes=5, n_text=7)
    with torch.no_grad():
        scores = router(routing, text, mask)
        expected = scores_by_hand(router, routing, text, mask)
    assert scores.shape == (3, 5)
    torch.testing.assert_close(scores, expected, atol=1e-5, rtol=1e-5)
    assert scores.abs().max() <= math.e + 1e-5  # exp(tau) * cos with tau = 1 at init


def test_more_scenes_than_the_table():
    router = small_router(max_scenes=4)
    routing, text, mask = inputs(n_queries=2, n_scenes=10, n_text=5, seed=1)
    table = router.scene_pos.detach().numpy()
    where = np.linspace(0, 3, 10)
    resampled = np.stack([np.interp(where, np.arange(4), column) for column in table.T], axis=1)
    wide = small_router(max_scenes=10)
    wide.load_state_dict({**router.state_dict(), "scene_pos": torch.tensor(resampled, dtype=torch.float32)})
    with torch.no_grad():
        torch.testing.assert_close(router(routing, text, mask), wide(routing, text, mask), atol=1e-5, rtol=1e-5)


@settings(max_examples=15, deadline=None)
@given(extra_pads=st.integers(1, 3), n_scenes=st.integers(1, 12), others=st.integers(0, 3))
def test_scores_independent_of_padding_and_batch(extra_pads, n_scenes, others):
    router = small_router()
    routing, text, mask = inputs(n_queries=1 + others, n_scenes=n_scenes, n_text=6, seed=n_scenes)
    padded_text = torch.cat([text, torch.randn(1 + others, extra_pads, TEXT_DIM)], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(1 + others, extra_pads, dtype=torch.bool)], dim=1)
    with torch.no_grad():
        alone = router(routing, text[:1], mask[:1])
        in_batch = router(routing, padded_text, padded_mask)
    torch.testing.assert_close(in_batch[:1], alone, atol=1e-5, rtol=1e-5)


def test_pooled_token_must_be_real():
    router = small_router()
    routing, text, mask = inputs(n_queries=2, n_scenes=3, n_text=4)
    mask[1, 0] = False
    with pytest.raises(ConfigError, match="pooled query token"):
        router(routing, text, mask)


def test_bce_part():
    scores = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.3, -2.0]])
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    _, parts = similarity_loss(scores, labels, use_margin=False)
    probs = torch.sigmoid(scores)
    by_hand = -(labels * probs.log() + (1 - labels) * (1 - probs).log()).mean()
    torch.testing.assert_close(parts["bce"], F.binary_cross_entropy_with_logits(scores, labels))
    torch.testing.assert_close(parts["bce"], by_hand)
    assert parts["margin"].item() == 0.0


def test_margin_part_hand_computed():
    scores = torch.tensor([[0.9, 0.8, 0.1], [0.35, 0.5, 0.45], [0.2, 0.3, 0.4]])
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])  # row 2 has no positive
    loss, parts = similarity_loss(scores, labels, margin=0.2)
    # pairs: (0.9, 0.8) -> 0.1; (0.9, 0.1) -> 0; (0.5, 0.35) -> 0.05; (0.5, 0.45) -> 0.15
    assert parts["margin"].item() == pytest.approx((0.1 + 0.0 + 0.05 + 0.15) / 4, abs=1e-6)
    torch.testing.assert_close(loss, parts["bce"] + parts["margin"])


def test_margin_zero_when_separated_or_no_pairs():
    separated = torch.tensor([[3.0, 0.5, -1.0], [0.0, 2.0, 1.7]])
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert similarity_loss(separated, labels, margin=0.2)[1]["margin"].item() == 0.0
    all_positive = torch.ones(2, 3)
    assert similarity_loss(separated, all_positive)[1]["margin"].item() == 0.0


def test_gradient_reaches_logit_scale():
    router = small_router().train()
    routing, text, mask = inputs(n_queries=3, n_scenes=3, n_text=5, seed=2)
    loss, _ = similarity_loss(router(routing, text, mask), in_batch_labels(3))
    loss.backward()
    assert router.logit_scale.grad is not None and router.logit_scale.grad.abs() > 0


def test_in_batch_labels_are_identity():
    assert torch.equal(in_batch_labels(3), torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1]]))


def test_top1_accuracy():
    scores = torch.tensor([[0.1, 0.9, 0.3], [0.8, 0.1, 0.2], [0.2, 0.3, 0.7], [0.5, 0.4, 0.0]])
    labels = torch.tensor([[0.0, 1, 0], [0, 1, 0], [1, 0, 1], [0, 0, 1]])
    assert router_top1_accuracy(scores, labels) == pytest.approx(2 / 4)  # rows 0 and 2 hit a positive
