"""Hashes and versions that pin down what produced a score."""

from __future__ import annotations

import hashlib
import importlib.metadata
import subprocess
from pathlib import Path

from salova.index import file_digest

PACKAGES = (
    "salova",
    "lmms-eval",
    "torch",
    "transformers",
    "accelerate",
    "datasets",
    "av",
    "decord",
    "scenedetect",
)


def folder_digest(folder: Path) -> str:
    """Hash of a folder's files by relative name and content (a checkpoint: weights, config, tokenizers)."""
    h = hashlib.blake2b(digest_size=16)
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        h.update(str(path.relative_to(folder)).encode() + b"\0" + file_digest(path).encode())
    return h.hexdigest()


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state(repo: Path) -> dict:
    """Commit of the project checkout and whether the working tree differs from it."""

    def git(*args) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(status) if status is not None else None}
