"""The built-in synthetic demo sets (salova.data.synth, preset `demo`), generated once into
$SALOVA_CACHE/demo-data/ (keyed by the preset, the seed and the code of salova.data). They are
laid out like the real benchmark downloads but are NOT the real benchmarks; evals.run says so
whenever it uses them."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path

from filelock import FileLock

from evals.sample_log import settings_hash
from salova.sources import source_digest

PRESET, SEED = "demo", 0


def demo_data_root(cache_root: Path) -> Path:
    from salova.data.synth import PRESETS, generate

    key = settings_hash(dataclasses.asdict(PRESETS[PRESET]), SEED, source_digest("salova.data"))
    folder = cache_root / "demo-data" / f"{PRESET}-{key}"
    if (folder / "manifest.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if not (folder / "manifest.json").is_file():
            building = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".building-"))
            generate(PRESET, building, seed=SEED)
            shutil.rmtree(folder, ignore_errors=True)
            building.rename(folder)
    return folder
