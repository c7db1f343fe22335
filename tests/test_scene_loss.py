"""The in-video router loss of stages 1.5 and 2: the paper's BCE over every (query, scene) cell,
or a cross-entropy of each query over its video's scenes (`scene_loss="softmax"`)."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from salova.config import SalovaConfig
from salova.errors import ConfigError
from salova.modeling.router import scene_softmax_loss, similarity_loss
from salova.modeling.salova import SalovaForCausalLM, SceneFeatures
from salova.processing import SalovaProcessor
from training import build
from training.recipe import load_recipe


def by_hand(scores: list[list[float]], labels: list[list[int]]) -> float:
    """-log(sum of exp over the positives / sum over all), averaged over rows with a positive."""
    losses = []
    for row, marks in zip(scores, labels):
        if any(marks):
            positive = sum(math.exp(s) for s, m in zip(row, marks) if m)
            losses.append(-math.log(positive / sum(math.exp(s) for s in row)))
    return sum(losses) / len(losses) if losses else 0.0


def test_one_positive_per_row_is_the_cross_entropy_over_scenes():
    scores = torch.tensor([[2.0, -1.0, 0.5, 0.0], [0.1, 0.3, -2.0, 1.0]])
    labels = torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 1.0]])
    loss = scene_softmax_loss(scores, labels)
    assert loss.item() == pytest.approx(by_hand(scores.tolist(), labels.int().tolist()), rel=1e-6)
    torch.testing.assert_close(loss, F.cross_entropy(scores, torch.tensor([0, 3])))


def test_several_positives_share_the_probability_mass_and_empty_rows_add_nothing():
    scores = torch.tensor([[0.5, 1.5, -0.5], [1.0, 0.0, 2.0], [3.0, -3.0, 0.0]])
    labels = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])  # row 2: no positive
    loss = scene_softmax_loss(scores, labels)
    assert loss.item() == pytest.approx(by_hand(scores.tolist(), labels.int().tolist()), rel=1e-6)
    torch.testing.assert_close(loss, scene_softmax_loss(scores[:2], labels[:2]))
    assert scene_softmax_loss(scores, torch.zeros(3, 3)).item() == 0.0


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 4), scenes=st.integers(2, 12), shift=st.floats(-20, 20), seed=st.integers(0, 10_000))
def test_a_common_shift_of_a_row_changes_nothing_unlike_bce(rows, scenes, shift, seed):
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(rows, scenes, generator=generator, dtype=torch.float64)
    labels = F.one_hot(torch.randint(scenes, (rows,), generator=generator), scenes).to(scores)
    moved = scores + shift
    assert scene_softmax_loss(moved, labels).item() == pytest.approx(scene_softmax_loss(scores, labels).item(), rel=1e-9)
    if abs(shift) > 1:
        bce = F.binary_cross_entropy_with_logits
        assert bce(moved, labels).item() != pytest.approx(bce(scores, labels).item(), rel=1e-6)


def test_similarity_loss_names_its_base_and_adds_the_same_margin_term():
    scores = torch.tensor([[0.9, 0.8, 0.1], [0.35, 0.5, 0.45]])
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    loss, parts = similarity_loss(scores, labels, margin=0.2, kind="softmax")
    _, bce_parts = similarity_loss(scores, labels, margin=0.2)
    torch.testing.assert_close(parts["softmax"], F.cross_entropy(scores, torch.tensor([0, 1])))
    torch.testing.assert_close(parts["margin"], bce_parts["margin"])
    torch.testing.assert_close(loss, parts["softmax"] + parts["margin"])


def test_the_model_uses_the_configured_scene_loss():
    config = SalovaConfig.from_preset("tiny", scene_loss="softmax", use_margin_loss=False)
    torch.manual_seed(0)
    model = SalovaForCausalLM(config).eval()
    generator = torch.Generator().manual_seed(1)
    dim, latents = config.vision_dim, config.connector_latents
    videos = [SceneFeatures(torch.randn(t, dim, generator=generator), torch.randn(t, latents, dim, generator=generator))
              for t in (4, 3)]
    processor = SalovaProcessor.for_config(config)
    queries = [processor.queries(texts) for texts in (["red", "a green square"], ["blue"])]
    targets = [torch.tensor([2, 0]), torch.tensor([1])]
    ids = torch.tensor([[config.image_token_index, 65, 66]] * 2)
    with torch.no_grad():
        out = model(ids, torch.ones_like(ids), ids.masked_fill(ids < 0, -100), videos=videos,
                    query_ids=[q for q, _ in queries], query_mask=[m for _, m in queries],
                    router_labels=[F.one_hot(t, v.num_scenes).float() for t, v in zip(targets, videos)])
    expected = torch.stack([F.cross_entropy(s, t) for s, t in zip(out.router_scores, targets)]).mean()
    torch.testing.assert_close(out.sim_loss, expected)


def test_the_recipe_sets_the_scene_loss_and_refuses_unknown_ones(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(f"output_dir: {tmp_path / 'out'}\ndata_path: records.json\npreset: tiny\nscene_loss: softmax\n")
    model, _ = build.model_and_processor(load_recipe(path, "sft"), "recipe.yaml", dtype=torch.float32)
    assert model.config.scene_loss == "softmax"
    with pytest.raises(ConfigError, match=r"recipe.yaml: scene_loss = 'hinge'"):
        load_recipe(path, "sft", {"scene_loss": "hinge"})
    with pytest.raises(ConfigError, match="scene_loss"):
        SalovaConfig.from_preset("tiny", scene_loss="hinge")
