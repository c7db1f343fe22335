"""Vision and text towers: the features the paper specifies, read back from the underlying
transformers model; pooling equal to 2x2 average pooling on even grids; the pooled query
vector independent of batch padding; pretrained weights copied with the extended text table."""

from functools import lru_cache

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from transformers import SiglipConfig, SiglipModel, SiglipVisionModel

from salova.config import SalovaConfig
from salova.modeling.towers import TextTower, VisionTower, load_pretrained_towers

END = 259  # <|im_end|>, the tiny text tower's end token


def tiny(family: str, **overrides) -> SalovaConfig:
    if family == "siglip":
        return SalovaConfig.from_preset("tiny", **overrides)
    clip = dict(
        tower_family="clip", vision_feature_layer=-2,
        vision_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                           patch_size=8, image_size=32),
        text_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         vocab_size=270, max_position_embeddings=128, bos_token_id=257, eos_token_id=END,
                         pad_token_id=256),
    )
    return SalovaConfig.from_preset("tiny", **{**clip, **overrides})


def frames(n, seed=0):
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def query(length, seed):
    body = torch.randint(0, 256, (length - 1,), generator=torch.Generator().manual_seed(seed))
    return torch.cat([body, torch.tensor([END])])


@lru_cache
def text_tower(family: str) -> TextTower:
    torch.manual_seed(0)
    return TextTower(tiny(family)).eval()


def test_siglip_features_are_last_layer_before_post_norm_and_mean_cls():
    torch.manual_seed(0)
    tower = VisionTower(tiny("siglip")).eval()
    pixels = frames(5)
    patches, cls = tower(pixels)
    hidden = tower.model(pixel_values=pixels, output_hidden_states=True).hidden_states[-1]  # (5, 16, 64)
    assert not torch.allclose(hidden, tower.model(pixel_values=pixels).last_hidden_state)  # pre post-layernorm
    torch.testing.assert_close(cls, hidden.mean(dim=1))
    grid = hidden.reshape(5, 4, 4, 64).permute(0, 3, 1, 2)
    expected = F.avg_pool2d(grid, 2).flatten(2).transpose(1, 2)  # bilinear halving == 2x2 mean
    assert patches.shape == (5, 4, 64)
    torch.testing.assert_close(patches, expected)


def test_clip_features_are_layer_minus_two_with_token_zero_as_cls():
    torch.manual_seed(0)
    tower = VisionTower(tiny("clip")).eval()
    pixels = frames(3)
    patches, cls = tower(pixels)
    hidden = tower.model(pixel_values=pixels, output_hidden_states=True).hidden_states[-2]  # (3, 1+16, 64)
    torch.testing.assert_close(cls, hidden[:, 0])
    grid = hidden[:, 1:].reshape(3, 4, 4, 64).permute(0, 3, 1, 2)
    torch.testing.assert_close(patches, F.avg_pool2d(grid, 2).flatten(2).transpose(1, 2))


def test_odd_grid_is_resized_bilinearly_to_ceil_half():
    # SigLIP/384: 27 x 27 -> 14 x 14 (average pooling would give 13 x 13)
    config = tiny("siglip", vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                               num_attention_heads=2, patch_size=4, image_size=20), pool_grid=3)
    tower = VisionTower(config).eval()
    patches, _ = tower(torch.randn(2, 3, 20, 20))
    hidden = tower.model(pixel_values=torch.randn(2, 3, 20, 20), output_hidden_states=True).hidden_states[-1]
    assert hidden.shape[1] == 25 and patches.shape == (2, 9, 32)


def test_frame_chunking_does_not_change_features():
    torch.manual_seed(0)
    chunked = VisionTower(tiny("siglip", frame_chunk=2)).eval()
    whole = VisionTower(tiny("siglip", frame_chunk=64)).eval()
    whole.load_state_dict(chunked.state_dict())
    pixels = frames(7)
    for a, b in zip(chunked(pixels), whole(pixels)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("family", ["siglip", "clip"])
def test_raw_uint8_frames_equal_their_normalised_pixels(family):
    """Raw frames are normalised chunk by chunk inside the tower, exactly as normalize_frames does."""
    from salova.data.transforms import normalize_frames

    torch.manual_seed(0)
    tower = VisionTower(tiny(family, frame_chunk=2)).eval()
    raw = torch.randint(0, 256, (5, 32, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for a, b in zip(tower(raw), tower(normalize_frames(raw, family))):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize("family", ["siglip", "clip"])
def test_pooled_vector_is_read_at_the_real_end_token(family):
    torch.manual_seed(0)
    tower = TextTower(tiny(family)).eval()
    ids = query(6, seed=1)[None]
    tokens, mask = tower(ids, torch.ones_like(ids))
    reference = tower.model(input_ids=ids, output_hidden_states=True)
    torch.testing.assert_close(tokens[:, 0], reference.pooler_output)  # unpadded: transformers' own pooling
    torch.testing.assert_close(tokens[:, 1:], reference.hidden_states[-2])
    assert mask.all() and tokens.shape == (1, 7, 64)


@pytest.mark.parametrize("family", ["siglip", "clip"])
@given(length=st.integers(2, 12), extra=st.integers(1, 20), seed=st.integers(0, 1000))
def test_query_features_do_not_depend_on_batch_padding(family, length, extra, seed):
    tower = text_tower(family)
    alone = query(length, seed)
    longer = query(length + extra, seed + 1)
    batch = torch.full((2, length + extra), 256)
    batch[0, :length], batch[1] = alone, longer
    batch_mask = (torch.arange(length + extra) < torch.tensor([[length], [length + extra]])).long()
    with torch.no_grad():
        tokens_alone, _ = tower(alone[None], torch.ones(1, length, dtype=torch.long))
        tokens_batch, mask_batch = tower(batch, batch_mask)
    torch.testing.assert_close(tokens_batch[0, : 1 + length], tokens_alone[0], atol=1e-5, rtol=1e-5)
    assert mask_batch[0].sum() == 1 + length


def test_pretrained_weights_load_with_the_text_table_extended(tmp_path):
    torch.manual_seed(0)
    saved = SiglipModel(SiglipConfig(
        vision_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                           patch_size=8, image_size=32),
        text_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         vocab_size=270, max_position_embeddings=16, projection_size=64, pad_token_id=256,
                         bos_token_id=257, eos_token_id=END),
    ))
    saved.save_pretrained(tmp_path)
    config = tiny("siglip")  # 2 of the 3 vision layers, a 128-row text position table
    vision, text = VisionTower(config), TextTower(config)
    fresh_rows = named(text.model, "position_embedding.weight")[16:].clone()
    load_pretrained_towers(vision, text, str(tmp_path))

    with torch.no_grad():  # our 2-layer tower reproduces layer 2 of the saved 3-layer tower
        _, cls = vision.eval()(frames(2))
        reference = SiglipVisionModel.from_pretrained(tmp_path).eval()  # the saved tower, all 3 layers
        hidden = reference(pixel_values=frames(2), output_hidden_states=True).hidden_states[2]
    torch.testing.assert_close(cls, hidden.mean(dim=1))
    table = named(text.model, "position_embedding.weight")
    torch.testing.assert_close(table[:16], named(saved.text_model, "position_embedding.weight"))
    torch.testing.assert_close(table[16:], fresh_rows)
    torch.testing.assert_close(named(text.model, "head.weight"), named(saved.text_model, "head.weight"))


def named(module, suffix):
    """The parameter whose name ends with `suffix` (transformers 4.x and 5 nest the text model differently)."""
    return next(p for n, p in module.named_parameters() if n.endswith(suffix))
