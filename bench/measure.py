"""Timing, peak-memory and FLOP helpers shared by the benchmark suites.

Every case times two things in the same run and reports their ratio. The
optimised side goes through pytest-benchmark (so its statistics land in the
JSON file); the yardstick side through `measure`, which uses the same clock
and the same memory probe. The clock on CPU is the process's CPU time, and
the suite runs torch single-threaded by default (conftest.py), so other jobs
on a shared machine slow the run down but do not change the numbers; on CUDA
it is wall time after a synchronize. Peak memory on CPU is the rise of the process's
peak resident set (VmHWM) over the resident set just before the call: the
kernel's peak counter is reset before each call through /proc/self/clear_refs,
and freed heap memory is first handed back with malloc_trim, so earlier calls
do not hide later ones. On CUDA it is torch.cuda.max_memory_allocated over the
memory allocated before the call.
"""

import ctypes
import gc
import statistics
import time
from dataclasses import dataclass, field

import numpy as np
import torch

_LIBC = ctypes.CDLL("libc.so.6")


def _status_kib(field_name: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field_name}")


class MemoryProbe:
    """Peak memory a call adds on top of what was resident before it (bytes)."""

    def __init__(self, device: str):
        self.device = device
        self._base = 0

    def reset(self):
        gc.collect()
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
            return
        _LIBC.malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")  # 5 = reset the peak resident set size to the current one
        self._base = _status_kib("VmRSS") * 1024

    def peak(self) -> int:
        if self.device == "cuda":
            return torch.cuda.max_memory_allocated() - self._base
        return _status_kib("VmHWM") * 1024 - self._base


def synchronize(device: str):
    if device == "cuda":
        torch.cuda.synchronize()


def clock(device: str):
    """CPU time of this process on CPU (immune to other jobs), wall time on CUDA."""
    return time.perf_counter if device == "cuda" else time.process_time


@dataclass
class Measurement:
    seconds: list[float] = field(default_factory=list)
    peak_bytes: int = 0
    output: object = None
    gemm_rates: list[float] = field(default_factory=list)  # FLOP/s of the reference product before each round

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def peak_fraction(self, flops: float) -> float:
        """Median over rounds of (this round's FLOP/s) / (the reference product's FLOP/s just before it)."""
        return statistics.median(flops / s / rate for s, rate in zip(self.seconds, self.gemm_rates, strict=True))


def measure(fn, rounds: int, device: str = "cpu", warmup: int = 0, paired_gemm: bool = False) -> Measurement:
    """Time `fn()` `rounds` times (after `warmup` untimed calls) and probe its peak memory;
    paired_gemm: as in `measure_with_benchmark`."""
    probe, result, now = MemoryProbe(device), Measurement(), clock(device)
    for _ in range(warmup):
        fn()
    for _ in range(rounds):
        result.output = None
        if paired_gemm:
            result.gemm_rates.append(gemm_rate(device, DTYPE_OF[device]))
        probe.reset()
        start = now()
        result.output = fn()
        synchronize(device)
        result.seconds.append(now() - start)
        result.peak_bytes = max(result.peak_bytes, probe.peak())
    return result


def measure_with_benchmark(benchmark, fn, rounds: int, device: str = "cpu", warmup: int = 0,
                           paired_gemm: bool = False) -> Measurement:
    """`measure`, but timed by pytest-benchmark so the statistics go into its JSON.

    paired_gemm: time the reference matrix product (`gemm_rate`) right before every round, so each
    round's FLOP/s is compared with the peak under the same conditions (`Measurement.peak_fraction`):
    on a shared machine the load changes between the start of a case and its rounds."""
    probe, peaks, rates = MemoryProbe(device), [], []

    def setup():
        if paired_gemm:
            rates.append(gemm_rate(device, DTYPE_OF[device]))
        probe.reset()

    def timed():
        out = fn()
        synchronize(device)
        return out

    benchmark._timer = clock(device)  # pytest-benchmark's own timer option is global; ours depends on the device
    output = benchmark.pedantic(timed, setup=setup, teardown=lambda: peaks.append(probe.peak()),
                                rounds=rounds, iterations=1, warmup_rounds=warmup)
    return Measurement(seconds=list(benchmark.stats.stats.data), peak_bytes=max(peaks), output=output,
                       gemm_rates=rates[-rounds:] if paired_gemm else [])


