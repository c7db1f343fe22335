"""SalovaConfig: presets carry the paper's architecture numbers, overrides apply, every knob
survives save/load, and inconsistent configs fail with a ConfigError naming the field."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salova.config import PRESETS, SalovaConfig
from salova.errors import ConfigError
from salova.tokenizer import byte_tokenizer

PAPER_SHAPES = {
    # preset: (vision width D, text width d_t, LLM width H, pooled patches P, patch grid, LLM type)
    "qwen2.5-7b-siglip": (1152, 1152, 3584, 196, 27, "qwen2"),
    "llama3.2-3b-clip": (1024, 768, 3072, 144, 24, "llama"),
    "phi3.5-clip": (1024, 768, 3072, 144, 24, "phi3"),
}


@pytest.mark.parametrize("name", sorted(PAPER_SHAPES))
def test_paper_presets_have_the_paper_shapes(name):
    config = SalovaConfig.from_preset(name)
    dim, text_dim, llm_dim, patches, grid, llm_type = PAPER_SHAPES[name]
    assert (config.vision_dim, config.text_dim, config.llm_dim) == (dim, text_dim, llm_dim)
    assert (config.num_patches, config.patch_grid) == (patches, grid)
    assert config.llm_config["model_type"] == llm_type
    assert config.text_config["max_position_embeddings"] == config.max_text_pe == 2048
    assert config.connector_latents == 256 and config.focus_k == 5 and config.token_drop_rate == 0.0


def test_default_config_is_the_7b_model():
    default, preset = SalovaConfig(), SalovaConfig.from_preset("qwen2.5-7b-siglip")
    assert default.to_diff_dict() == preset.to_diff_dict()


def test_tiny_preset_matches_the_byte_tokenizer_and_is_small():
    config = SalovaConfig.from_preset("tiny")
    vocab = len(byte_tokenizer())
    assert config.llm_config["vocab_size"] == config.text_config["vocab_size"] == vocab
    assert (config.vision_dim, config.num_patches, config.connector_latents) == (64, 4, 16)


def test_overrides_replace_preset_fields():
    config = SalovaConfig.from_preset("llama3.2-3b-clip", focus_k=9, use_fast=False)
    assert (config.focus_k, config.use_fast, config.pool_grid) == (9, False, 12)


@given(focus_k=st.integers(1, 64), margin=st.floats(0, 1), drop=st.floats(0, 0.9),
       template=st.sampled_from(["qwen2.5", "llama3.2", "phi3.5", "plain"]))
def test_every_knob_survives_save_and_load(tmp_path_factory, focus_k, margin, drop, template):
    directory = tmp_path_factory.mktemp("config")
    config = SalovaConfig.from_preset("tiny", focus_k=focus_k, sim_margin=margin, token_drop_rate=drop,
                                      chat_template=template)
    config.save_pretrained(directory)
    loaded = SalovaConfig.from_pretrained(directory)
    assert loaded.to_dict() == config.to_dict()
    assert (loaded.focus_k, loaded.sim_margin, loaded.chat_template) == (focus_k, margin, template)


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ConfigError) as err:
        SalovaConfig.from_preset("gpt-5")
    assert "gpt-5" in str(err.value)
    assert all(name in str(err.value) for name in PRESETS)


@pytest.mark.parametrize("overrides, field", [
    (dict(vision_config={**PRESETS["tiny"]["vision_config"], "num_attention_heads": 5}),
     "vision_config.num_attention_heads"),
    (dict(llm_config={**PRESETS["tiny"]["llm_config"], "num_key_value_heads": 3}), "num_key_value_heads"),
    (dict(pool_grid=5), "pool_grid"),
    (dict(vision_config={**PRESETS["tiny"]["vision_config"], "patch_size": 64}), "patch_size"),
    (dict(tower_family="eva"), "tower_family"),
    (dict(chat_template="vicuna"), "chat_template"),
    (dict(llm_config={**PRESETS["tiny"]["llm_config"], "model_type": "mamba"}), "llm_config.model_type"),
    (dict(max_text_pe=64), "max_text_pe"),
    (dict(use_focus=False, use_fast=False), "use_focus"),
    (dict(image_token_index=5), "image_token_index"),
    (dict(focus_k=0), "focus_k"),
])
def test_inconsistent_configs_name_the_field(overrides, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        SalovaConfig.from_preset("tiny", **overrides)
