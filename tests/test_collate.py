"""Training samples per stage, the collator, and the training stream (which record feeds which
step; unreadable records skipped). Expectations come from the records' numbers and the byte
tokenizer (token id = UTF-8 byte), not from the code under test."""

import json
import logging
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from salova.config import SalovaConfig
from salova.data import synth
from salova.data.collate import IGNORE_INDEX, Collator, DataSettings, build_dataset
from salova.data.records import LabelThresholds
from salova.data.video import SamplerSettings
from salova.errors import RecordError
from salova.processing import SalovaProcessor
from training.stream import MicroBatches, StreamShape, TrainingStream

IMAGE = -200


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    assert synth.main(["--preset", "ci", "--out", str(root), "--quiet"]) == 0
    return root


@pytest.fixture(scope="module")
def config():
    return SalovaConfig.from_preset("tiny")


@pytest.fixture(scope="module")
def processor(config):
    return SalovaProcessor.for_config(config)


def truth(corpus):
    return json.loads((corpus / "ground_truth.json").read_text())["videos"]


def dataset(stage, records_file, corpus, processor, config, focus_k=5, max_queries=16, max_length=8192):
    """The stage's dataset with the reference thresholds and the given K, query count and length."""
    data = DataSettings(SamplerSettings.for_config(config), LabelThresholds(focus_k=focus_k), max_queries, max_length)
    train = corpus / "train"
    return build_dataset(stage, records_file, train, train, processor, data)


def rewrite(corpus, tmp_path, name, edit):
    """A copy of train/<name> with `edit(records)` applied, next to the original (same media root)."""
    records = json.loads((corpus / "train" / name).read_text())
    edit(records)
    path = corpus / "train" / f"{tmp_path.name}-{name}"
    path.write_text(json.dumps(records))
    return path


def sampled_frames(scene: dict, fps: int) -> int:
    return math.ceil((scene["end_frame"] - scene["start_frame"]) / fps)  # 1 fps, anchored at the scene start


def query_texts(processor, ids, mask):
    return [processor.text_tokenizer.decode(row[m.bool()], skip_special_tokens=True) for row, m in zip(ids, mask)]


# ---------------------------------------------------------------- stage 1


def test_stage1_image_and_clip_are_one_segment_with_plain_caption_target(corpus, processor, config):
    data = dataset("pretrain", corpus / "train" / "stage1.json", corpus, processor, config)
    records = json.loads((corpus / "train" / "stage1.json").read_text())
    videos = truth(corpus)
    for index, record in enumerate(records):
        sample = data.sample(index, np.random.default_rng(0))
        caption = record["conversations"][1]["value"]
        if "video" in record:
            meta = videos[f"train/{record['video']}"]
            expected_frames = sum(sampled_frames(s, meta["fps"]) for s in meta["scenes"])
        else:
            expected_frames = 1
        assert sample["frames_per_scene"] == [expected_frames]
        assert sample["pixels"].shape == (expected_frames, 3, 32, 32)
        # plain template: <image> then the caption and a newline; only the caption is trained
        target = list((caption + "\n").encode())
        assert sample["input_ids"].tolist() == [IMAGE, *target]
        assert sample["labels"].tolist() == [IGNORE_INDEX, *target]
        assert query_texts(processor, sample["query_ids"], sample["query_mask"]) == [caption]
        assert sample["focus"].tolist() == [0]


# ---------------------------------------------------------------- stage 1.5


def designed_scenewalk(records):
    """Record 0 (6 scenes) gets similarities whose labels are known by hand."""
    record = records[0]
    count = len(record["scenes"])
    assert count == 6
    sen = np.full((count, count), 0.5)
    np.fill_diagonal(sen, 1.0)
    lb = np.full((count, count), 0.1)
    sen[0, 3], sen[0, 4] = 0.84, 0.83  # T2T > 0.83: scene 3 positive, 4 not (strict)
    lb[0, 5], lb[0, 1] = 0.22, 0.21  # V2T > 0.21: scene 5 positive, 1 not
    lb[0, 3] = 0.30  # row 0 positives {0, 3, 5}; best V2T: 3 (0.30), 5 (0.22), 0 (0.10)
    lb[2, 2] = 0.25
    record["sen_sim"], record["lb_sim"] = sen.tolist(), lb.tolist()
    del records[1:]


