"""The stage-1 in-batch router loss: BCE on identity labels (the paper) or symmetric InfoNCE
(`in_batch_loss="infonce"`, the `small` preset)."""

import math

import pytest
import torch
import torch.nn.functional as F

from salova.config import SalovaConfig
from salova.errors import ConfigError
from salova.modeling.router import in_batch_infonce_loss
from salova.modeling.salova import SalovaForCausalLM, SceneFeatures
from salova.processing import SalovaProcessor


def test_infonce_is_the_mean_of_row_and_column_cross_entropies():
    scores = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.0, 0.0], [0.0, 3.0, 0.5]])
    rows = -sum(math.log(math.exp(scores[i, i]) / sum(math.exp(v) for v in scores[i].tolist())) for i in range(3)) / 3
    cols = -sum(math.log(math.exp(scores[i, i]) / sum(math.exp(v) for v in scores[:, i].tolist())) for i in range(3)) / 3
    assert in_batch_infonce_loss(scores).item() == pytest.approx((rows + cols) / 2, rel=1e-6)


def test_infonce_ignores_a_common_shift_that_bce_rewards():
    # the failure BCE shows on an 8 x 8 batch: moving every score to logit(1/8) lowers it to H(1/8)
    scores = torch.randn(8, 8, generator=torch.Generator().manual_seed(0))
    shifted = scores + 3.0
    assert in_batch_infonce_loss(shifted).item() == pytest.approx(in_batch_infonce_loss(scores).item(), rel=1e-5)
    constant = torch.full((8, 8), math.log(1 / 7))  # sigmoid = 1/8
    entropy = -(math.log(1 / 8) / 8 + 7 / 8 * math.log(7 / 8))
    assert F.binary_cross_entropy_with_logits(constant, torch.eye(8)).item() == pytest.approx(entropy, rel=1e-5)
    assert in_batch_infonce_loss(constant).item() == pytest.approx(math.log(8), rel=1e-6)


def test_the_model_uses_the_configured_in_batch_loss():
    config = SalovaConfig.from_preset("tiny", in_batch_loss="infonce")
    torch.manual_seed(0)
    model = SalovaForCausalLM(config).eval()
    generator = torch.Generator().manual_seed(1)
    dim, latents = config.vision_dim, config.connector_latents
    videos = [SceneFeatures(torch.randn(1, dim, generator=generator), torch.randn(1, latents, dim, generator=generator))
              for _ in range(3)]
    processor = SalovaProcessor.for_config(config)
    queries = [processor.queries([text]) for text in ("red", "a green triangle", "blue")]
    ids = torch.tensor([[config.image_token_index, 65, 66]] * 3)
    with torch.no_grad():
        out = model(ids, torch.ones_like(ids), ids.masked_fill(ids < 0, -100), videos=videos,
                    query_ids=[q for q, _ in queries], query_mask=[m for _, m in queries], in_batch_router=True)
    scores = out.router_scores[0]
    expected = (F.cross_entropy(scores, torch.arange(3)) + F.cross_entropy(scores.T, torch.arange(3))) / 2
    torch.testing.assert_close(out.sim_loss, expected)


def test_small_preset_uses_infonce_and_unknown_losses_are_refused():
    assert SalovaConfig.from_preset("small").in_batch_loss == "infonce"
    assert SalovaConfig.from_preset("tiny").in_batch_loss == "bce"
    with pytest.raises(ConfigError, match="in_batch_loss"):
        SalovaConfig.from_preset("tiny", in_batch_loss="hinge")
