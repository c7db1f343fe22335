"""Where each benchmark's files live under a data root, and our task names.

A data root holds one folder per benchmark, laid out as the benchmark's public
download unpacks (the Hugging Face dataset repositories lmms-eval reads):

    <root>/videomme/test-00000-of-00001.parquet        <root>/videomme/data/<videoID>.mp4
    <root>/mlvu/test-00000-of-00001.parquet            <root>/mlvu/<video_name>
    <root>/longvideobench/lvb_val.json (or parquet)    <root>/longvideobench/videos/<video_path>
    <root>/niah/test-00000-of-00001.parquet            <root>/niah/data/<videoID>.mp4

The parquet may also sit one level down (`videomme/videomme/test-...parquet`, as in
the Hugging Face repository). NIAH is the synthetic needle-in-a-haystack grid
(salova.data.synth): Video-MME's schema plus `haystack_minutes` and `needle_depth`.

Folder names are matched case-insensitively against a few usual spellings
(`Video-MME`, `MLVU_dev`, `LongVideoBench`), so a downloaded copy works as is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from salova.errors import ConfigError

DATA_ROOT_ENV = "SALOVA_DATA"


@dataclass(frozen=True)
class Benchmark:
    name: str  # short name on the command line
    folders: tuple[str, ...]  # accepted folder names under the data root
    question_files: tuple[str, ...]  # glob patterns inside the folder, first match wins
    video_dir: str  # folder of the videos, relative to the benchmark folder ("" = flat)
    split: str  # split name our task YAMLs use


BENCHMARKS: dict[str, Benchmark] = {
    "videomme": Benchmark(
        "videomme", ("videomme", "video-mme"), ("test-*.parquet", "videomme/test-*.parquet"), "data", "test"
    ),
    "mlvu": Benchmark("mlvu", ("mlvu", "mlvu_dev"), ("test-*.parquet", "mlvu/test-*.parquet"), "", "test"),
    "longvideobench": Benchmark(
        "longvideobench",
        ("longvideobench", "lvb"),
        ("lvb_val.json", "validation-*.parquet", "*/validation-*.parquet"),
        "videos",
        "validation",
    ),
    "niah": Benchmark("niah", ("niah",), ("test-*.parquet",), "data", "test"),
}

# Command-line task name -> (our lmms-eval task, benchmark whose data it reads).
TASKS: dict[str, tuple[str, str]] = {
    "videomme": ("videomme_salova", "videomme"),
    "videomme_short": ("videomme_short_salova", "videomme"),
    "videomme_medium": ("videomme_medium_salova", "videomme"),
    "videomme_long": ("videomme_long_salova", "videomme"),
    "mlvu": ("mlvu_dev_salova", "mlvu"),
    "longvideobench": ("longvideobench_val_salova", "longvideobench"),
    "niah": ("niah_salova", "niah"),
}
TASK_TO_BENCHMARK = {task: bench for task, bench in TASKS.values()}


def resolve_task(name: str) -> tuple[str, str]:
    """`videomme` or `videomme_salova` -> ("videomme_salova", "videomme")."""
    if name in TASKS:
        return TASKS[name]
    if name in TASK_TO_BENCHMARK:
        return name, TASK_TO_BENCHMARK[name]
    known = ", ".join(sorted(TASKS))
    raise ConfigError(f"--tasks: unknown task {name!r}; known tasks are {known} (or their *_salova names)")


def benchmark_folder(root: Path, bench: Benchmark) -> Path | None:
    if not root.is_dir():
        return None
    by_lower = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    for name in bench.folders:
        if name in by_lower:
            return by_lower[name]
    return None


def question_file(root: Path, bench: Benchmark) -> Path:
    """The benchmark's question file under `root`, or a ConfigError saying what is missing."""
    folder = benchmark_folder(root, bench)
    if folder is None:
        raise ConfigError(
            f"data root {root}: no {bench.name} folder (expected one of {', '.join(bench.folders)}); "
            f"point --data-root (or ${DATA_ROOT_ENV}) at the folder holding the benchmark downloads, "
            "or leave both unset to use the built-in synthetic demo sets"
        )
    for pattern in bench.question_files:
        found = sorted(folder.glob(pattern))
        if found:
            return found[0]
    raise ConfigError(
        f"{folder}: no {bench.name} question file (looked for {', '.join(bench.question_files)})"
    )


def video_folder(root: Path, bench: Benchmark) -> Path:
    folder = benchmark_folder(root, bench)
    if folder is None:
        raise ConfigError(f"data root {root}: no {bench.name} folder")
    return folder / bench.video_dir if bench.video_dir else folder


@lru_cache(maxsize=16)
def _video_folder_for(root: str, bench_name: str) -> Path:
    return video_folder(Path(root), BENCHMARKS[bench_name])


def video_path(bench_name: str, relative: str) -> str:
    """Absolute path of a benchmark video named in a question record, under $SALOVA_DATA.

    The file may be missing: the model records that sample as failed (lmms-eval's
    own doc_to_visual would `sys.exit` the whole run instead)."""
    root = os.environ.get(DATA_ROOT_ENV)
    if not root:
        raise ConfigError(f"${DATA_ROOT_ENV} is not set: it must name the benchmark data root")
    return str(_video_folder_for(str(Path(root).resolve()), bench_name) / relative)
