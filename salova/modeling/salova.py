"""SalovaForCausalLM: the whole SALOVA model, Hugging Face-native.

    frames --VisionTower--> patches, frame CLS --STConnector (per scene)--> routing (T, D), local (T, L, D)
    query  --TextTower--> [pooled ; tokens] --SRRouter--> scores (B, T)
    top-K scenes (temporal order) --FocusFast--> [MLP(local of Focus) ; MLP(routing of all)]
    spliced at the `<image>` placeholder --LLM (Llama / Qwen2 / Phi3 from transformers)--> answer

Training loss = lm_loss + sim_loss_weight * sim_loss. The Focus scenes come from the ground truth
when the batch gives them (the released recipe), from the router's top-K otherwise. Stage 1 scores
every sample's single scene against every sample's caption (`in_batch_router=True`, identity
labels, no margin).

Inference is deterministic: no token drop outside training, greedy decoding, and `generate`
processes one sample at a time, so a sample's answer never depends on the rest of the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig, GenerationMixin, PreTrainedModel
from transformers.utils import ModelOutput

from salova.config import SalovaConfig
from salova.errors import CheckpointError, RecordError
from salova.modeling.connector import STConnector
from salova.modeling.focusfast import IGNORE_INDEX, select_focus, splice, uniform_focus, visual_block
from salova.modeling.projector import Projector
from salova.modeling.router import (
    SRRouter,
    in_batch_infonce_loss,
    in_batch_labels,
    router_top1_accuracy,
    similarity_loss,
)
from salova.modeling.tower_memo import TowerMemo
from salova.modeling.towers import TextTower, VisionTower, load_pretrained_towers

DEFAULT_MAX_NEW_TOKENS = 256


@dataclass
class SceneFeatures:
    """What the connector makes of one video, and what VideoIndex caches."""

    routing: torch.Tensor  # (T, D) one routing token per scene
    local: torch.Tensor  # (T, L, D) local tokens per scene

    @property
    def num_scenes(self) -> int:
        return self.routing.shape[0]

    def to(self, *args, **kwargs) -> SceneFeatures:
        return SceneFeatures(self.routing.to(*args, **kwargs), self.local.to(*args, **kwargs))


@dataclass
class Routing:
    """The router's verdict for one query: every scene's score and the Focus scenes."""

    scores: torch.Tensor  # (T,) exp(tau) * cos
    focus: torch.Tensor  # (min(k, T),) scene indices, ascending


@dataclass
class SalovaOutput(ModelOutput):
    loss: torch.Tensor | None = None  # lm_loss + sim_loss_weight * sim_loss (the parts that exist)
    lm_loss: torch.Tensor | None = None
    sim_loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None  # (B, N, vocab) over the spliced sequences
    router_accuracy: float | None = None  # share of queries whose top-1 scene is a positive
    router_scores: list[torch.Tensor] | None = None  # per sample (B_i, T_i); in-batch mode: one (B, B)


class SalovaForCausalLM(PreTrainedModel, GenerationMixin):
    config_class = SalovaConfig
    base_model_prefix = "salova"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    # The attention implementation asked of from_pretrained goes to the towers and the LLM.
    _supports_sdpa = True
    _supports_flash_attn = True

    def __init__(self, config: SalovaConfig, llm: PreTrainedModel | None = None):
        """`llm`: an already loaded backbone (see build_from_pretrained_parts); default: built from config."""
        config.validate()
        super().__init__(config)
        dim = config.vision_dim
        self.vision_tower = VisionTower(config)
        self.text_tower = TextTower(config)
        self.connector = STConnector(
            dim, config.num_patches, num_latents=config.connector_latents, depth=config.connector_depth,
            heads=config.connector_heads, dim_head=config.connector_dim_head, ff_mult=config.connector_ff_mult,
            max_frames=config.connector_max_frames,
        )
        self.router = SRRouter(
            dim, config.text_dim, num_layers=config.router_layers, num_heads=config.router_heads,
            ffn_dim=config.router_ffn_dim, max_scenes=config.router_max_scenes, max_text=config.max_text_pe,
            init_logit_scale=config.router_init_logit_scale,
        )
        self.projector = Projector(dim, config.llm_dim)
        self.llm = llm if llm is not None else AutoModelForCausalLM.from_config(llm_config(config))
        self.tower_memo: TowerMemo | None = None  # set by training when the vision tower is frozen
        self.post_init()

    def _init_weights(self, module):
        # The connector, router and projector initialise themselves in their constructors; the
        # towers and the LLM are transformers models and bring their own `_init_weights`.
        pass

    def get_input_embeddings(self):
        return self.llm.get_input_embeddings()

    def get_output_embeddings(self):
        return self.llm.get_output_embeddings()

    # ------------------------------------------------------------ video and query encoding

    def encode_video(self, pixels: torch.Tensor, frames_per_scene) -> SceneFeatures:
        """pixels (sum F_i, 3, S, S) normalised, or frames (sum F_i, S, S, 3) uint8, scene after scene;
        frames_per_scene [F_1..F_T] -> SceneFeatures."""
        counts = [int(n) for n in frames_per_scene]
        if sum(counts) != len(pixels) or min(counts, default=0) < 1:
            raise RecordError(f"frames_per_scene {counts} does not split the {len(pixels)} frames into scenes")
        if self.tower_memo is None:
            patches, frame_cls = self.vision_tower(pixels)  # (sum F_i, P, D), (sum F_i, D)
        else:
            patches, frame_cls = self.tower_memo(self.vision_tower, pixels)
        scene_cls = torch.stack([cls.mean(dim=0) for cls in frame_cls.split(counts)])  # (T, D)
        drop = self.config.token_drop_rate if self.training else 0.0
        out = self.connector(patches, counts, scene_cls, token_drop_rate=drop)  # (T, 1+L, D)
        return SceneFeatures(routing=out[:, 0], local=out[:, 1:])

    def score_scenes(self, features: SceneFeatures, query_ids: torch.Tensor, query_mask: torch.Tensor) -> torch.Tensor:
        """query_ids, query_mask (B, L) right padded -> scores (B, T)."""
        features = self._on_model(features)
        text_tokens, text_mask = self.text_tower(query_ids.to(self.device), query_mask.to(self.device))
        return self.router(features.routing, text_tokens.to(features.routing.dtype), text_mask)

    def _on_model(self, features: SceneFeatures) -> SceneFeatures:
        """Cached features (any device, any float dtype) on the model's device and dtype."""
        return features.to(device=self.device, dtype=self.dtype)

    def route(self, video: SceneFeatures, query_ids: torch.Tensor, query_mask: torch.Tensor,
              k: int | None = None) -> list[Routing]:
        """Scores and Focus scenes (top-min(k, T), temporal order) for each query (B, L)."""
        k = self.config.focus_k if k is None else k
        if self.config.focus_selection == "uniform":
            return self._uniform_routes(video.num_scenes, len(query_ids), k)
        with torch.no_grad():
            scores = self.score_scenes(video, query_ids, query_mask)
        return [Routing(scores=row, focus=select_focus(row, k)) for row in scores]

    def _uniform_routes(self, num_scenes: int, num_queries: int, k: int) -> list[Routing]:
        """The uniform-sampling baseline: no router; the scores are 1 on the chosen scenes, 0 elsewhere."""
        focus = uniform_focus(num_scenes, k).to(self.device)
        scores = torch.zeros(num_scenes, device=self.device).index_fill(0, focus, 1.0)
        return [Routing(scores=scores.clone(), focus=focus.clone()) for _ in range(num_queries)]

    # ------------------------------------------------------------ training / scoring forward

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        *,
        videos: list[SceneFeatures] | None = None,
        pixel_values: list[torch.Tensor] | None = None,
        frames_per_scene: list[list[int]] | None = None,
        query_ids: list[torch.Tensor] | None = None,
        query_mask: list[torch.Tensor] | None = None,
        router_labels: list[torch.Tensor] | None = None,
        focus: list[torch.Tensor] | None = None,
        in_batch_router: bool = False,
        **lm_kwargs,
    ) -> SalovaOutput:
        """input_ids, attention_mask, labels (B, N), one `<image>` placeholder per row; padding
        (left or right) is marked by attention_mask. The spliced batch is right padded.

        Per sample i: the video (SceneFeatures, or pixels + frames_per_scene), router queries
        query_ids[i] / query_mask[i] (B_i, L_i) with router_labels[i] (B_i, T_i), and the
        ground-truth Focus focus[i]. `lm_kwargs` go to the LLM (e.g. num_items_in_batch).
        """
        if videos is None:
            videos = [self.encode_video(p, f) for p, f in zip(pixel_values, frames_per_scene)]
        if len(videos) != len(input_ids):
            raise RecordError(f"{len(videos)} videos for a batch of {len(input_ids)} sequences")
        if in_batch_router:
            scores, sim_loss, accuracy = self._in_batch_router_loss(videos, query_ids, query_mask)
            query_order = None
        else:
            scores, sim_loss, accuracy = self._router_loss(videos, query_ids, query_mask, router_labels)
            query_order = scores
        chosen = [self._focus(i, video, focus, query_order) for i, video in enumerate(videos)]
        embeds, mask, spliced_labels = self._build_inputs(input_ids, attention_mask, labels, videos, chosen)
        out = self.llm(inputs_embeds=embeds, attention_mask=mask, labels=spliced_labels, **lm_kwargs)

        lm_loss = out.loss
        parts = [lm_loss] if lm_loss is not None else []
        if sim_loss is not None:
            parts.append(self.config.sim_loss_weight * sim_loss)
        return SalovaOutput(
            loss=sum(parts) if parts else None, lm_loss=lm_loss, sim_loss=sim_loss, logits=out.logits,
            router_accuracy=accuracy, router_scores=scores,
        )

    def _router_loss(self, videos, query_ids, query_mask, router_labels):
        """Each sample's queries score that sample's scenes; BCE or softmax (config.scene_loss) + margin
        against router_labels."""
        if query_ids is None:
            return None, None, None
        scores = [self.score_scenes(v, _rows(q), _rows(m)) for v, q, m in zip(videos, query_ids, query_mask)]
        if router_labels is None:
            return scores, None, None
        losses, correct, rows = [], 0.0, 0
        for i, (sample_scores, labels) in enumerate(zip(scores, router_labels)):
            labels = _rows(labels).to(sample_scores)
            if labels.shape != sample_scores.shape:
                raise RecordError(f"router_labels[{i}] has shape {tuple(labels.shape)}, the scores "
                                  f"{tuple(sample_scores.shape)} (queries x scenes)")
            loss, _ = similarity_loss(sample_scores, labels, margin=self.config.sim_margin,
                                      use_margin=self.config.use_margin_loss, kind=self.config.scene_loss)
            losses.append(loss)
            correct += router_top1_accuracy(sample_scores.detach(), labels) * len(labels)
            rows += len(labels)
        return scores, torch.stack(losses).mean(), correct / rows

    def _in_batch_router_loss(self, videos, query_ids, query_mask):
        """Stage 1: every sample is one scene; sample b's first query should pick scene b (no margin).
        The loss is BCE on identity labels, or symmetric InfoNCE (config.in_batch_loss)."""
        for i, video in enumerate(videos):
            if video.num_scenes != 1:
                raise RecordError(f"in_batch_router: sample {i} has {video.num_scenes} scenes, expected 1")
        routing = torch.cat([self._on_model(v).routing for v in videos])  # (B, D)
        ids, mask = _pad_rows([_rows(q)[0] for q in query_ids], [_rows(m)[0] for m in query_mask])
        text_tokens, text_mask = self.text_tower(ids.to(self.device), mask.to(self.device))
        scores = self.router(routing, text_tokens.to(routing.dtype), text_mask)  # (B, B)
        labels = in_batch_labels(len(videos)).to(scores)
        if self.config.in_batch_loss == "infonce":
            loss = in_batch_infonce_loss(scores)
        else:
            loss, _ = similarity_loss(scores, labels, margin=self.config.sim_margin, use_margin=False)
        return [scores], loss, router_top1_accuracy(scores.detach(), labels)

    def _focus(self, index: int, video: SceneFeatures, focus, scores) -> torch.Tensor:
        """Ground-truth Focus if given, else the router's top-K for the sample's first query."""
        num_scenes = video.num_scenes
        if focus is not None:
            chosen = torch.as_tensor(focus[index], dtype=torch.long).flatten().sort().values
            if len(chosen) == 0 or int(chosen.min()) < 0 or int(chosen.max()) >= num_scenes:
                raise RecordError(f"focus[{index}] = {chosen.tolist()} is not a non-empty set of scene "
                                  f"indices of a {num_scenes}-scene video")
            return chosen.to(self.device)
        if scores is not None:
            return select_focus(scores[index][0], self.config.focus_k).to(self.device)
        if num_scenes <= self.config.focus_k:
            return torch.arange(num_scenes, device=self.device)
        raise RecordError(f"sample {index}: {num_scenes} scenes but neither focus nor query_ids to choose "
                          f"{self.config.focus_k} of them")

    def visual_block(self, video: SceneFeatures, focus: torch.Tensor) -> torch.Tensor:
        """The video's tokens for the LLM with Focus scenes `focus` (K,), with this config's FocusFast
        pathways (salova.modeling.focusfast.visual_block): one place for training, generation, likelihood."""
        return visual_block(self.projector, video.local, video.routing, focus, self.config.use_focus, self.config.use_fast)

    def _build_inputs(self, input_ids, attention_mask, labels, videos, chosen):
        """Splice each sample's visual block at its placeholder and right-pad the batch again."""
        rows, row_labels = [], []
        for i, (video, focus) in enumerate(zip(videos, chosen)):
            video = self._on_model(video)
            mask_i = None if attention_mask is None else attention_mask[i]
            ids = _real_tokens(input_ids[i], mask_i)
            sample_labels = None if labels is None else _real_tokens(labels[i], mask_i)
            block = self.visual_block(video, focus)
            embeds, sample_labels = splice(self._embed_text(ids), ids, sample_labels, block,
                                           self.config.image_token_index)
            rows.append(embeds)
            row_labels.append(sample_labels)
        longest = max(len(r) for r in rows)
        embeds = torch.stack([F.pad(r, (0, 0, 0, longest - len(r))) for r in rows])  # (B, N', H)
        mask = torch.stack([torch.arange(longest, device=embeds.device) < len(r) for r in rows]).long()
        if labels is None:
            return embeds, mask, None
        padded = torch.stack([F.pad(lab, (0, longest - len(lab)), value=IGNORE_INDEX) for lab in row_labels])
        return embeds, mask, padded

    def _embed_text(self, ids: torch.Tensor) -> torch.Tensor:
        # The placeholder id is negative; its row is replaced by the visual block anyway.
        real = ids.masked_fill(ids == self.config.image_token_index, 0)
        return self.get_input_embeddings()(real)

    # ------------------------------------------------------------ generation

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        *,
        video: SceneFeatures | list[SceneFeatures],
        query_ids: torch.Tensor | None = None,
        query_mask: torch.Tensor | None = None,
        k: int | None = None,
        focus: list[torch.Tensor] | None = None,
        attention_mask: torch.Tensor | None = None,
        generation_config: GenerationConfig | None = None,
        **gen,
    ) -> torch.LongTensor:
        """Answer tokens (B, n_new), right padded with the pad id after each answer's end.

        input_ids (B, N) prompts with one placeholder each (padding marked by attention_mask);
        video: one SceneFeatures for all prompts, or one per prompt; query_ids / query_mask (B, L)
        one router query per prompt, or `focus` (precomputed scene indices per prompt, e.g. from
        `route`). Greedy unless `gen` says otherwise. Samples run one at a time, so each answer is
        the same whatever else is in the batch.
        """
        videos = [video] * len(input_ids) if isinstance(video, SceneFeatures) else list(video)
        if focus is None:
            if query_ids is None:
                raise RecordError("generate needs query_ids/query_mask (router queries) or focus")
            focus = [self.route(v, query_ids[b: b + 1], query_mask[b: b + 1], k)[0].focus
                     for b, v in enumerate(videos)]
        config = self._generation_config(generation_config, gen)
        answers = []
        for b, video_b in enumerate(videos):
            video_b = self._on_model(video_b)
            ids = _real_tokens(input_ids[b], None if attention_mask is None else attention_mask[b]).to(self.device)
            block = self.visual_block(video_b, torch.as_tensor(focus[b], device=video_b.local.device).sort().values)
            embeds, _ = splice(self._embed_text(ids), ids, None, block, self.config.image_token_index)
            out = self.llm.generate(inputs_embeds=embeds[None], attention_mask=embeds.new_ones(1, len(embeds)).long(),
                                    generation_config=config)
            answers.append(out[0])
        longest = max(len(a) for a in answers)
        pad = config.pad_token_id if config.pad_token_id is not None else _first(config.eos_token_id)
        return torch.stack([F.pad(a, (0, longest - len(a)), value=pad) for a in answers])

    def _generation_config(self, given: GenerationConfig | None, overrides: dict) -> GenerationConfig:
        """Plain greedy decoding with the LLM's special tokens, unless told otherwise.

        Built from scratch rather than from the LLM's generation_config.json, whose sampling
        defaults (temperature, top_p, repetition penalty) would silently change answers.
        """
        if given is not None:
            return given
        llm_gen = self.llm.generation_config
        config = GenerationConfig(
            do_sample=False, num_beams=1, max_new_tokens=DEFAULT_MAX_NEW_TOKENS,
            bos_token_id=llm_gen.bos_token_id, eos_token_id=llm_gen.eos_token_id, pad_token_id=llm_gen.pad_token_id,
        )
        config.update(**overrides)
        return config

    # ------------------------------------------------------------ loading

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """Load a saved model; a local directory is checked first and loads with no network."""
        path = Path(pretrained_model_name_or_path)
        if path.is_dir():
            check_checkpoint(path)
            kwargs.setdefault("local_files_only", True)
        return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)


