"""samples.jsonl: every answered sample, appended the moment it exists.

One JSON object per line. A line is written with a single `write` on a file
opened with O_APPEND, so lines from several processes never interleave and a
run killed at any point leaves only whole lines (a torn last line is skipped on
reading). A restarted run reads the file and reuses every successful answer
whose key matches, so nothing is answered twice and nothing is lost.

A key is (task, doc_id, settings): `settings` hashes everything that changes an
answer (model weights, K, sampler, decoding, the prompt text and the video), so
an answer given under other settings is never reused.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def settings_hash(*parts) -> str:
    """Stable short hash of JSON-serialisable parts."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.blake2b(blob, digest_size=10).hexdigest()


def sample_key(task: str, doc_id: int, settings: str) -> str:
    return f"{task}/{doc_id}/{settings}"


def read_records(path: Path) -> list[dict]:
    """All whole lines of a samples file, in file order."""
    if not path.is_file():
        return []
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # torn last line of a killed run
                continue
    return records


class SampleLog:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.answered: dict[str, dict] = {}
        self.reload()

    def reload(self) -> None:
        """Read the answers already on disk (from this run or an earlier, interrupted one)."""
        self.answered = {
            r["key"]: r for r in read_records(self.path) if r.get("key") and not r.get("failure")
        }

    def lookup(self, key: str) -> dict | None:
        return self.answered.get(key)

    def append(self, record: dict) -> None:
        line = (json.dumps(record, sort_keys=True, default=str) + "\n").encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        if not record.get("failure"):
            self.answered[record["key"]] = record
