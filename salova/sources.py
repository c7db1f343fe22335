"""A short hash of Python sources, for the keys of caches whose contents those sources compute."""

from __future__ import annotations

import hashlib
import importlib
from functools import cache
from pathlib import Path


def source_digest(*packages: str) -> str:
    """Short hash of the Python sources of the named packages (their files' paths and bytes), for the
    key of anything cached that those sources build: a cache written by other code is not reused."""
    digest = hashlib.blake2b(digest_size=10)
    for package in packages:
        root = Path(importlib.import_module(package).__file__).parent
        for path in sorted(root.rglob("*.py")):
            digest.update(f"{package}/{path.relative_to(root).as_posix()}\0".encode() + path.read_bytes())
    return digest.hexdigest()


@cache
def feature_code_digest() -> str:
    """The sources that turn a video file into scene features (decoding, scene detection, towers,
    connector): part of every feature-cache key, read once a process."""
    return source_digest("salova.data", "salova.modeling")