def llm_config(config: SalovaConfig):
    """The transformers config of the LLM backbone (LlamaConfig, Qwen2Config or Phi3Config)."""
    fields = dict(config.llm_config)
    return AutoConfig.for_model(fields.pop("model_type"), attn_implementation=config._attn_implementation, **fields)


def check_checkpoint(directory: Path) -> None:
    """Raise CheckpointError naming the file if the checkpoint is incomplete or truncated."""
    if not (directory / "config.json").is_file():
        raise CheckpointError(f"{directory}: no config.json, not a saved SALOVA model")
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{directory}: no *.safetensors weights")
    for file in files:
        try:
            with safe_open(str(file), framework="pt") as handle:
                handle.keys()
        except SafetensorError as err:
            raise CheckpointError(f"{file}: truncated or corrupt safetensors file ({err})") from err


def build_from_pretrained_parts(config: SalovaConfig, dtype: torch.dtype = torch.bfloat16) -> SalovaForCausalLM:
    """A SALOVA model whose LLM and towers carry the pretrained weights named by the config.

    `config.llm` and `config.vision_tower` are Hugging Face ids or local directories (this may
    download). The LLM's own config replaces `config.llm_config`, so details the presets leave out
    (Phi-3.5's long-rope factors) come from the checkpoint. Connector, router and projector start
    fresh; the text position table is extended (see `load_pretrained_towers`).
    """
    llm = AutoModelForCausalLM.from_pretrained(config.llm, dtype=dtype)
    config.llm_config = {**llm.config.to_diff_dict(), "model_type": llm.config.model_type}
    model = SalovaForCausalLM(config, llm=llm)
    load_pretrained_towers(model.vision_tower, model.text_tower, config.vision_tower)
    return model.to(dtype)


def _rows(tensor: torch.Tensor) -> torch.Tensor:
    """A query or label tensor as rows: (L,) -> (1, L); (B, L) unchanged."""
    return tensor if tensor.dim() == 2 else tensor.unsqueeze(0)


def _pad_rows(ids: list[torch.Tensor], masks: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad single query rows to one (B, L) batch; the mask comes from the real lengths."""
    rows = [_real_tokens(row, mask) for row, mask in zip(ids, masks)]
    longest = max(len(row) for row in rows)
    padded = torch.stack([F.pad(row, (0, longest - len(row))) for row in rows])
    mask = torch.stack([torch.arange(longest, device=padded.device) < len(row) for row in rows]).long()
    return padded, mask


def _real_tokens(ids: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """A row's real tokens, right or left padded; found from the mask, never from the pad id."""
    return ids if mask is None else ids[mask.bool()]


def _first(token_ids):
    return token_ids[0] if isinstance(token_ids, (list, tuple)) else token_ids


AutoConfig.register(SalovaConfig.model_type, SalovaConfig, exist_ok=True)
AutoModelForCausalLM.register(SalovaConfig, SalovaForCausalLM, exist_ok=True)
