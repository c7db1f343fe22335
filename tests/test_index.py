"""VideoIndex: encode once, answer many; the cache is keyed, atomic and never trusted blindly."""

import json
import multiprocessing
from pathlib import Path

import pytest
import torch

from salova.checkpoint import load_checkpoint
from salova.errors import CheckpointError, VideoError
from salova.index import VideoIndex, tensors_digest

QUESTION = "What colour is the square?"


def first_video(corpus: Path) -> Path:
    return sorted((corpus / "videomme" / "data").glob("*.mp4"))[0]


@pytest.fixture()
def index(tiny_checkpoint, tmp_path):
    model, processor = load_checkpoint(tiny_checkpoint, device="cpu")
    return VideoIndex(model, processor, tmp_path / "cache")


def test_follow_up_question_skips_decoding_and_encoding(index, ci_corpus, tiny_checkpoint, tmp_path):
    video = first_video(ci_corpus)
    cold = index.ask(video, QUESTION, max_new_tokens=6)
    assert index.counters["decoded"] == 1 and index.counters["encoded"] == 1
    warm = index.ask(video, QUESTION, max_new_tokens=6)
    assert index.counters["decoded"] == 1 and index.counters["encoded"] == 1  # nothing decoded or encoded again
    assert index.counters["cache_hits"] == 1 and warm.from_cache and not cold.from_cache
    assert (warm.text, warm.focus, warm.scores) == (cold.text, cold.focus, cold.scores)

    # a fresh index with an empty cache (a cold run elsewhere) gives the same answer
    model, processor = load_checkpoint(tiny_checkpoint, device="cpu")
    elsewhere = VideoIndex(model, processor, tmp_path / "other_cache").ask(video, QUESTION, max_new_tokens=6)
    assert (elsewhere.text, elsewhere.focus) == (cold.text, cold.focus)
    assert elsewhere.scores == pytest.approx(cold.scores, abs=1e-6)


def test_cached_features_equal_fresh_encoding(index, ci_corpus):
    video = first_video(ci_corpus)
    fresh = index.features(video)
    cached = index.features(video)
    assert cached.from_cache and not fresh.from_cache
    assert torch.equal(cached.features.routing, fresh.features.routing)
    assert torch.equal(cached.features.local, fresh.features.local)
    assert cached.scenes == fresh.scenes
    assert cached.meta == json.loads(json.dumps(fresh.meta))


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_damaged_entry_is_rebuilt_not_trusted(index, ci_corpus, damage):
    video = first_video(ci_corpus)
    fresh = index.features(video)
    data = bytearray(fresh.cache_path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[-5] ^= 0xFF  # inside the tensor bytes: only the stored digest can notice
    else:
        data = bytearray(b"not a safetensors file")
    fresh.cache_path.write_bytes(bytes(data))

    rebuilt = index.features(video)
    assert not rebuilt.from_cache
    assert index.counters["rebuilt"] == 1 and index.counters["encoded"] == 2
    assert torch.equal(rebuilt.features.local, fresh.features.local)
    assert index.features(video).from_cache  # the rebuilt entry is valid again


def test_key_changes_with_weights_and_sampler(index, ci_corpus):
    video = first_video(ci_corpus)
    before = index.features(video).cache_path
    with torch.no_grad():
        index.model.connector.latents[1, 0] += 1.0
    index._weights_digest = None  # the model changed under the index
    assert index.cache_path(video, None) != before


def test_key_changes_with_the_code_that_computes_features(index, ci_corpus, monkeypatch):
    import salova.index

    video = first_video(ci_corpus)
    before = index.cache_path(video, None)
    assert index.cache_path(video, None) == before  # same code, same key
    monkeypatch.setattr(salova.index, "feature_code_digest", lambda: "another connector.py")
    assert index.cache_path(video, None) != before


def test_feature_code_digest_covers_the_towers_and_the_decoder():
    from salova.sources import feature_code_digest, source_digest

    assert feature_code_digest() == source_digest("salova.data", "salova.modeling")
    assert feature_code_digest() not in {source_digest("salova.data"), source_digest("salova.modeling")}


def test_missing_video_names_the_file(index, tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(VideoError, match="nope.mp4"):
        index.features(missing)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "absent")


def _index_in_process(checkpoint, cache, video, queue):
    torch.set_num_threads(1)
    model, processor = load_checkpoint(checkpoint, device="cpu")
    indexed = VideoIndex(model, processor, cache).features(video)
    queue.put((str(indexed.cache_path), tensors_digest({"local": indexed.features.local})))


def test_two_processes_share_one_cache(tiny_checkpoint, ci_corpus, tmp_path):
    video = first_video(ci_corpus)
    cache = tmp_path / "shared_cache"
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_index_in_process, args=(tiny_checkpoint, cache, video, queue))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=240)
    assert [worker.exitcode for worker in workers] == [0, 0]
    results = [queue.get(timeout=5) for _ in workers]
    assert results[0] == results[1]
    entries = [p for p in cache.rglob("*") if p.is_file()]
    assert [p.name for p in entries] == [Path(results[0][0]).name]  # one entry, no temporary left
    model, processor = load_checkpoint(tiny_checkpoint, device="cpu")
    reread = VideoIndex(model, processor, cache).features(video)
    assert reread.from_cache


def test_choose_scores_the_answers_with_the_routed_focus(index, ci_corpus):
    from salova.likelihood import answer_loglikelihoods

    video = first_video(ci_corpus)
    answers = ["Red.", "Blue.", "Green."]
    choice = index.choose(video, QUESTION, answers, k=2)
    asked = index.ask(video, QUESTION, max_new_tokens=2, k=2)
    assert choice.focus == asked.focus and choice.scores == asked.scores  # the same routing as ask
    features = index.features(video).features
    expected = answer_loglikelihoods(index.model, index.processor, features, torch.tensor(choice.focus), QUESTION, answers)
    assert choice.answer_scores == pytest.approx(expected.tolist(), abs=1e-5)
    assert choice.best == int(expected.argmax())
    assert choice.scene_times == asked.scene_times
