"""SALOVA's evaluation harness: the lmms-eval model, our task definitions, python -m evals.run."""

import hashlib
import importlib
import os
from pathlib import Path


def cache_root() -> Path:
    """Where demo data, the demo checkpoint and video features are cached: $SALOVA_CACHE, default ~/.cache/salova."""
    return Path(os.environ.get("SALOVA_CACHE") or Path.home() / ".cache" / "salova")


def source_digest(*packages: str) -> str:
    """Short hash of the Python sources of the named packages (their files' paths and bytes), for the
    key of anything cached that those sources build: a cache written by other code is not reused."""
    digest = hashlib.blake2b(digest_size=10)
    for package in packages:
        root = Path(importlib.import_module(package).__file__).parent
        for path in sorted(root.rglob("*.py")):
            digest.update(f"{package}/{path.relative_to(root).as_posix()}\0".encode() + path.read_bytes())
    return digest.hexdigest()
