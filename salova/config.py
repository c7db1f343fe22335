"""SalovaConfig: every knob of the model in one Hugging Face config, plus named presets.

The defaults are the paper's 7B model (SigLIP-so400m/384 towers, Qwen2.5-7B-Instruct).
`SalovaConfig.from_preset(name, **overrides)` builds the other paper models and the
`tiny` model the tests and CPU demos use. The tower and LLM architectures are stored as
plain dicts of transformers config kwargs, so every preset builds on the `meta` device
without downloading anything.
"""

from __future__ import annotations

import copy
import math

from transformers import PretrainedConfig

from salova.errors import ConfigError
from salova.tokenizer import OFFLINE_TOKENIZERS, WORD_VOCAB_SIZE

TOWER_FAMILIES = ("siglip", "clip")
LLM_TYPES = ("llama", "qwen2", "phi3")
CHAT_TEMPLATES = ("qwen2.5", "llama3.2", "phi3.5", "plain")
# How inference picks the Focus scenes: the SR-Router's top-K, or K scenes evenly spaced over the
# video with no router (the uniform-sampling baseline at the same visual-token budget).
FOCUS_SELECTIONS = ("router", "uniform")
# Stage-1 in-batch router loss: the paper's sigmoid BCE on identity labels, or symmetric InfoNCE
# (softmax over the batch both ways), which the `small` preset needs: see in_batch_infonce_loss.
IN_BATCH_LOSSES = ("bce", "infonce")
# Stages 1.5 and 2: each query against its own video's scenes. "bce" is the paper's (per scene) and
# every preset's; "softmax" is a cross-entropy over the video's scenes: see scene_softmax_loss.
SCENE_LOSSES = ("bce", "softmax")

# Text position table of the text tower after extension (the pretrained towers have 64 / 77 rows).
MAX_TEXT_PE = 2048

# ---------------------------------------------------------------- tower architectures

# CLIP ViT-L/14-336: vision + text towers of the 3B and 3.8B models.
CLIP_L_336_VISION = dict(
    hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
    patch_size=14, image_size=336, num_channels=3, hidden_act="quick_gelu", layer_norm_eps=1e-5,
    projection_dim=768,
)
CLIP_L_336_TEXT = dict(
    hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
    vocab_size=49408, max_position_embeddings=MAX_TEXT_PE, hidden_act="quick_gelu", layer_norm_eps=1e-5,
    projection_dim=768, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407,
)

# SigLIP so400m-patch14-384: towers of the 7B model. The released code deletes the last of the
# 27 vision layers and reads the output of layer 26 before the post-layernorm; we build the
# 26 layers that are used (the loader skips layer 27's weights).
SIGLIP_SO400M_VISION = dict(
    hidden_size=1152, intermediate_size=4304, num_hidden_layers=26, num_attention_heads=16,
    patch_size=14, image_size=384, num_channels=3, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6,
    vision_use_head=False,
)
SIGLIP_SO400M_TEXT = dict(
    hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
    vocab_size=32000, max_position_embeddings=MAX_TEXT_PE, hidden_act="gelu_pytorch_tanh",
    layer_norm_eps=1e-6, projection_size=1152, bos_token_id=None, eos_token_id=1, pad_token_id=1,
)

# ---------------------------------------------------------------- LLM architectures

LLAMA_3_2_3B = dict(
    model_type="llama", vocab_size=128256, hidden_size=3072, intermediate_size=8192,
    num_hidden_layers=28, num_attention_heads=24, num_key_value_heads=8, head_dim=128,
    hidden_act="silu", max_position_embeddings=131072, rms_norm_eps=1e-5, tie_word_embeddings=True,
    rope_theta=500000.0,
    rope_scaling=dict(rope_type="llama3", factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0,
                      original_max_position_embeddings=8192),
    bos_token_id=128000, eos_token_id=[128001, 128008, 128009], pad_token_id=128004,
)
# Phi-3.5's long-context "longrope" factors are not repeated here: they change no parameter,
# and building from the pretrained LLM (`salova.modeling.salova.build_from_pretrained_parts`)
# reads the LLM's own config.
PHI_3_5_MINI = dict(
    model_type="phi3", vocab_size=32064, hidden_size=3072, intermediate_size=8192,
    num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32, hidden_act="silu",
    max_position_embeddings=131072, original_max_position_embeddings=4096, rms_norm_eps=1e-5,
    rope_theta=10000.0, tie_word_embeddings=False, sliding_window=262144,
    bos_token_id=1, eos_token_id=[32000, 32007], pad_token_id=32000,
)
QWEN_2_5_7B = dict(
    model_type="qwen2", vocab_size=152064, hidden_size=3584, intermediate_size=18944,
    num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4, hidden_act="silu",
    max_position_embeddings=32768, rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=False,
    bos_token_id=151643, eos_token_id=[151645, 151643], pad_token_id=151643,
)

