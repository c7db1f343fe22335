"""SalovaForCausalLM on the tiny preset: losses against independent re-computations, training
cuts the loss, deterministic and batch-independent generation, exact save/load, clear errors
for broken checkpoints."""

from functools import lru_cache

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoModelForCausalLM, SiglipConfig, SiglipModel

from salova.config import SalovaConfig
from salova.errors import CheckpointError, RecordError
from salova.modeling.router import similarity_loss
from salova.modeling.salova import SalovaForCausalLM, SceneFeatures, build_from_pretrained_parts
from salova.processing import SalovaProcessor

CONFIG = SalovaConfig.from_preset("tiny")
LATENTS = CONFIG.connector_latents


@lru_cache
def tiny_model(seed: int = 0) -> SalovaForCausalLM:
    torch.manual_seed(seed)
    return SalovaForCausalLM(CONFIG).eval()


@lru_cache
def processor() -> SalovaProcessor:
    return SalovaProcessor.for_config(CONFIG)


def video(num_scenes: int, seed: int) -> SceneFeatures:
    generator = torch.Generator().manual_seed(seed)
    return SceneFeatures(routing=torch.randn(num_scenes, 64, generator=generator),
                         local=torch.randn(num_scenes, LATENTS, 64, generator=generator))


def right_padded(rows: list[torch.Tensor], value: int) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(len(r) for r in rows)
    padded = torch.stack([F.pad(r, (0, longest - len(r)), value=value) for r in rows])
    mask = torch.stack([torch.arange(longest) < len(r) for r in rows]).long()
    return padded, mask


def training_batch():
    conversations = [[("user", "What shape?"), ("assistant", "A red square.")],
                     [("user", "Where?"), ("assistant", "On the left.")]]
    encoded = [processor().conversation(turns) for turns in conversations]
    ids, mask = right_padded([i for i, _ in encoded], 0)
    labels, _ = right_padded([lab for _, lab in encoded], -100)
    queries = [processor().queries(["a red square", "a blue circle"]), processor().queries(["the left side"])]
    return dict(
        input_ids=ids, attention_mask=mask, labels=labels,
        pixel_values=[torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(s)) for s in (1, 2)],
        frames_per_scene=[[2, 1, 1], [1, 3]],
        query_ids=[q for q, _ in queries], query_mask=[m for _, m in queries],
        router_labels=[torch.tensor([[1.0, 0, 0], [0, 0, 1]]), torch.tensor([[0.0, 1]])],
    )


# ---------------------------------------------------------------- forward and losses

def test_forward_losses_match_an_independent_computation():
    model, batch = tiny_model(), training_batch()
    with torch.no_grad():
        out = model(**batch)
        videos = [model.encode_video(p, f) for p, f in zip(batch["pixel_values"], batch["frames_per_scene"])]
        scores = [model.score_scenes(v, q, m) for v, q, m in zip(videos, batch["query_ids"], batch["query_mask"])]
    # router part: mean over samples of BCE + margin, and the total with the configured weight
    expected_sim = torch.stack([similarity_loss(s, y, margin=0.2)[0]
                                for s, y in zip(scores, batch["router_labels"])]).mean()
    torch.testing.assert_close(out.sim_loss, expected_sim)
    torch.testing.assert_close(out.loss, out.lm_loss + CONFIG.sim_loss_weight * out.sim_loss)
    # LM part: the block (K*L + T positions, here K = focus_k) sits where <image> was and is ignored
    total_nll, total_targets = 0.0, 0
    for b, v in enumerate(videos):
        k = min(CONFIG.focus_k, v.num_scenes)
        length = int(batch["attention_mask"][b].sum())
        ids, labels = batch["input_ids"][b, :length], batch["labels"][b, :length]
        at = int((ids == CONFIG.image_token_index).nonzero())
        targets = torch.cat([labels[:at], torch.full((k * LATENTS + v.num_scenes,), -100), labels[at + 1:]])
        logits = out.logits[b, : len(targets)]
        total_nll += F.cross_entropy(logits[:-1], targets[1:], ignore_index=-100, reduction="sum")
        total_targets += int((targets[1:] != -100).sum())
    torch.testing.assert_close(out.lm_loss, total_nll / total_targets, atol=1e-5, rtol=1e-5)
    assert 0.0 <= out.router_accuracy <= 1.0