DTYPE_OF = {"cpu": torch.float32, "cuda": torch.bfloat16}
# CPU: the shapes of the connector's and router's products; CUDA: one large square product.
GEMM_SHAPES = {"cpu": [(4096, 1152, 4608), (4096, 4608, 1152), (4096, 1152, 1152)], "cuda": [(8192,) * 3]}


def gemm_rate(device: str = "cpu", dtype=torch.float32, shape=None, repeats: int = 1) -> float:
    """FLOP/s of one matrix product of `shape` (default: the device's first reference shape),
    the median of `repeats` timed products after one untimed one."""
    m, k, n = shape or GEMM_SHAPES[device][0]
    now = clock(device)
    with torch.inference_mode():
        a = torch.randn(m, k, device=device, dtype=dtype)
        b = torch.randn(k, n, device=device, dtype=dtype)
        a @ b
        seconds = []
        for _ in range(repeats):
            synchronize(device)
            start = now()
            a @ b
            synchronize(device)
            seconds.append(now() - start)
    return 2 * m * k * n / statistics.median(seconds)


def gemm_peak_flops(device: str = "cpu", dtype=torch.float32) -> float:
    """FLOP/s of large matrix products on this machine, measured now: the median of 3 runs per
    reference shape, best shape (a steady rate under the current conditions, not a lucky burst)."""
    return max(gemm_rate(device, dtype, shape, repeats=3) for shape in GEMM_SHAPES[device])


def connector_flops_by_part(frames_per_scene, num_patches, dim, num_latents=256, depth=2, heads=2, dim_head=64,
                            ff_mult=4) -> dict[str, float]:
    """Multiply-adds x 2 of one packed ST-Connector forward, by part (elementwise work not counted):
    media_kv (the one GEMM giving every layer's media keys/values), attention (scores and weighted
    sums, all layers) and latents (the latents' q/kv/out projections and feed-forward, all layers)."""
    inner, queries = heads * dim_head, 1 + num_latents
    media_tokens = [frames * num_patches for frames in frames_per_scene]
    latent_tokens = len(frames_per_scene) * queries
    return {
        "media_kv": 2 * sum(media_tokens) * dim * depth * 2 * inner,
        "attention": depth * sum(2 * 2 * queries * (n + queries) * inner for n in media_tokens),
        "latents": depth * 2 * latent_tokens * dim * (inner + 2 * inner + inner + 2 * ff_mult * dim),
    }


def connector_flops(frames_per_scene, num_patches, dim, **sizes) -> float:
    """Multiply-adds x 2 of one packed ST-Connector forward (elementwise work not counted)."""
    return sum(connector_flops_by_part(frames_per_scene, num_patches, dim, **sizes).values())


def router_flops(n_queries, n_scenes, n_text, dim, text_dim, ffn_dim=None, num_layers=2) -> float:
    """Multiply-adds x 2 of one SR-Router forward (n_text includes the pooled token)."""
    ffn_dim = ffn_dim or dim
    video, text = n_queries * n_scenes, n_queries * n_text
    text_proj = 2 * text * text_dim * dim
    per_layer = (2 * video * dim * dim * 2  # q and out projections
                 + 2 * text * dim * dim * 2  # k and v projections
                 + 2 * 2 * n_queries * n_scenes * n_text * dim  # scores and weighted sum
                 + 2 * video * dim * ffn_dim * 2)  # feed-forward
    return text_proj + num_layers * per_layer


def growth_exponent(sizes, seconds) -> float:
    """Slope of log(time) against log(size): 1 means linear growth."""
    slope, _ = np.polyfit(np.log(np.asarray(sizes, float)), np.log(np.asarray(seconds, float)), 1)
    return float(slope)


def relative_error(out: torch.Tensor, reference: torch.Tensor) -> float:
    """||out - reference|| / ||reference||, in float64: how bf16 results are compared on the GPU."""
    return ((out.double() - reference.double()).norm() / reference.double().norm()).item()


def mib(n_bytes) -> float:
    return n_bytes / 2**20