def expected_longvideo(sen, lb, k):
    labels = (sen > 0.83) | (lb > 0.21)
    focus = []
    for row in range(len(labels)):
        positives = [int(i) for i in np.flatnonzero(labels[row])]
        best = sorted(positives, key=lambda i: (-lb[row, i], i))[:k]
        focus.append(sorted(best))
    return labels, focus


@given(seed=st.integers(0, 2**32 - 1))
def test_longvideo_queries_labels_and_focus_follow_the_reference_rules(corpus, processor, config, seed):
    path = corpus / "train" / "designed-scenewalk.json"
    if not path.exists():
        records = json.loads((corpus / "train" / "scenewalk.json").read_text())
        designed_scenewalk(records)
        path.write_text(json.dumps(records))
    record = json.loads(path.read_text())[0]
    captions = [turn["value"] for turn in record["conversations"][1::2]]
    sen, lb = np.array(record["sen_sim"]), np.array(record["lb_sim"])
    labels, focus = expected_longvideo(sen, lb, k=2)
    data = dataset("longvideo", path, corpus, processor, config, focus_k=2, max_queries=3)

    sample = data.sample(0, np.random.default_rng(seed))

    queried = [captions.index(text) for text in query_texts(processor, sample["query_ids"], sample["query_mask"])]
    assert len(queried) == 3 and len(set(queried)) == 3
    assert sample["router_labels"].bool().tolist() == labels[queried].tolist()
    target = queried[0]  # the LLM writes the first drawn caption
    assert sample["input_ids"].tolist() == [IMAGE, *list((captions[target] + "\n").encode())]
    assert sample["focus"].tolist() == focus[target]
    meta = truth(corpus)[f"train/{record['video']}"]
    assert sample["frames_per_scene"] == [sampled_frames(s, meta["fps"]) for s in meta["scenes"]]


def test_longvideo_focus_of_the_designed_row(corpus, processor, config):
    """Row 0 of the designed record: positives {0, 3, 5}, the two best by V2T are 3 and 5."""
    records = json.loads((corpus / "train" / "scenewalk.json").read_text())
    designed_scenewalk(records)
    labels, focus = expected_longvideo(np.array(records[0]["sen_sim"]), np.array(records[0]["lb_sim"]), k=2)
    assert np.flatnonzero(labels[0]).tolist() == [0, 3, 5]
    assert focus[0] == [3, 5]


# ---------------------------------------------------------------- stage 2


def test_sft_labels_threshold_with_argmax_fallback_and_focus_from_labels(corpus, processor, config, tmp_path):
    def design(records):
        record = records[0]
        scenes = len(record["scenes"])
        lb = np.full((3, scenes), 0.1)
        lb[0, 1], lb[0, 2], lb[0, 3] = 0.25, 0.21, 0.20  # > 0.20: scenes 1, 2 (0.20 is not above)
        lb[1, 4] = 0.15  # nothing above 0.20: argmax fallback -> scene 4
        lb[2, 0] = 0.30
        record["lb_sim"] = lb.tolist()
        record["conversations"] = record["conversations"][:6]
        del records[1:]

    path = rewrite(corpus, tmp_path, "sft.json", design)
    record = json.loads(path.read_text())[0]
    data = dataset("sft", path, corpus, processor, config, focus_k=2)

    sample = data.sample(0, np.random.default_rng(0))

    expected = np.zeros((3, len(record["scenes"])), dtype=bool)
    expected[0, [1, 2]] = expected[1, 4] = expected[2, 0] = True
    assert sample["router_labels"].bool().tolist() == expected.tolist()
    assert sample["focus"].tolist() == [0, 1]  # union {0, 1, 2, 4}; best V2T 0 (0.30), 1 (0.25)
    wide = dataset("sft", path, corpus, processor, config, focus_k=5).sample(0, np.random.default_rng(0))
    assert wide["focus"].tolist() == [0, 1, 2, 4]  # K above the positives: all of them, and no negative
    # the router reads each question without its media placeholder, option lines and instruction
    questions = [t["value"].replace("<image>\n", "").replace("<video>\n", "").split("\nA. ")[0].strip()
                 for t in record["conversations"][0::2]]
    assert any("\nA. " in t["value"] for t in record["conversations"][0::2])  # some questions had options
    room = config.max_text_pe - 2  # the text tower's table holds the pooled slot, the text and its end token
    assert query_texts(processor, sample["query_ids"], sample["query_mask"]) == [q.encode()[:room].decode() for q in questions]
    # chat template, every answer trained and followed by the end-of-turn token
    text = processor.tokenizer.decode([i for i in sample["input_ids"].tolist() if i >= 0])
    assert text.count("<|im_start|>user") == 3
    trained = sample["labels"][sample["labels"] != IGNORE_INDEX].tolist()
    answers = [t["value"] for t in record["conversations"][1::2]]
    assert processor.tokenizer.decode(trained) == "".join(a + "<|im_end|>" for a in answers)


