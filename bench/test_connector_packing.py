"""Case 1: the packed ST-Connector against the padded released form and a per-scene loop.

12 scenes of 2 to 120 frames at SALOVA's real size (D = 1152, P = 196, 257
latents), one forward each. Packed and padded outputs are compared in the same
run. Reported: times, peak memory, and achieved FLOP/s against a matrix product
(4096 x 1152 x 4608, the latents' MLP shape) timed right before each round: the
fraction is the median over rounds of the two rates' ratio, so a change of load
during the run affects both sides. Goals: padded / packed time >= 5, packed /
padded peak memory <= 0.25, packed faster than the per-scene loop, >= 0.75 of
the GEMM rate. Asserted: time ratio >= 3 and FLOP/s fraction >= 0.5 (floors
under the goals: on the shared 2-core box, in CPU time on one thread, the time
ratio measured 5.1-8.4 from run to run; the fraction 0.84 paired round by round
(connector 5-min roofline 0.92), 0.62-0.80 against a peak measured once at the
start of the case, lower when the other core runs memory-heavy work), memory
ratio <= 0.25, packed faster than per-scene. On CUDA (bf16) only the memory
ratio and equal outputs (relative error <= 2 %) are asserted; the rest is reported.
"""

import statistics

import torch

from bench.measure import connector_flops, measure, measure_with_benchmark, mib, relative_error
from salova.modeling.baseline import padded_forward, per_scene_forward
from salova.modeling.connector import STConnector

SCENE_FRAMES = [2, 4, 6, 8, 12, 16, 20, 28, 40, 56, 80, 120]
DIM, PATCHES = 1152, 196


def connector_and_inputs(device, dtype, frames, seed=0):
    torch.manual_seed(seed)
    connector = STConnector(DIM, PATCHES).to(device, dtype).eval()
    patches = torch.randn(sum(frames), PATCHES, DIM, device=device, dtype=dtype)
    scene_cls = torch.randn(len(frames), DIM, device=device, dtype=dtype)
    return connector, patches, scene_cls


def test_connector_packed_vs_padded(benchmark, record, device, dtype, gemm_peak, profile):
    benchmark.group = f"connector-12-scenes-{device}"
    connector, patches, scene_cls = connector_and_inputs(device, dtype, SCENE_FRAMES)
    with torch.inference_mode():
        packed = measure_with_benchmark(benchmark, lambda: connector(patches, SCENE_FRAMES, scene_cls),
                                        rounds=3, device=device, warmup=1, paired_gemm=True)
        per_scene = measure(lambda: per_scene_forward(connector, patches, SCENE_FRAMES, scene_cls),
                            rounds=2, device=device)
        padded = measure(lambda: padded_forward(connector, patches, SCENE_FRAMES, scene_cls),
                         rounds=1, device=device)
    assert_same_output(packed.output, padded.output)
    assert_same_output(per_scene.output, padded.output)
    profile("connector", lambda: connector(patches, SCENE_FRAMES, scene_cls))

    flops = connector_flops(SCENE_FRAMES, PATCHES, DIM)
    metrics = {
        "packed_s": packed.median, "padded_s": padded.median, "per_scene_s": per_scene.median,
        "packed_peak_mib": mib(packed.peak_bytes), "padded_peak_mib": mib(padded.peak_bytes),
        "per_scene_peak_mib": mib(per_scene.peak_bytes),
        "time_ratio_padded_over_packed": padded.median / packed.median,
        "time_ratio_per_scene_over_packed": per_scene.median / packed.median,
        "memory_ratio_packed_over_padded": packed.peak_bytes / padded.peak_bytes,
        "packed_gflops": flops / packed.median / 1e9, "gemm_peak_gflops": statistics.median(packed.gemm_rates) / 1e9,
        "gemm_best_shape_gflops": gemm_peak / 1e9,
        "peak_fraction": packed.peak_fraction(flops),
        "max_abs_diff_packed_vs_padded": (packed.output.float() - padded.output.float()).abs().max().item(),
    }
    goals = {"time_ratio_padded_over_packed": ">= 5 (asserted >= 3)", "memory_ratio_packed_over_padded": "<= 0.25",
             "time_ratio_per_scene_over_packed": "> 1", "peak_fraction": ">= 0.75 (asserted >= 0.5)"}
    if device == "cuda":  # the goals are the CPU's (fp32): on the GPU the times are reported, not asserted
        goals.update(time_ratio_padded_over_packed="reported", time_ratio_per_scene_over_packed="reported",
                     peak_fraction="reported")
    record(metrics, goals)

    assert metrics["memory_ratio_packed_over_padded"] <= 0.25
    if device == "cpu":
        assert metrics["time_ratio_padded_over_packed"] >= 3
        assert metrics["time_ratio_per_scene_over_packed"] > 1
        assert metrics["peak_fraction"] >= 0.5


def assert_same_output(output: torch.Tensor, reference: torch.Tensor):
    """fp32 (CPU): elementwise within 1e-4; bf16 (GPU): relative error of the whole output <= 2%."""
    if output.dtype == torch.float32:
        torch.testing.assert_close(output, reference, atol=1e-4, rtol=1e-4)
    else:
        assert relative_error(output, reference) <= 0.02
