"""The CUDA paths, checked against the CPU and the padded yardstick (skipped without a GPU).

The packed connector on CUDA attends with a compiled flex_attention and a block mask; here it
must equal the padded released form at real SALOVA width on fresh random inputs of many scene
layouts, in fp32 and (against an fp64 CPU reference) in bf16. Training on CUDA: the packed
connector's gradients equal the padded form's. The tiny model generates the same tokens on
CUDA as on the CPU, twice, and for a batch of three as one by one. The frozen vision tower's
memo keys CUDA frames by their bytes too.
"""

import pytest
import torch
import torch.nn.functional as F

from bench.measure import relative_error
from salova.config import SalovaConfig
from salova.modeling.baseline import padded_forward
from salova.modeling.connector import STConnector
from salova.modeling.salova import SalovaForCausalLM, SceneFeatures
from salova.modeling.tower_memo import TowerMemo
from salova.processing import SalovaProcessor

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

DIM, PATCHES = 1152, 196
LAYOUTS = [[1], [3, 1, 7], [2, 4, 6, 8, 12, 16, 20, 28, 40, 56, 80, 120], [33] * 9 + [1, 90]]


def real_size_connector(seed: int) -> STConnector:
    torch.manual_seed(seed)
    connector = STConnector(DIM, PATCHES)
    with torch.no_grad():  # non-trivial LayerNorm affine, so the folded kv weights are really exercised
        for layer in connector.layers:
            layer.attn.norm_media.weight.uniform_(0.5, 1.5)
            layer.attn.norm_media.bias.normal_(0, 0.3)
    return connector.eval()


