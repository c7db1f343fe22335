"""Case 4: vision tower throughput at real width (SigLIP so400m/384: width 1152, MLP 4304,
16 heads, 729 patches), built from its config with no download.

On CPU the tower has 2 layers (GPU: all 26 SALOVA keeps); frames/s for the
full 26-layer tower is extrapolated as 2-layer time x 13 (the patch embedding
is under 5% of one layer's FLOPs). Compared in the same run: SDPA against eager
attention, and the tower's cost per frame against the packed connector's.
Asserted: the tower costs >= 10x the connector per frame (so the connector is
never the encoding bottleneck) and SDPA is not slower than eager (>= 0.9).
On CUDA (26 layers, bf16) the ratios are reported and SDPA must match eager
within 2 % relative error.
"""

import torch
from transformers import SiglipVisionConfig, SiglipVisionModel

from bench.measure import measure, measure_with_benchmark, relative_error
from salova.modeling.connector import STConnector

SALOVA_LAYERS = 26
FRAMES = 8


def siglip_tower(layers, attention, device, dtype):
    config = SiglipVisionConfig(hidden_size=1152, intermediate_size=4304, num_hidden_layers=layers,
                                num_attention_heads=16, image_size=384, patch_size=14,
                                attn_implementation=attention)
    return SiglipVisionModel(config).to(device, dtype).eval()


def tower_flops_per_frame(layers, tokens=729, dim=1152, mlp=4304, patch=14):
    per_layer = 2 * tokens * (4 * dim * dim + 2 * dim * mlp) + 2 * 2 * tokens * tokens * dim
    return 2 * tokens * 3 * patch * patch * dim + layers * per_layer


def test_vision_tower_throughput(benchmark, record, device, dtype, gemm_peak):
    benchmark.group = f"vision-tower-{device}"
    layers = 2 if device == "cpu" else SALOVA_LAYERS
    torch.manual_seed(0)
    pixels = torch.randn(FRAMES, 3, 384, 384, device=device, dtype=dtype)
    sdpa_tower = siglip_tower(layers, "sdpa", device, dtype)
    eager_tower = siglip_tower(layers, "eager", device, dtype)
    eager_tower.load_state_dict(sdpa_tower.state_dict())
    frames = [FRAMES]
    connector = STConnector(1152, 196).to(device, dtype).eval()
    patches = torch.randn(FRAMES, 196, 1152, device=device, dtype=dtype)
    scene_cls = torch.randn(1, 1152, device=device, dtype=dtype)
    with torch.inference_mode():
        sdpa = measure_with_benchmark(benchmark, lambda: sdpa_tower(pixel_values=pixels).last_hidden_state,
                                      rounds=3, device=device, warmup=1)
        eager = measure(lambda: eager_tower(pixel_values=pixels).last_hidden_state, rounds=3, device=device,
                        warmup=1)
        connected = measure(lambda: connector(patches, frames, scene_cls), rounds=3, device=device, warmup=1)
    if device == "cpu":
        torch.testing.assert_close(sdpa.output, eager.output, atol=1e-3, rtol=1e-3)
    else:  # bf16 through 26 layers: the whole output within 2% relative error
        assert relative_error(sdpa.output, eager.output) <= 0.02
    full_tower_s = sdpa.median * SALOVA_LAYERS / layers
    metrics = {
        "layers_measured": layers, "frames": FRAMES, "sdpa_s": sdpa.median, "eager_s": eager.median,
        "frames_per_s_measured": FRAMES / sdpa.median, "frames_per_s_26_layers": FRAMES / full_tower_s,
        "peak_fraction": tower_flops_per_frame(layers) * FRAMES / sdpa.median / gemm_peak,
        "time_ratio_eager_over_sdpa": eager.median / sdpa.median,
        "time_ratio_tower26_over_connector_per_frame": full_tower_s / connected.median,
    }
    if device == "cpu":
        record(metrics, {"time_ratio_tower26_over_connector_per_frame": ">= 10", "time_ratio_eager_over_sdpa": ">= 0.9"})
        assert metrics["time_ratio_tower26_over_connector_per_frame"] >= 10
        assert metrics["time_ratio_eager_over_sdpa"] >= 0.9
    else:  # full depth on the GPU: throughput and ratios reported
        record(metrics, {"frames_per_s_26_layers": "reported"})
