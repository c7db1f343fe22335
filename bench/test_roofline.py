"""Case 7: achieved FLOP/s of the connector and the router against a same-run matrix product.

FLOPs are analytic (bench/measure.py: 2 x multiply-adds of the matrix
products and attention; elementwise work not counted). Connector: the scenes
of a 5-min video on CPU, of a 1-hour video on CUDA, packed; the whole forward
and each of its parts timed on its own (media keys/values: positions +
normalisation + one GEMM; attention of both layers; the latents' projections
and feed-forward), so the table shows where the time goes. Router: 16
queries against 200 scenes. Peak: every timed round is paired with a
reference matrix product (fp32 on CPU, bf16 on CUDA) timed right before it,
and a row's fraction is the median of the rounds' ratios, so a change of load
during the run affects both sides; the best-shape peak of the run is reported
too. Writes roofline-<device>.md. Asserted on CPU: connector >= 0.5 of peak
(goal 0.75), router >= 0.3 of peak. On CUDA: a floor of 100 TFLOP/s bf16 for
the peak itself (an H100/H200 gives ~600-800), so a broken GPU setup fails
loudly, and the latent MLP >= 0.3 of peak (goal 0.5); the attention (goal 0.5,
0.053 on an H100) and the launch-bound router are reported, not asserted.
"""

import statistics

import pandas as pd
import torch

from bench.measure import connector_flops_by_part, measure, measure_with_benchmark, router_flops
from bench.scene_model import scene_lengths
from salova.modeling.connector import STConnector, scene_attention
from salova.modeling.router import SRRouter

DIM, PATCHES, QUERIES, SCENES, TEXT = 1152, 196, 16, 200, 33
VIDEO_SECONDS = {"cpu": 300, "cuda": 3600}


def connector_parts(connector, patches, frames, scene_cls):
    """Zero-argument callables for the parts of one packed forward, on the forward's own inputs."""
    frame_pos = connector.frame_positions(frames)
    tokens = [n * connector.num_patches for n in frames]
    media_kv = connector._media_kv(patches, frame_pos, None)
    width = media_kv.shape[1] // len(connector.layers)
    latents = connector(patches, frames, scene_cls)  # any latents of the right shape do for timing
    normed = [layer.attn.norm_latents(latents) for layer in connector.layers]
    queries = [layer.attn.to_q(x) for layer, x in zip(connector.layers, normed)]
    latent_kv = [layer.attn.to_kv(x) for layer, x in zip(connector.layers, normed)]
    heads = connector.layers[0].attn.heads

    def attention():
        return [scene_attention(q, media_kv[:, i * width:(i + 1) * width], kv, tokens, heads)
                for i, (q, kv) in enumerate(zip(queries, latent_kv))]

    def latent_projections_and_mlp():
        return [(layer.attn.to_q(x), layer.attn.to_kv(x), layer.attn.to_out(q), layer.ff(latents))
                for layer, x, q in zip(connector.layers, normed, queries)]

    return {"media_kv": lambda: connector._media_kv(patches, frame_pos, None), "attention": attention,
            "latents": latent_projections_and_mlp}


def test_roofline(benchmark, record, device, dtype, gemm_peak, results_dir):
    benchmark.group = f"roofline-{device}"
    torch.manual_seed(0)
    frames = scene_lengths(VIDEO_SECONDS[device])
    connector = STConnector(DIM, PATCHES).to(device, dtype).eval()
    router = SRRouter(DIM, DIM).to(device, dtype).eval()
    patches = torch.randn(sum(frames), PATCHES, DIM, device=device, dtype=dtype)
    scene_cls = torch.randn(len(frames), DIM, device=device, dtype=dtype)
    routing = torch.randn(SCENES, DIM, device=device, dtype=dtype)
    text = torch.randn(QUERIES, TEXT, DIM, device=device, dtype=dtype)
    text_mask = torch.ones(QUERIES, TEXT, dtype=torch.bool, device=device)
    rounds = 3 if device == "cpu" else 10
    with torch.inference_mode():
        connected = measure_with_benchmark(benchmark, lambda: connector(patches, frames, scene_cls), rounds=rounds,
                                           device=device, warmup=1, paired_gemm=True)
        parts = {name: measure(fn, rounds=rounds - 1, device=device, warmup=1, paired_gemm=True)
                 for name, fn in connector_parts(connector, patches, frames, scene_cls).items()}
        routed = measure(lambda: router(routing, text, text_mask), rounds=5, device=device, warmup=1,
                         paired_gemm=True)

    video = f"{VIDEO_SECONDS[device] // 60}-min video"
    flops = connector_flops_by_part(frames, PATCHES, DIM)
    part_names = {"media_kv": "media keys/values (positions, norm, GEMM)", "attention": "attention, both layers",
                  "latents": "latent projections + MLP, both layers"}
    measured = [(f"connector, {video}", sum(flops.values()), connected)]
    measured += [(f"  {part_names[name]}", flops[name], parts[name]) for name in part_names]
    measured.append(("router, 16 x 200", router_flops(QUERIES, SCENES, TEXT, DIM, DIM), routed))
    table = pd.DataFrame([{"module": name, "gflop": f / 1e9, "seconds": m.median, "gflop_per_s": f / m.median / 1e9,
                           "paired_gemm_gflop_per_s": statistics.median(m.gemm_rates) / 1e9,
                           "fraction_of_peak": m.peak_fraction(f)}
                          for name, f, m in measured])
    (results_dir / f"roofline-{device}.md").write_text(table.to_markdown(index=False, floatfmt=".4g"))
    fraction = dict(zip(["connector", "media_kv", "attention", "latents", "router"], table.fraction_of_peak))
    metrics = {"gemm_peak_gflops": gemm_peak / 1e9, "connector_gflops": float(table.gflop_per_s[0]),
               "router_gflops": float(table.gflop_per_s.iloc[-1]),
               **{f"{name}_peak_fraction": float(value) for name, value in fraction.items()}}
    if device == "cpu":
        record(metrics, {"connector_peak_fraction": ">= 0.75 (asserted >= 0.5)", "router_peak_fraction": ">= 0.3"})
        assert metrics["connector_peak_fraction"] >= 0.5
        assert metrics["router_peak_fraction"] >= 0.3
    else:
        record(metrics, {"attention_peak_fraction": ">= 0.5 (reported)", "latents_peak_fraction": ">= 0.5 (asserted >= 0.3)",
                         "router_peak_fraction": "reported"})
        assert gemm_peak >= 100e12
        assert metrics["latents_peak_fraction"] >= 0.3