# ---------------------------------------------------------------- tiny model (tests, CPU demos)

# Ids of the byte-level tokenizer (salova/tokenizer.py): 256 bytes, then the special tokens.
TINY_VOCAB = 270
TINY_PAD, TINY_ENDOFTEXT, TINY_IM_END = 256, 257, 259
TINY_MAX_TEXT_PE = 128

TINY_VISION = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
    patch_size=8, image_size=32, num_channels=3, vision_use_head=False,
)
TINY_TEXT = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
    vocab_size=TINY_VOCAB, max_position_embeddings=TINY_MAX_TEXT_PE, projection_size=64,
    bos_token_id=TINY_ENDOFTEXT, eos_token_id=TINY_IM_END, pad_token_id=TINY_PAD,
)
TINY_LLM = dict(
    model_type="llama", vocab_size=TINY_VOCAB, hidden_size=64, intermediate_size=128,
    num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
    tie_word_embeddings=True, bos_token_id=TINY_ENDOFTEXT, eos_token_id=TINY_IM_END, pad_token_id=TINY_PAD,
)

# ---------------------------------------------------------------- small model (CPU reproduction)

# Between `tiny` and the paper: 128-wide towers and LLM, 48-pixel frames, 9 pooled patches per
# frame, 16 local tokens per scene. All three stages train on a 2-core CPU in about half an
# hour (training/recipes/small-*.yaml, training/reproduce.py). Its tokenizer has `tiny`'s byte ids
# and a token for each word of the synthetic corpus (salova/tokenizer.py: word_tokenizer).
SMALL_MAX_TEXT_PE = 256

SMALL_VISION = dict(
    hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
    patch_size=8, image_size=48, num_channels=3, vision_use_head=False,
)
SMALL_TEXT = dict(
    hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
    vocab_size=WORD_VOCAB_SIZE, max_position_embeddings=SMALL_MAX_TEXT_PE, projection_size=128,
    bos_token_id=TINY_ENDOFTEXT, eos_token_id=TINY_IM_END, pad_token_id=TINY_PAD,
)
SMALL_LLM = dict(
    model_type="llama", vocab_size=WORD_VOCAB_SIZE, hidden_size=128, intermediate_size=256,
    num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
    tie_word_embeddings=True, bos_token_id=TINY_ENDOFTEXT, eos_token_id=TINY_IM_END, pad_token_id=TINY_PAD,
)

PRESETS: dict[str, dict] = {
    "qwen2.5-7b-siglip": dict(
        tower_family="siglip", vision_tower="google/siglip-so400m-patch14-384",
        llm="Qwen/Qwen2.5-7B-Instruct",
        vision_config=SIGLIP_SO400M_VISION, text_config=SIGLIP_SO400M_TEXT, llm_config=QWEN_2_5_7B,
        vision_feature_layer=-1, pool_grid=14, chat_template="qwen2.5",
    ),
    "llama3.2-3b-clip": dict(
        tower_family="clip", vision_tower="openai/clip-vit-large-patch14-336",
        llm="meta-llama/Llama-3.2-3B-Instruct",
        vision_config=CLIP_L_336_VISION, text_config=CLIP_L_336_TEXT, llm_config=LLAMA_3_2_3B,
        vision_feature_layer=-2, pool_grid=12, chat_template="llama3.2",
    ),
    "phi3.5-clip": dict(
        tower_family="clip", vision_tower="openai/clip-vit-large-patch14-336",
        llm="microsoft/Phi-3.5-mini-instruct",
        vision_config=CLIP_L_336_VISION, text_config=CLIP_L_336_TEXT, llm_config=PHI_3_5_MINI,
        vision_feature_layer=-2, pool_grid=12, chat_template="phi3.5",
    ),
    "tiny": dict(
        tower_family="siglip", vision_tower=None, llm=None,
        vision_config=TINY_VISION, text_config=TINY_TEXT, llm_config=TINY_LLM,
        vision_feature_layer=-1, pool_grid=2, connector_latents=16, connector_dim_head=16,
        connector_max_frames=64, router_ffn_dim=64, router_max_scenes=64, max_text_pe=TINY_MAX_TEXT_PE,
        focus_k=2, chat_template="qwen2.5", frame_chunk=8,
    ),
    "small": dict(
        tower_family="siglip", vision_tower=None, llm=None,
        vision_config=SMALL_VISION, text_config=SMALL_TEXT, llm_config=SMALL_LLM,
        vision_feature_layer=-1, pool_grid=3, connector_latents=16, connector_dim_head=32,
        connector_max_frames=256, router_ffn_dim=128, router_max_scenes=256, max_text_pe=SMALL_MAX_TEXT_PE,
        focus_k=5, chat_template="qwen2.5", frame_chunk=64, in_batch_loss="infonce", offline_tokenizer="words",
    ),
}
DEFAULT_PRESET = "qwen2.5-7b-siglip"


