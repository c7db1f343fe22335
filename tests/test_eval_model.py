"""The lmms-eval model wrapper: per-sample log, resume, failures, router query, decoding."""

import json
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evals.lmms_model import SalovaLMMS, decoding_settings, router_query
from evals.sample_log import SampleLog, read_records, sample_key
from salova.config import SalovaConfig
from salova.data.video import SamplerSettings
from salova.errors import ConfigError, RecordError, VideoError


class CountingIndex:
    """Stand-in for VideoIndex that records every question it is asked."""

    def __init__(self):
        self.model = SimpleNamespace(config=SalovaConfig.from_preset("tiny"))
        self.sampler = SamplerSettings.for_config(self.model.config)
        self.asked = []

    def ask(self, path, question, *, query, k, **decoding):
        if not path.endswith(".mp4"):
            raise VideoError(f"{path}: cannot be decoded")
        self.asked.append((path, question, query, k, decoding))
        return SimpleNamespace(text=f"answer to {query}", focus=[1, 4], scene_times=[(2.0, 4.0), (8.0, 9.5)],
                               scores=[0.1, 0.7, 0.0, 0.2, 0.9], from_cache=False)  # fmt: skip


    def choose(self, path, question, answers, *, query, k):
        self.asked.append((path, question, query, k, answers))
        scores = [-float(len(a)) for a in answers]  # the shortest answer is the most likely
        return SimpleNamespace(best=scores.index(max(scores)), answer_scores=scores, focus=[0], scene_times=[(0.0, 2.0)],
                               scores=[0.9, 0.1], from_cache=True)  # fmt: skip


def wrapper(tmp_path, index=None, **kwargs):
    return SalovaLMMS(
        index=index or CountingIndex(),
        checkpoint_hash="ckpt",
        samples=str(tmp_path / "samples.jsonl"),
        **kwargs,
    )


DOC = {"question": "Which shape is red?\n(A) circle\n(B) square\n", "answer": "A"}
GEN = {"max_new_tokens": 16, "temperature": 0, "do_sample": False, "until": ["\n\n"]}


def test_answer_is_logged_at_once_and_reused_by_a_restarted_model(tmp_path):
    first = wrapper(tmp_path)
    text = first.answer("mlvu_dev_salova", 3, DOC, "prompt", GEN, "/data/v.mp4")
    assert text == "answer to Which shape is red?"
    [record] = read_records(tmp_path / "samples.jsonl")
    assert record["answer"] == text and record["focus"] == [1, 4] and record["top1"] == 4

    restarted = wrapper(tmp_path)
    assert restarted.answer("mlvu_dev_salova", 3, DOC, "prompt", GEN, "/data/v.mp4") == text
    assert restarted.index.asked == [] and restarted.model_calls == 0
    assert len(read_records(tmp_path / "samples.jsonl")) == 1


def test_a_different_setting_is_answered_again(tmp_path):
    first = wrapper(tmp_path)
    first.answer("t", 0, DOC, "prompt", GEN, "/data/v.mp4")
    for changed in (wrapper(tmp_path, k=7), wrapper(tmp_path, max_new_tokens=4)):
        changed.answer("t", 0, DOC, "prompt", GEN, "/data/v.mp4")
        assert changed.model_calls == 1
    other_prompt = wrapper(tmp_path)
    other_prompt.answer("t", 0, DOC, "another prompt", GEN, "/data/v.mp4")
    assert other_prompt.model_calls == 1


def test_unreadable_video_is_a_recorded_failure_and_is_retried_later(tmp_path):
    model = wrapper(tmp_path)
    assert model.answer("t", 0, DOC, "prompt", GEN, "/data/broken.avi") == ""
    [record] = read_records(tmp_path / "samples.jsonl")
    assert record["failure"].startswith("VideoError") and "broken.avi" in record["failure"]
    again = wrapper(tmp_path)
    again.answer("t", 0, DOC, "prompt", GEN, "/data/broken.avi")
    assert again.model_calls == 1  # failures are not reused: a fixed video gets its answer


def test_strict_stops_at_the_first_failure(tmp_path):
    with pytest.raises(VideoError, match="--strict"):
        wrapper(tmp_path, strict=True).answer("t", 0, DOC, "prompt", GEN, "/data/broken.avi")


def test_router_gets_the_question_and_the_llm_the_prompt(tmp_path):
    model = wrapper(tmp_path, k=3)
    model.answer("t", 0, DOC, "full prompt with boilerplate", GEN, "/data/v.mp4")
    [(path, question, query, k, decoding)] = model.index.asked
    assert (question, query, k) == ("full prompt with boilerplate", "Which shape is red?", 3)
    assert decoding == {"max_new_tokens": 16, "do_sample": False}


