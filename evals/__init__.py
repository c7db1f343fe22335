"""SALOVA's evaluation harness: the lmms-eval model, our task definitions, python -m evals.run."""

import os
from pathlib import Path


def cache_root() -> Path:
    """Where demo data, the demo checkpoint and video features are cached: $SALOVA_CACHE, default ~/.cache/salova."""
    return Path(os.environ.get("SALOVA_CACHE") or Path.home() / ".cache" / "salova")