class SalovaConfig(PretrainedConfig):
    """Configuration of `SalovaForCausalLM`; field meanings are in docs/architecture.md."""

    model_type = "salova"

    def __init__(
        self,
        tower_family: str = "siglip",
        vision_tower: str | None = PRESETS[DEFAULT_PRESET]["vision_tower"],
        llm: str | None = PRESETS[DEFAULT_PRESET]["llm"],
        vision_config: dict | None = None,
        text_config: dict | None = None,
        llm_config: dict | None = None,
        vision_feature_layer: int = -1,
        pool_grid: int = 14,
        connector_latents: int = 256,
        connector_depth: int = 2,
        connector_heads: int = 2,
        connector_dim_head: int = 64,
        connector_ff_mult: int = 4,
        connector_max_frames: int = 2160,
        router_layers: int = 2,
        router_heads: int = 1,
        router_ffn_dim: int | None = None,
        router_max_scenes: int = 256,
        max_text_pe: int = MAX_TEXT_PE,
        router_init_logit_scale: float = 1.0,
        focus_k: int = 5,
        token_drop_rate: float = 0.0,
        sim_loss_weight: float = 1.0,
        sim_margin: float = 0.2,
        use_margin_loss: bool = True,
        in_batch_loss: str = "bce",
        scene_loss: str = "bce",
        t2t_threshold: float = 0.83,
        v2t_threshold_longvideo: float = 0.21,
        v2t_threshold_sft: float = 0.20,
        max_queries: int = 16,
        use_focus: bool = True,
        use_fast: bool = True,
        focus_selection: str = "router",
        chat_template: str = "qwen2.5",
        fps: float = 1.0,
        frame_chunk: int = 32,
        image_token_index: int = -200,
        offline_tokenizer: str = "bytes",
        **kwargs,
    ):
        default = PRESETS[DEFAULT_PRESET]
        self.tower_family = tower_family
        self.vision_tower = vision_tower
        self.llm = llm
        self.vision_config = dict(vision_config if vision_config is not None else default["vision_config"])
        self.text_config = dict(text_config if text_config is not None else default["text_config"])
        self.llm_config = copy.deepcopy(llm_config if llm_config is not None else default["llm_config"])
        self.vision_feature_layer = vision_feature_layer
        self.pool_grid = pool_grid
        self.connector_latents = connector_latents
        self.connector_depth = connector_depth
        self.connector_heads = connector_heads
        self.connector_dim_head = connector_dim_head
        self.connector_ff_mult = connector_ff_mult
        self.connector_max_frames = connector_max_frames
        self.router_layers = router_layers
        self.router_heads = router_heads
        self.router_ffn_dim = router_ffn_dim
        self.router_max_scenes = router_max_scenes
        self.max_text_pe = max_text_pe
        self.router_init_logit_scale = router_init_logit_scale
        self.focus_k = focus_k
        self.token_drop_rate = token_drop_rate
        self.sim_loss_weight = sim_loss_weight
        self.sim_margin = sim_margin
        self.use_margin_loss = use_margin_loss
        self.in_batch_loss = in_batch_loss
        self.scene_loss = scene_loss
        self.t2t_threshold = t2t_threshold
        self.v2t_threshold_longvideo = v2t_threshold_longvideo
        self.v2t_threshold_sft = v2t_threshold_sft
        self.max_queries = max_queries
        self.use_focus = use_focus
        self.use_fast = use_fast
        self.focus_selection = focus_selection
        self.chat_template = chat_template
        self.fps = fps
        self.frame_chunk = frame_chunk
        self.image_token_index = image_token_index
        self.offline_tokenizer = offline_tokenizer
        # transformers 4.x ties the wrapped LLM's embeddings by the outer config's flag: mirror the LLM's own
        kwargs["tie_word_embeddings"] = bool(self.llm_config.get("tie_word_embeddings", True))
        super().__init__(**kwargs)

    # ------------------------------------------------------------ presets

    @classmethod
    def from_preset(cls, name: str, **overrides) -> SalovaConfig:
        """The named preset with `overrides` applied; validated."""
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; the presets are: {', '.join(sorted(PRESETS))}")
        fields = copy.deepcopy(PRESETS[name])
        fields.update(overrides)
        config = cls(**fields)
        config.validate()
        return config

    # ------------------------------------------------------------ derived sizes

    @property
    def vision_dim(self) -> int:
        return self.vision_config["hidden_size"]

    @property
    def text_dim(self) -> int:
        return self.text_config["hidden_size"]

    @property
    def llm_dim(self) -> int:
        return self.llm_config["hidden_size"]

    @property
    def patch_grid(self) -> int:
        """Side of the tower's patch grid (CLIP-L/336: 24, SigLIP/384: 27)."""
        return self.vision_config["image_size"] // self.vision_config["patch_size"]

    @property
    def num_patches(self) -> int:
        """Pooled patch tokens per frame, P."""
        return self.pool_grid**2

    def get_text_config(self, decoder=None, encoder=None) -> SalovaConfig:
        # `text_config` here is the text *tower*, not the decoder transformers looks for under this
        # name; the LLM lives in its own submodule with its own config.
        return self

    # ------------------------------------------------------------ validation

    def validate(self) -> None:
        """Raise ConfigError naming the first inconsistent field."""
        _check_choice("tower_family", self.tower_family, TOWER_FAMILIES)
        _check_choice("chat_template", self.chat_template, CHAT_TEMPLATES)
        _check_choice("focus_selection", self.focus_selection, FOCUS_SELECTIONS)
        _check_choice("in_batch_loss", self.in_batch_loss, IN_BATCH_LOSSES)
        _check_choice("scene_loss", self.scene_loss, SCENE_LOSSES)
        _check_choice("offline_tokenizer", self.offline_tokenizer, OFFLINE_TOKENIZERS)
        _check_choice("llm_config.model_type", self.llm_config.get("model_type"), LLM_TYPES)
        for name in ("vision_config", "text_config", "llm_config"):
            _check_heads(name, getattr(self, name))
        # image_size need not be a multiple of patch_size: SigLIP/384 with 14-pixel patches has a
        # 27 x 27 grid (the patch convolution leaves the last 6 pixels out).
        if not 1 <= self.vision_config["patch_size"] <= self.vision_config["image_size"]:
            raise ConfigError(
                f"vision_config.patch_size = {self.vision_config['patch_size']} must be between 1 and "
                f"vision_config.image_size = {self.vision_config['image_size']}"
            )
        if not 1 <= self.pool_grid <= self.patch_grid:
            raise ConfigError(
                f"pool_grid = {self.pool_grid} must be between 1 and the patch grid "
                f"{self.patch_grid} (vision_config.image_size / patch_size)"
            )
        if self.text_config.get("max_position_embeddings") != self.max_text_pe:
            raise ConfigError(
                f"text_config.max_position_embeddings = {self.text_config.get('max_position_embeddings')} "
                f"must equal max_text_pe = {self.max_text_pe}"
            )
        layers = self.vision_config["num_hidden_layers"]
        if not -layers <= self.vision_feature_layer <= layers:
            raise ConfigError(f"vision_feature_layer = {self.vision_feature_layer} is outside a {layers}-layer tower")
        for name in ("connector_latents", "connector_depth", "connector_heads", "connector_dim_head",
                     "connector_ff_mult", "connector_max_frames", "router_layers", "router_heads",
                     "router_max_scenes", "focus_k", "max_queries", "frame_chunk"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"{name} = {getattr(self, name)!r} must be a positive integer")
        if self.vision_dim % self.router_heads:
            raise ConfigError(f"router_heads = {self.router_heads} does not divide the vision width {self.vision_dim}")
        if not 0.0 <= self.token_drop_rate < 1.0:
            raise ConfigError(f"token_drop_rate = {self.token_drop_rate} must be in [0, 1)")
        if not (self.use_focus or self.use_fast):
            raise ConfigError("use_focus and use_fast are both False: the LLM would see no video tokens")
        if self.image_token_index >= 0:
            raise ConfigError(f"image_token_index = {self.image_token_index} must be negative (never a real token)")
        if not (self.fps > 0 and math.isfinite(self.fps)):
            raise ConfigError(f"fps = {self.fps} must be a positive number")


def _check_choice(field: str, value, choices) -> None:
    if value not in choices:
        raise ConfigError(f"{field} = {value!r} is not one of {', '.join(choices)}")


def _check_heads(name: str, sub: dict) -> None:
    width, heads = sub.get("hidden_size"), sub.get("num_attention_heads")
    if not width or not heads or width % heads:
        raise ConfigError(f"{name}.num_attention_heads = {heads} does not divide {name}.hidden_size = {width}")
    kv_heads = sub.get("num_key_value_heads", heads)
    if heads % kv_heads:
        raise ConfigError(f"{name}.num_key_value_heads = {kv_heads} does not divide num_attention_heads = {heads}")