@pytest.mark.parametrize(
    "question, query",
    [
        ("Which shape is red?\n(A) circle\n(B) square\n", "Which shape is red?"),  # MLVU: options inside
        ("What happens when the man waves?", "What happens when the man waves?"),  # Video-MME, LVB
        ("Count the dogs.\nA. one\nB. two", "Count the dogs."),
    ],
)
def test_router_query_drops_the_options(question, query):
    assert router_query({"question": question}) == query


def test_decoding_is_greedy_unless_the_task_samples():
    assert decoding_settings({"max_new_tokens": 16, "temperature": 0, "top_p": 1.0, "num_beams": 1,
                              "do_sample": False, "until": ["\n\n"]}, None) == {"max_new_tokens": 16, "do_sample": False}  # fmt: skip
    assert decoding_settings({"temperature": 0.7, "until": ["\n\n"]}, 8) == {
        "max_new_tokens": 8, "do_sample": True, "temperature": 0.7, "top_p": 1.0}  # fmt: skip


@given(st.lists(st.fixed_dictionaries({"task": st.sampled_from(["a", "b"]), "doc_id": st.integers(0, 5),
                                       "answer": st.text(max_size=20)}), max_size=12))  # fmt: skip
def test_sample_log_round_trip_keeps_the_latest_answer_per_key(tmp_path_factory, records):
    path = tmp_path_factory.mktemp("log") / "samples.jsonl"
    log = SampleLog(path)
    expected = {}
    for r in records:
        key = sample_key(r["task"], r["doc_id"], "s")
        log.append({**r, "key": key})
        expected[key] = r["answer"]
    reread = SampleLog(path)
    assert {k: v["answer"] for k, v in reread.answered.items()} == expected


def test_sample_log_skips_a_torn_last_line(tmp_path):
    path = tmp_path / "samples.jsonl"
    path.write_text(json.dumps({"key": "t/0/s", "answer": "A"}) + "\n" + '{"key": "t/1/s", "ans')
    assert list(SampleLog(path).answered) == ["t/0/s"]


LVB_DOC = {"id": "lvb_1", "question": "What color is the sky?", "answer": "C",
           **{f"option{i}": o for i, o in enumerate(["dark blue", "light gray", "N/A", "red", "N/A"])}}  # fmt: skip


def test_answer_by_likelihood_scores_each_option_and_answers_its_letter(tmp_path):
    model = wrapper(tmp_path, k=2, answer_by="likelihood")
    reply = model.answer("longvideobench_val_salova", 0, LVB_DOC, "prompt with options", GEN, "/data/v.mp4")
    [(path, question, query, k, answers)] = model.index.asked
    assert (question, query, k) == ("What color is the sky?", "What color is the sky?", 2)  # no option list
    assert answers == ["Dark blue.", "Light gray.", "Red."]  # the N/A padding is not scored
    assert reply == "D"  # "Red." is the shortest; it sits at letter D once the padding is counted
    [record] = read_records(tmp_path / "samples.jsonl")
    assert record["option_scores"] == {"A": -10.0, "B": -11.0, "D": -4.0}
    assert record["named_options"] == []  # the question names none of its options
    model.answer("longvideobench_val_salova", 1, {**LVB_DOC, "question": "What color is the ball on the red mat?"},
                 "p", GEN, "/data/v.mp4")
    assert read_records(tmp_path / "samples.jsonl")[-1]["named_options"] == ["D"]


def test_answer_by_is_part_of_the_sample_key(tmp_path):
    generated = wrapper(tmp_path)
    generated.answer("videomme_salova", 0, {**DOC, "options": ["A. red", "B. blue"]}, "p", GEN, "/data/v.mp4")
    scored = wrapper(tmp_path, answer_by="likelihood")
    reply = scored.answer("videomme_salova", 0, {**DOC, "options": ["A. red", "B. blue"]}, "p", GEN, "/data/v.mp4")
    assert reply == "A" and scored.model_calls == 1  # answered again, not taken from the generated log


def test_a_record_without_options_is_a_recorded_failure(tmp_path):
    model = wrapper(tmp_path, answer_by="likelihood")
    assert model.answer("mlvu_dev_salova", 3, DOC, "p", GEN, "/data/v.mp4") == ""
    [record] = read_records(tmp_path / "samples.jsonl")
    assert "RecordError" in record["failure"] and "'candidates'" in record["failure"]


def test_strict_keeps_the_error_class(tmp_path):
    with pytest.raises(RecordError, match="'candidates'.*--strict"):
        wrapper(tmp_path, answer_by="likelihood", strict=True).answer("mlvu_dev_salova", 3, DOC, "p", GEN, "/v.mp4")


def test_unknown_answer_by_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="answer_by='vote'"):
        wrapper(tmp_path, answer_by="vote")