def inputs(frames, seed, device, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    patches = torch.randn(sum(frames), PATCHES, DIM, generator=generator)
    scene_cls = torch.randn(len(frames), DIM, generator=generator)
    return patches.to(device, dtype), scene_cls.to(device, dtype)


@pytest.mark.parametrize("frames", LAYOUTS, ids=lambda f: f"{len(f)}-scenes")
def test_flex_connector_on_cuda_equals_the_padded_form_in_fp32(frames):
    connector = real_size_connector(0).cuda()
    patches, scene_cls = inputs(frames, seed=len(frames), device="cuda")
    torch.backends.cuda.matmul.allow_tf32 = False
    with torch.inference_mode():
        packed = connector(patches, frames, scene_cls)
        padded = padded_forward(connector, patches, frames, scene_cls)
    assert torch.isfinite(packed).all()
    assert relative_error(packed, padded) < 1e-4


def test_bf16_connector_on_cuda_is_close_to_fp64_on_cpu():
    frames = LAYOUTS[2]
    reference_connector = real_size_connector(1)
    patches, scene_cls = inputs(frames, seed=11, device="cpu")
    with torch.inference_mode():
        reference = reference_connector.double()(patches.double(), frames, scene_cls.double())
        bf16 = real_size_connector(1).cuda().bfloat16()(patches.cuda().bfloat16(), frames, scene_cls.cuda().bfloat16())
    assert relative_error(bf16.cpu(), reference) < 2e-2


def test_packed_connector_gradients_on_cuda_equal_the_padded_forms():
    frames = [3, 1, 7, 2]
    packed_model, padded_model = real_size_connector(2).cuda().train(), real_size_connector(2).cuda().train()
    patches, scene_cls = inputs(frames, seed=5, device="cuda")
    torch.backends.cuda.matmul.allow_tf32 = False
    weights = torch.randn(len(frames), 257, DIM, device="cuda")
    (packed_model(patches, frames, scene_cls) * weights).sum().backward()
    (padded_forward(padded_model, patches, frames, scene_cls) * weights).sum().backward()
    for (name, packed), padded in zip(packed_model.named_parameters(), padded_model.parameters()):
        assert relative_error(packed.grad, padded.grad) < 1e-4, name


def tiny_model_and_inputs():
    config = SalovaConfig.from_preset("tiny")
    torch.manual_seed(0)
    model = SalovaForCausalLM(config).eval()
    processor = SalovaProcessor.for_config(config)
    questions = ["What happens first?", "Colour?", "Where does the ball go at the end?"]
    generator = torch.Generator().manual_seed(3)
    videos = [SceneFeatures(routing=torch.randn(n, 64, generator=generator),
                            local=torch.randn(n, config.connector_latents, 64, generator=generator))
              for n in (5, 3, 7)]  # fmt: skip
    return model, processor, questions, videos


def on(device, video: SceneFeatures) -> SceneFeatures:
    return SceneFeatures(routing=video.routing.to(device), local=video.local.to(device))


def test_tiny_model_generates_the_same_tokens_on_cuda_as_on_cpu_for_any_batch():
    model, processor, questions, videos = tiny_model_and_inputs()
    rows = [processor.prompt(q) for q in questions]
    queries = processor.queries(questions)
    with torch.inference_mode():
        cpu = [model.generate(rows[b][None], video=videos[b], query_ids=queries[0][b:b + 1],
                              query_mask=queries[1][b:b + 1], max_new_tokens=6)[0] for b in range(3)]
        model.cuda()
        alone = [model.generate(rows[b][None].cuda(), video=on("cuda", videos[b]), query_ids=queries[0][b:b + 1].cuda(),
                                query_mask=queries[1][b:b + 1].cuda(), max_new_tokens=6)[0] for b in range(3)]
        longest = max(len(r) for r in rows)
        ids = torch.stack([F.pad(r, (longest - len(r), 0)) for r in rows]).cuda()
        mask = torch.stack([torch.arange(longest) >= longest - len(r) for r in rows]).long().cuda()
        together = [model.generate(ids, attention_mask=mask, video=[on("cuda", v) for v in videos],
                                   query_ids=queries[0].cuda(), query_mask=queries[1].cuda(), max_new_tokens=6)
                    for _ in range(2)]
    assert torch.equal(together[0], together[1])
    for b in range(3):
        assert torch.equal(alone[b].cpu(), cpu[b])
        assert torch.equal(together[0][b, : len(alone[b])].cpu(), cpu[b])


def test_option_likelihoods_on_cuda_equal_the_cpu_and_pick_the_same_option():
    from salova.likelihood import answer_loglikelihoods

    model, processor, questions, videos = tiny_model_and_inputs()
    answers = ["Red.", "Dark blue.", "The ball rolls left.", "Green."]
    focus = torch.tensor([3, 0])
    cpu = answer_loglikelihoods(model, processor, videos[0], focus, questions[0], answers)
    model.cuda()
    cuda = answer_loglikelihoods(model, processor, on("cuda", videos[0]), focus.cuda(), questions[0], answers)
    again = answer_loglikelihoods(model, processor, on("cuda", videos[0]), focus.cuda(), questions[0], answers)
    assert cuda.device.type == "cuda" and torch.equal(cuda, again)  # deterministic on the GPU
    torch.testing.assert_close(cuda.cpu(), cpu, atol=1e-4, rtol=1e-4)
    assert int(cuda.argmax()) == int(cpu.argmax())


def test_the_tower_memo_on_cuda_returns_the_towers_outputs_and_hits_on_equal_frames():
    torch.manual_seed(0)
    tower = SalovaForCausalLM(SalovaConfig.from_preset("tiny")).vision_tower.cuda().requires_grad_(False)
    size = tower.model.config.image_size
    pixels = torch.randn(6, 3, size, size, device="cuda")
    memo = TowerMemo(budget_mb=16)
    for frames in (pixels, pixels.clone(), pixels.cpu().cuda()):
        patches, cls = memo(tower, frames)
        expected_patches, expected_cls = tower(pixels)
        assert patches.device.type == "cuda"
        assert torch.equal(patches, expected_patches) and torch.equal(cls, expected_cls)
    assert (memo.cache.misses, memo.cache.hits) == (1, 2)