@pytest.mark.parametrize("use_focus, use_fast", [(True, True), (True, False), (False, True)])
def test_visual_block_follows_the_configs_pathways(use_focus, use_fast):
    model = tiny_model()
    features, focus = video(6, seed=3), torch.tensor([1, 4])
    model.config.use_focus, model.config.use_fast = use_focus, use_fast
    try:
        with torch.no_grad():
            block = model.visual_block(features, focus)
            parts = [features.local[1], features.local[4]] * use_focus + [features.routing] * use_fast
            expected = model.projector(torch.cat(parts))
    finally:
        model.config.use_focus = model.config.use_fast = True
    torch.testing.assert_close(block, expected)


def test_left_and_right_padded_batches_give_the_same_losses():
    model, batch = tiny_model(), training_batch()
    mask = batch["attention_mask"]
    shift = [int(n) for n in mask.shape[1] - mask.sum(dim=1)]  # move each row's padding to the left
    left = {key: torch.stack([row.roll(s) for row, s in zip(batch[key], shift)])
            for key in ("input_ids", "attention_mask", "labels")}
    with torch.no_grad():
        right_out, left_out = model(**batch), model(**{**batch, **left})
    torch.testing.assert_close(left_out.loss, right_out.loss)
    assert left["attention_mask"][0, 0] == 0 or left["attention_mask"][1, 0] == 0  # really left padded


def test_router_top_k_is_the_focus_when_no_ground_truth_is_given():
    model, batch = tiny_model(), training_batch()
    with torch.no_grad():
        videos = [model.encode_video(p, f) for p, f in zip(batch["pixel_values"], batch["frames_per_scene"])]
        routed = model(**{**batch, "pixel_values": None, "frames_per_scene": None}, videos=videos)
        chosen = [model.route(v, q[:1], m[:1])[0].focus for v, q, m in
                  zip(videos, batch["query_ids"], batch["query_mask"])]
        given_focus = model(**{**batch, "pixel_values": None, "frames_per_scene": None}, videos=videos,
                            focus=chosen)
        other = [torch.tensor([2]), torch.tensor([0])]
        other_focus = model(**{**batch, "pixel_values": None, "frames_per_scene": None}, videos=videos,
                            focus=other)
    torch.testing.assert_close(routed.logits, given_focus.logits)
    assert other_focus.logits.shape[1] < routed.logits.shape[1]  # 1 Focus scene instead of 2


def test_in_batch_router_scores_every_caption_against_every_sample():
    model = tiny_model()
    videos = [video(1, seed) for seed in range(3)]
    ids = torch.tensor([[CONFIG.image_token_index, 65, 66]] * 3)
    queries = [processor().queries([text]) for text in ("red", "a green triangle", "blue")]
    with torch.no_grad():
        out = model(ids, torch.ones_like(ids), ids.masked_fill(ids < 0, -100), videos=videos,
                    query_ids=[q for q, _ in queries], query_mask=[m for _, m in queries], in_batch_router=True)
        text_ids, text_mask = processor().queries(["red", "a green triangle", "blue"])
        expected = model.router(torch.cat([v.routing for v in videos]), *model.text_tower(text_ids, text_mask))
    torch.testing.assert_close(out.router_scores[0], expected, atol=1e-5, rtol=1e-5)
    bce = F.binary_cross_entropy_with_logits(expected, torch.eye(3))  # identity labels, no margin term
    torch.testing.assert_close(out.sim_loss, bce, atol=1e-5, rtol=1e-5)


