"""VideoIndex: encode a video once, answer many questions about it.

For a model and a video, the expensive part (decode -> scenes -> vision tower ->
ST-Connector) runs once and its result, per-scene routing tokens and local
tokens with the scene times, is stored as safetensors under a cache folder.
Later questions load it and run only the text tower, the router and the LLM.

Cache entries are keyed by the video file's content hash, the sampler settings
and a hash of the weights that produce the features (vision tower + connector).
Writes go to a temporary file renamed into place, so readers never see half an
entry and two processes writing the same entry both leave a valid one. An entry
that does not load, or whose stored digest does not match its tensors, is
rebuilt rather than trusted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from salova.data.scenes import Scene
from salova.data.video import SamplerSettings, decode_video
from salova.errors import VideoError
from salova.likelihood import answer_loglikelihoods
from salova.modeling.salova import SceneFeatures
from salova.sources import feature_code_digest

CACHE_FORMAT = 1


@dataclass
class IndexedVideo:
    """A video's scene features and where they came from."""

    features: SceneFeatures
    scenes: list[Scene]
    meta: dict
    cache_path: Path
    from_cache: bool


@dataclass
class Answer:
    text: str
    focus: list[int]  # scene indices fed to the LLM as Focus, temporal order
    scene_times: list[tuple[float, float]]  # (start_s, end_s) of each focus scene
    scores: list[float]  # router score of every scene
    from_cache: bool


@dataclass
class Choice:
    """The most likely of several given answers (salova.likelihood), with the routing behind it."""

    best: int  # index of the most likely answer
    answer_scores: list[float]  # log-likelihood of each answer
    focus: list[int]
    scene_times: list[tuple[float, float]]
    scores: list[float]  # router score of every scene
    from_cache: bool