def test_router_questions_fill_max_queries_and_leave_the_focus_and_text_alone(corpus, processor, config, tmp_path):
    def design(records):
        record = records[0]
        scenes = len(record["scenes"])
        rows = np.full((4, scenes), 0.1)
        for i, scene in enumerate((0, 1, 2, 3)):
            rows[i, scene] = 0.3
        record["router_questions"] = [{"question": f"Extra {i}?", "lb_sim": row.tolist()} for i, row in enumerate(rows)]
        del records[1:]

    path = rewrite(corpus, tmp_path, "sft.json", design)
    plain_path = corpus / "train" / "sft.json"  # the same record 0 without router questions
    record = json.loads(path.read_text())[0]
    asked = len(record["conversations"]) // 2
    for max_queries in (asked, asked + 2, asked + 10):
        sample = dataset("sft", path, corpus, processor, config, max_queries=max_queries).sample(0, np.random.default_rng(3))
        plain = dataset("sft", plain_path, corpus, processor, config, max_queries=max_queries).sample(0, np.random.default_rng(3))
        extra = min(max_queries - asked, 4)
        texts = query_texts(processor, sample["query_ids"], sample["query_mask"])
        assert texts[:asked] == query_texts(processor, plain["query_ids"], plain["query_mask"])
        drawn = [int(t.removeprefix("Extra ").removesuffix("?")) for t in texts[asked:]]
        assert len(drawn) == extra and drawn == sorted(set(drawn))  # distinct, in record order
        labels = sample["router_labels"].bool()
        assert labels[:asked].tolist() == plain["router_labels"].bool().tolist()
        assert [int(row.nonzero()) for row in labels[asked:]] == drawn  # extra i marks scene i
        assert sample["focus"].tolist() == plain["focus"].tolist()  # the Focus comes from the conversation only
        assert torch.equal(sample["input_ids"], plain["input_ids"]) and torch.equal(sample["labels"], plain["labels"])


def test_a_conversation_cut_before_any_answer_is_refused_naming_the_record(corpus, processor, config):
    data = dataset("sft", corpus / "train" / "sft.json", corpus, processor, config, max_length=20)
    with pytest.raises(RecordError, match=r"sft\.json record 0 \(id=synth_sft_00000\).*model_max_length = 20"):
        data.sample(0, np.random.default_rng(0))
    sample = dataset("sft", corpus / "train" / "sft.json", corpus, processor, config, max_length=300).sample(
        0, np.random.default_rng(0))
    assert len(sample["input_ids"]) == len(sample["labels"]) == 300


# ---------------------------------------------------------------- collator