@settings(max_examples=10)
@given(length=st.integers(1, 10), extra=st.integers(1, 12), seed=st.integers(0, 50))
def test_router_scores_do_not_depend_on_batched_longer_queries(length, extra, seed):
    model = tiny_model()
    features = video(4, seed)
    generator = torch.Generator().manual_seed(seed)
    short = torch.randint(0, 256, (length,), generator=generator).tolist()
    long = torch.randint(0, 256, (length + extra,), generator=generator).tolist()
    alone = processor().queries([bytes(short).decode("latin-1")])
    batch = processor().queries([bytes(short).decode("latin-1"), bytes(long).decode("latin-1")])
    with torch.no_grad():
        scores_alone = model.score_scenes(features, *alone)
        scores_batch = model.score_scenes(features, *batch)
    torch.testing.assert_close(scores_batch[0], scores_alone[0], atol=1e-5, rtol=1e-5)


def test_no_token_drop_outside_training():
    model = SalovaForCausalLM(SalovaConfig.from_preset("tiny", token_drop_rate=0.6)).eval()
    pixels = torch.randn(6, 3, 32, 32)
    first, second = model.encode_video(pixels, [6]), model.encode_video(pixels, [6])
    assert torch.equal(first.local, second.local) and torch.equal(first.routing, second.routing)


def test_sixty_steps_on_one_batch_cut_the_loss_by_ninety_percent():
    torch.manual_seed(0)
    model = SalovaForCausalLM(CONFIG).train()
    batch = training_batch()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with torch.no_grad():
        final = model.eval()(**batch).loss.item()
    assert final <= 0.1 * losses[0], (losses[0], final)


# ---------------------------------------------------------------- generation

def prompts(questions):
    return [processor().prompt(q) for q in questions]


def test_generate_is_deterministic():
    model = tiny_model()
    ids = prompts(["What happens?"])[0][None]
    queries = processor().queries(["What happens?"])
    first = model.generate(ids, video=video(5, 0), query_ids=queries[0], query_mask=queries[1], max_new_tokens=8)
    second = model.generate(ids, video=video(5, 0), query_ids=queries[0], query_mask=queries[1], max_new_tokens=8)
    assert first.shape == (1, 8)
    assert torch.equal(first, second)


def test_generate_gives_the_same_tokens_for_batch_sizes_one_and_three():
    model = tiny_model(seed=1)
    questions = ["What happens first?", "Colour?", "Where does the ball go at the end?"]
    videos = [video(5, 0), video(3, 1), video(7, 2)]
    rows = prompts(questions)
    queries = processor().queries(questions)
    alone = [model.generate(rows[b][None], video=videos[b], query_ids=queries[0][b:b + 1],
                            query_mask=queries[1][b:b + 1], max_new_tokens=6)[0] for b in range(3)]
    # left padded prompts in one batch of three (the pad id 0 equals a real byte token)
    longest = max(len(r) for r in rows)
    ids = torch.stack([F.pad(r, (longest - len(r), 0)) for r in rows])
    mask = torch.stack([torch.arange(longest) >= longest - len(r) for r in rows]).long()
    together = model.generate(ids, attention_mask=mask, video=videos, query_ids=queries[0],
                              query_mask=queries[1], max_new_tokens=6)
    for b in range(3):
        assert torch.equal(together[b, : len(alone[b])], alone[b])


def test_route_reports_scores_and_focus_used_by_generate():
    model = tiny_model()
    features = video(6, 3)
    queries = processor().queries(["the dog runs"])
    routing = model.route(features, *queries, k=3)[0]
    assert routing.scores.shape == (6,) and routing.focus.tolist() == sorted(routing.focus.tolist())
    top = set(routing.scores.topk(3).indices.tolist())
    assert set(routing.focus.tolist()) == top
    ids = prompts(["the dog runs"])[0][None]
    by_router = model.generate(ids, video=features, query_ids=queries[0], query_mask=queries[1], k=3,
                               max_new_tokens=5)
    by_focus = model.generate(ids, video=features, focus=[routing.focus], max_new_tokens=5)
    assert torch.equal(by_router, by_focus)


