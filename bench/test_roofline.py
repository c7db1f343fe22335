"""Case 7: achieved FLOP/s of the connector and the router against a same-run matrix product.

FLOPs are analytic (bench/measure.py: 2 x multiply-adds of the matrix
products and attention; elementwise work not counted). Connector: the scenes
of a 5-min video, packed. Router: 16 queries against 200 scenes. Peak: the
best of 5 fp32 (CPU) or bf16 (CUDA) matrix products measured in this run.
Writes roofline-<device>.md. Asserted: connector >= 0.5 of peak (goal 0.75),
router >= 0.3 of peak; on CUDA also a floor of 100 TFLOP/s bf16 for the peak
itself (an H100/H200 gives ~600-800), so a broken GPU setup fails loudly.
"""

import pandas as pd
import torch

from bench.measure import connector_flops, measure, measure_with_benchmark, router_flops
from bench.scene_model import scene_lengths
from salova.modeling.connector import STConnector
from salova.modeling.router import SRRouter

DIM, PATCHES, QUERIES, SCENES, TEXT = 1152, 196, 16, 200, 33


def test_roofline(benchmark, record, device, dtype, gemm_peak, results_dir):
    benchmark.group = f"roofline-{device}"
    torch.manual_seed(0)
    frames = scene_lengths(300)
    connector = STConnector(DIM, PATCHES).to(device, dtype).eval()
    router = SRRouter(DIM, DIM).to(device, dtype).eval()
    patches = torch.randn(sum(frames), PATCHES, DIM, device=device, dtype=dtype)
    scene_cls = torch.randn(len(frames), DIM, device=device, dtype=dtype)
    routing = torch.randn(SCENES, DIM, device=device, dtype=dtype)
    text = torch.randn(QUERIES, TEXT, DIM, device=device, dtype=dtype)
    text_mask = torch.ones(QUERIES, TEXT, dtype=torch.bool, device=device)
    with torch.inference_mode():
        connected = measure_with_benchmark(benchmark, lambda: connector(patches, frames, scene_cls), rounds=3,
                                           device=device, warmup=1)
        routed = measure(lambda: router(routing, text, text_mask), rounds=5, device=device, warmup=1)

    rows = []
    for name, flops, seconds in [("connector, 5-min video", connector_flops(frames, PATCHES, DIM), connected.median),
                                 ("router, 16 x 200", router_flops(QUERIES, SCENES, TEXT, DIM, DIM), routed.median)]:
        rows.append({"module": name, "gflop": flops / 1e9, "seconds": seconds, "gflop_per_s": flops / seconds / 1e9,
                     "peak_gflop_per_s": gemm_peak / 1e9, "fraction_of_peak": flops / seconds / gemm_peak})
    table = pd.DataFrame(rows)
    (results_dir / f"roofline-{device}.md").write_text(table.to_markdown(index=False, floatfmt=".4g"))
    metrics = {"gemm_peak_gflops": gemm_peak / 1e9,
               "connector_gflops": float(table.gflop_per_s[0]), "router_gflops": float(table.gflop_per_s[1]),
               "connector_peak_fraction": float(table.fraction_of_peak[0]),
               "router_peak_fraction": float(table.fraction_of_peak[1])}
    record(metrics, {"connector_peak_fraction": ">= 0.75 (asserted >= 0.5)", "router_peak_fraction": ">= 0.3"})
    assert metrics["connector_peak_fraction"] >= 0.5
    assert metrics["router_peak_fraction"] >= 0.3
    if device == "cuda":
        assert gemm_peak >= 100e12