@given(lengths=st.lists(st.integers(1, 12), min_size=1, max_size=5), pad=st.integers(0, 255))
def test_collator_pads_right_and_masks_by_length_even_when_tokens_equal_pad(lengths, pad):
    samples = []
    for n in lengths:
        ids = torch.full((n,), pad)  # every real token equals the pad id
        samples.append(dict(input_ids=ids, labels=ids.clone(), pixels=torch.zeros(1, 3, 2, 2), frames_per_scene=[1],
                            query_ids=torch.ones(1, 2, dtype=torch.long), query_mask=torch.ones(1, 2, dtype=torch.long),
                            router_labels=torch.ones(1, 1), focus=torch.tensor([0]), position=len(samples)))
    kwargs, info = Collator(pad, in_batch_router=False)(samples)
    longest = max(lengths)
    assert kwargs["input_ids"].shape == kwargs["labels"].shape == (len(lengths), longest)
    assert kwargs["attention_mask"].sum(dim=1).tolist() == lengths
    for row, n in enumerate(lengths):
        assert kwargs["attention_mask"][row, :n].all() and not kwargs["attention_mask"][row, n:].any()
        assert (kwargs["labels"][row, n:] == IGNORE_INDEX).all() and (kwargs["labels"][row, :n] == pad).all()
    assert info["positions"] == list(range(len(lengths)))


# ---------------------------------------------------------------- stream and bad records


@given(world=st.integers(1, 4), accumulation=st.integers(1, 3), micro=st.integers(1, 3), step=st.integers(0, 5))
def test_a_step_reads_the_same_samples_whatever_the_process_split(world, accumulation, micro, step):
    split = StreamShape(1000, micro, world, accumulation)
    single = StreamShape(1000, micro, 1, world * accumulation)
    over_ranks = sorted(p for r in range(world) for a in range(accumulation) for p in split.micro_batch(step, a, r))
    one_process = sorted(p for a in range(world * accumulation) for p in single.micro_batch(step, a, 0))
    assert over_ranks == one_process == list(range(step * split.global_batch, (step + 1) * split.global_batch))


def test_micro_batches_resume_where_they_stopped():
    shape = StreamShape(100, 2, 2, 3)
    full = list(MicroBatches(shape, rank=1, start_step=0, total_steps=5))
    assert list(MicroBatches(shape, rank=1, start_step=3, total_steps=5)) == full[3 * 3:]


def test_missing_and_corrupt_videos_are_skipped_with_a_warning_and_counted(corpus, processor, config, tmp_path, caplog):
    (corpus / "train" / "videos" / "corrupt.mp4").write_bytes(b"\x00not an mp4" * 100)

    def break_two(records):
        records[0]["video"] = "videos/missing.mp4"
        records[1]["video"] = "videos/corrupt.mp4"

    path = rewrite(corpus, tmp_path, "scenewalk.json", break_two)
    data = dataset("longvideo", path, corpus, processor, config)
    shape = StreamShape(len(data), 1, 1, 1)
    stream = TrainingStream(data, shape, seed=0)
    with caplog.at_level(logging.WARNING):
        samples = [stream[p] for p in range(shape.steps_per_epoch)]
    skipped = {name for s in samples for name in s["skipped"]}
    assert len(skipped) == 2
    assert any("missing.mp4" in name and "synth_sw_00000" in name for name in skipped)
    assert any("corrupt.mp4" in name and "synth_sw_00001" in name for name in skipped)
    assert "missing.mp4" in caplog.text and "corrupt.mp4" in caplog.text
    assert all(len(s["frames_per_scene"]) >= 1 for s in samples)  # every slot still got a readable record


def test_a_dataset_with_no_readable_record_fails_instead_of_looping(corpus, processor, config, tmp_path):
    def break_all(records):
        for record in records:
            record["video"] = "videos/missing.mp4"

    path = rewrite(corpus, tmp_path, "scenewalk.json", break_all)
    data = dataset("longvideo", path, corpus, processor, config)
    stream = TrainingStream(data, StreamShape(len(data), 1, 1, 1), seed=0)
    with pytest.raises(RecordError, match="no readable record"):
        stream[len(data) - 1]  # the last slot wraps inside the dataset, never past its end


def test_same_position_gives_the_same_sample(corpus, processor, config):
    data = dataset("longvideo", corpus / "train" / "scenewalk.json", corpus, processor, config)
    stream = TrainingStream(data, StreamShape(len(data), 1, 1, 1), seed=3)
    first = stream[2]
    stream[0], stream[1]
    again = TrainingStream(data, StreamShape(len(data), 1, 1, 1), seed=3)[2]
    assert torch.equal(first["query_ids"], again["query_ids"]) and torch.equal(first["input_ids"], again["input_ids"])
    assert torch.equal(first["pixels"], again["pixels"])