# ---------------------------------------------------------------- save / load

def test_save_and_load_give_identical_logits(tmp_path):
    model, batch = tiny_model(), training_batch()
    model.save_pretrained(tmp_path)
    loaded = SalovaForCausalLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        before, after = model(**batch), loaded(**batch)
    assert torch.equal(before.logits, after.logits)
    saved_config = {k: v for k, v in model.config.to_dict().items() if k != "_name_or_path"}
    assert {k: v for k, v in loaded.config.to_dict().items() if k != "_name_or_path"} == saved_config
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key


CLIP_TOWERS = dict(
    tower_family="clip", vision_feature_layer=-2,
    vision_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                       patch_size=8, image_size=32),
    text_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                     vocab_size=270, max_position_embeddings=128, bos_token_id=257, eos_token_id=259,
                     pad_token_id=256),
)


@pytest.mark.parametrize("llm_type, towers", [("qwen2", {}), ("phi3", CLIP_TOWERS)])
def test_other_backbones_train_and_round_trip(tmp_path, llm_type, towers):
    llm = {**CONFIG.llm_config, "model_type": llm_type, "tie_word_embeddings": False}
    config = SalovaConfig.from_preset("tiny", llm_config=llm, **towers)
    torch.manual_seed(0)
    model = SalovaForCausalLM(config).eval()
    assert model.llm.config.model_type == llm_type and model.vision_tower.family == config.tower_family
    batch = training_batch()
    model.save_pretrained(tmp_path)
    loaded = SalovaForCausalLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        out, again = model(**batch), loaded(**batch)
    assert torch.isfinite(out.loss) and torch.equal(out.logits, again.logits)


def test_truncated_safetensors_raises_checkpoint_error_naming_the_file(tmp_path):
    tiny_model().save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        SalovaForCausalLM.from_pretrained(tmp_path)


def test_directory_without_weights_or_config_raises_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="config.json"):
        SalovaForCausalLM.from_pretrained(tmp_path)
    CONFIG.save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="safetensors"):
        SalovaForCausalLM.from_pretrained(tmp_path)


def test_bad_inputs_raise_record_errors():
    model = tiny_model()
    ids = torch.tensor([[65, 66]])  # no placeholder
    with pytest.raises(RecordError, match="placeholder"):
        model(ids, videos=[video(2, 0)], focus=[torch.tensor([0])])
    with pytest.raises(RecordError, match="focus"):
        model(torch.tensor([[CONFIG.image_token_index]]), videos=[video(2, 0)], focus=[torch.tensor([5])])
    with pytest.raises(RecordError, match="frames_per_scene"):
        model.encode_video(torch.randn(3, 3, 32, 32), [1, 1])


def test_build_from_pretrained_parts_loads_the_llm_and_towers(tmp_path):
    torch.manual_seed(1)
    llm = AutoModelForCausalLM.from_config(SalovaForCausalLM(CONFIG).llm.config)
    llm.save_pretrained(tmp_path / "llm")
    towers = SiglipModel(SiglipConfig(vision_config=CONFIG.vision_config,
                                      text_config={**CONFIG.text_config, "max_position_embeddings": 16}))
    towers.save_pretrained(tmp_path / "towers")
    config = SalovaConfig.from_preset("tiny", llm=str(tmp_path / "llm"), vision_tower=str(tmp_path / "towers"))
    model = build_from_pretrained_parts(config, dtype=torch.float32)
    for key, value in llm.state_dict().items():
        assert torch.equal(model.llm.state_dict()[key], value), key
    table = named(model.text_tower.model, "position_embedding.weight")
    assert table.shape[0] == CONFIG.max_text_pe
    assert torch.equal(table[:16], named(towers.text_model, "position_embedding.weight"))


def named(module, suffix):
    """The parameter whose name ends with `suffix` (transformers 4.x and 5 nest the text model differently)."""
    return next(p for n, p in module.named_parameters() if n.endswith(suffix))