def file_digest(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def feature_weights_digest(model) -> str:
    """Hash of everything that changes a video's features: vision tower, connector, config."""
    state = {f"vision_tower.{k}": v for k, v in model.vision_tower.state_dict().items()}
    state.update({f"connector.{k}": v for k, v in model.connector.state_dict().items()})
    h = hashlib.blake2b(tensors_digest(state).encode(), digest_size=16)
    h.update(json.dumps(model.config.to_dict(), sort_keys=True, default=str).encode())
    return h.hexdigest()


class VideoIndex:
    def __init__(self, model, processor, cache_dir: str | Path, sampler: SamplerSettings | None = None):
        self.model = model.eval()
        self.processor = processor
        self.cache_dir = Path(cache_dir)
        self.sampler = sampler or SamplerSettings.for_config(model.config)
        self.counters = {"decoded": 0, "encoded": 0, "cache_hits": 0, "rebuilt": 0}
        self._weights_digest: str | None = None

    # -- cache keys ---------------------------------------------------------------
    def weights_digest(self) -> str:
        if self._weights_digest is None:
            self._weights_digest = feature_weights_digest(self.model)
        return self._weights_digest

    def cache_path(self, path: Path, scenes) -> Path:
        key = {
            "format": CACHE_FORMAT,
            "code": feature_code_digest(),
            "file": file_digest(path),
            "sampler": dataclasses.asdict(self.sampler),
            "scenes": scenes,
            "weights": self.weights_digest(),
        }
        digest = hashlib.blake2b(json.dumps(key, sort_keys=True, default=str).encode(), digest_size=16).hexdigest()
        return self.cache_dir / digest[:2] / f"{digest}.safetensors"

    # -- features -----------------------------------------------------------------
    def features(self, path: str | Path, scenes=None) -> IndexedVideo:
        path = Path(path)
        if not path.is_file():
            raise VideoError(f"{path}: video file not found")
        entry = self.cache_path(path, scenes)
        cached = self._load(entry)
        if cached is not None:
            self.counters["cache_hits"] += 1
            return cached
        indexed = self._encode(path, scenes, entry)
        self._store(indexed)
        return indexed

    @torch.no_grad()
    def _encode(self, path: Path, scenes, entry: Path) -> IndexedVideo:
        decoded = decode_video(path, self.sampler, scenes=scenes)
        self.counters["decoded"] += 1
        frames = torch.from_numpy(decoded.frames)  # (N, S, S, 3) uint8: the tower normalises it chunk by chunk
        features = self.model.encode_video(frames, decoded.frames_per_scene)
        self.counters["encoded"] += 1
        meta = decoded.summary()
        return IndexedVideo(features, decoded.scenes, meta, entry, from_cache=False)

    def _store(self, indexed: IndexedVideo) -> None:
        tensors = {
            "routing": indexed.features.routing.detach().cpu().contiguous(),
            "local": indexed.features.local.detach().cpu().contiguous(),
        }
        metadata = {
            "format": str(CACHE_FORMAT),
            "digest": tensors_digest(tensors),
            "meta": json.dumps(indexed.meta),
            "scenes": json.dumps([dataclasses.asdict(s) for s in indexed.scenes]),
        }
        indexed.cache_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=indexed.cache_path.parent, suffix=".tmp")
        os.close(fd)
        try:
            save_file(tensors, tmp, metadata=metadata)
            os.replace(tmp, indexed.cache_path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _load(self, entry: Path) -> IndexedVideo | None:
        if not entry.is_file():
            return None
        try:
            with safe_open(entry, framework="pt") as f:
                metadata = f.metadata() or {}
                tensors = {name: f.get_tensor(name) for name in ("routing", "local")}
            if metadata.get("format") != str(CACHE_FORMAT) or metadata.get("digest") != tensors_digest(tensors):
                raise ValueError("digest mismatch")
            scenes = [Scene(**s) for s in json.loads(metadata["scenes"])]
            meta = json.loads(metadata["meta"])
        except Exception:  # any damage: rebuild, never trust
            self.counters["rebuilt"] += 1
            return None
        device, dtype = self.model.device, self.model.dtype
        features = SceneFeatures(tensors["routing"].to(device, dtype), tensors["local"].to(device, dtype))
        return IndexedVideo(features, scenes, meta, entry, from_cache=True)

    # -- questions ----------------------------------------------------------------
    def _route(self, indexed: IndexedVideo, query: str, k: int | None):
        query_ids, query_mask = self.processor.queries([query])
        device = self.model.device
        return self.model.route(indexed.features, query_ids.to(device), query_mask.to(device),
                                k or self.model.config.focus_k)[0]  # fmt: skip

    @staticmethod
    def _times(indexed: IndexedVideo, focus: list[int]) -> list[tuple[float, float]]:
        return [(indexed.scenes[i].start_time, indexed.scenes[i].end_time) for i in focus]

    @torch.no_grad()
    def ask(self, path, question: str, *, query: str | None = None, k: int | None = None,
            max_new_tokens: int = 64, scenes=None, **generate_kwargs) -> Answer:
        indexed = self.features(path, scenes)
        routing = self._route(indexed, query or question, k)
        prompt_ids = self.processor.prompt(question).unsqueeze(0).to(self.model.device)
        output = self.model.generate(
            prompt_ids, video=indexed.features, focus=[routing.focus], max_new_tokens=max_new_tokens,
            **generate_kwargs,
        )
        focus = routing.focus.tolist()
        text = self.processor.decode(output[0]).strip()
        return Answer(text, focus, self._times(indexed, focus), routing.scores.float().cpu().tolist(), indexed.from_cache)

    @torch.no_grad()
    def choose(self, path, question: str, answers: list[str], *, query: str | None = None, k: int | None = None,
               scenes=None) -> Choice:  # fmt: skip
        """The most likely of `answers` as the reply to `question` (ties: the first)."""
        indexed = self.features(path, scenes)
        routing = self._route(indexed, query or question, k)
        scores = answer_loglikelihoods(self.model, self.processor, indexed.features, routing.focus, question, answers)
        focus = routing.focus.tolist()
        return Choice(int(scores.argmax()), scores.tolist(), focus, self._times(indexed, focus),
                      routing.scores.float().cpu().tolist(), indexed.from_cache)  # fmt: skip
