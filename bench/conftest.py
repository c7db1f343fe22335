"""Benchmark suite settings: `pytest bench/ --benchmark-only`.

Each case compares two things measured in the same run and asserts their
ratio; absolute times are reported, never asserted. Every run writes, without
extra flags, under bench/results/ (or --salova-results DIR):
  benchmark-<stamp>.json  pytest-benchmark's JSON (each case's metrics in extra_info)
  ratios-<stamp>.json     the metrics of every case, the machine and the run's wall time
and prints the ratios at the end. `python -m bench.report` compares such files.

CPU times are the process's CPU time with torch on one thread (--salova-threads),
so other jobs on a shared machine make the run longer but leave the numbers
alone; FLOP/s and GEMM peaks are then per core. Cases run on CPU in fp32 and, when CUDA is present, again on the GPU in bf16
(the `device` fixture); the CUDA variants are skipped cleanly on CPU machines.
--salova-profile also writes a torch.profiler trace and a top-kernels table
for the connector and the router.

Adding a case: a `bench/test_<topic>.py` file whose tests use the `benchmark`
fixture (tests without it are skipped by --benchmark-only) and report through
`record`. Decoding benchmarks go in bench/test_decode*.py (video engineer), the
end-to-end case in bench/test_end_to_end.py.
"""

import json
import os
import platform
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

from bench.measure import DTYPE_OF as DTYPES  # noqa: E402
from bench.measure import gemm_peak_flops  # noqa: E402

DEFAULT_RESULTS = Path(__file__).parent / "results"


def pytest_addoption(parser):
    group = parser.getgroup("salova")
    group.addoption("--salova-profile", action="store_true",
                    help="write torch.profiler traces and top-kernel tables for the connector and router")
    group.addoption("--salova-results", default=str(DEFAULT_RESULTS), help="folder for JSON, tables and plots")
    group.addoption("--salova-threads", type=int, default=1,
                    help="torch CPU threads (default 1, timed in process CPU time; 0 = torch's default)")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    results = Path(config.getoption("salova_results"))
    results.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    if getattr(config.option, "benchmark_json", "absent") is None:  # pytest-benchmark's own JSON, by default
        config.option.benchmark_json = JsonTarget(results / f"benchmark-{stamp}.json")
    if config.getoption("salova_threads"):
        torch.set_num_threads(config.getoption("salova_threads"))
    config.stash[_RECORDER] = Recorder(results / f"ratios-{stamp}.json")


class JsonTarget(os.PathLike):
    """Where pytest-benchmark writes its JSON. Recent versions take a path and open() it; older
    ones take the file --benchmark-json opened and write to it in a `with` block: this is both."""

    def __init__(self, path: Path):
        self.path = path

    def __fspath__(self) -> str:
        return str(self.path)

    def __enter__(self):
        self.file = open(self.path, "wb")
        return self.file

    def __exit__(self, *exc_info):
        self.file.close()


class Recorder:
    """Collects each case's metrics; saved as one JSON file and printed at the end of the run."""

    def __init__(self, path: Path):
        self.path = path
        self.started = time.perf_counter()
        self.load_at_start = os.getloadavg()[0]
        self.cases: dict[str, dict] = {}

    def add(self, case: str, metrics: dict, goals: dict | None = None):
        self.cases[case] = {"metrics": metrics, "goals": goals or {}}
        print(f"\n[bench] {case}: " + ", ".join(f"{key}={_short(value)}" for key, value in metrics.items()))

    def save(self):
        if not self.cases:
            return
        summary = {
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_info(),
            "wall_s": round(time.perf_counter() - self.started, 1),
            "load_average_1min": {"start": self.load_at_start, "end": os.getloadavg()[0]},
            "cases": self.cases,
        }
        self.path.write_text(json.dumps(summary, indent=2))


def _short(value):
    return f"{value:.4g}" if isinstance(value, float) else value


def machine_info() -> dict:
    info = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_timer": "process CPU time" if torch.get_num_threads() == 1 else "process CPU time, all threads",
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=10)
        info["commit"] = commit.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["commit"] = None
    return info


_RECORDER = pytest.StashKey[Recorder]()


def pytest_sessionfinish(session):
    recorder = session.config.stash.get(_RECORDER, None)
    if recorder is not None:
        recorder.save()


def pytest_terminal_summary(terminalreporter, config):
    recorder = config.stash.get(_RECORDER, None)
    if recorder is None or not recorder.cases:
        return
    terminalreporter.section("SALOVA benchmark ratios")
    for case, entry in recorder.cases.items():
        for key, value in entry["metrics"].items():
            if "ratio" in key or "fraction" in key or "exponent" in key:
                goal = entry["goals"].get(key, "")
                terminalreporter.write_line(f"{case:45s} {key:40s} {_short(value):>10}  {goal}")
    load = os.getloadavg()[0]
    if max(load, recorder.load_at_start) > 1.5 * (os.cpu_count() or 1):  # the run itself adds ~cores
        terminalreporter.write_line(f"note: the machine was busy (load average {recorder.load_at_start:.1f} at start, "
                                    f"{load:.1f} now, {os.cpu_count()} cores): CPU-time ratios still hold, wall "
                                    f"times do not, and memory-bound steps read slower")
    terminalreporter.write_line(f"run wall time so far: {time.perf_counter() - recorder.started:.0f} s; "
                                f"saved to {recorder.path}")


@pytest.fixture
def record(request, benchmark):
    """record(metrics, goals=None): report this case's metrics (also into the benchmark JSON)."""
    recorder = request.config.stash[_RECORDER]

    def add(metrics: dict, goals: dict | None = None):
        benchmark.extra_info.update(metrics)
        recorder.add(request.node.name, metrics, goals)

    return add


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device"))])
def device(request):
    """'cpu' (fp32) or 'cuda' (bf16); see `dtype`."""
    return request.param


@pytest.fixture
def dtype(device):
    return DTYPES[device]


@pytest.fixture
def gemm_peak(device):
    """Matrix-product FLOP/s measured at the start of the case (fp32 on CPU, bf16 on CUDA)."""
    return gemm_peak_flops(device, DTYPES[device])


@pytest.fixture
def results_dir(request) -> Path:
    return Path(request.config.getoption("salova_results"))


@pytest.fixture
def profile(request, results_dir, device):
    """profile(name, fn): with --salova-profile, run fn once under torch.profiler and write
    <name>-<device>.trace.json (chrome://tracing) and <name>-<device>-top.md (top kernels)."""

    def run(name: str, fn):
        if not request.config.getoption("salova_profile"):
            return
        activities = [torch.profiler.ProfilerActivity.CPU]
        if device == "cuda":
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        with torch.inference_mode(), torch.profiler.profile(activities=activities, record_shapes=True) as prof:
            fn()
            if device == "cuda":
                torch.cuda.synchronize()
        prof.export_chrome_trace(str(results_dir / f"profile-{name}-{device}.trace.json"))
        sort_key = "self_cuda_time_total" if device == "cuda" else "self_cpu_time_total"
        table = prof.key_averages().table(sort_by=sort_key, row_limit=15)
        (results_dir / f"profile-{name}-{device}-top.md").write_text(f"```\n{table}\n```\n")

    return run
