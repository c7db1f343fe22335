"""Our per-category scores equal what lmms-eval's own aggregation functions give for the
same model outputs, restricted to each category, for Video-MME, MLVU and LongVideoBench."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lmms_eval.tasks.mlvu import utils as mlvu
from lmms_eval.tasks.videomme import utils as videomme

from evals.diagnostics import covers, letterless_replies, letterless_warning, router_recall
from evals.scoring import FAMILIES, MLVU_DEV_TYPES, sample_row, score_task

try:  # lmms-eval 0.7.3 imports decord at the top of its LongVideoBench module
    from lmms_eval.tasks.longvideobench import utils as lvb
except ModuleNotFoundError:
    lvb = None
needs_lvb = pytest.mark.skipif(lvb is None, reason="lmms-eval's LongVideoBench code needs decord")

# Model outputs of every shape lmms-eval's parsers meet: bare letters, phrases, junk, nothing.
OUTPUTS = [
    "A",
    "B",
    "C",
    "D",
    "E",
    "(B) a dog",
    "The answer is C.",
    "D. The three",
    "best option: A",
    "no idea",
    "",
]


def logged(family_name: str, doc: dict, output: str) -> dict:
    """What lmms-eval logs for one sample: the record and its process_results output."""
    process = {"videomme": videomme.videomme_process_results, "mlvu": mlvu.mlvu_process_results,
               "longvideobench": lvb and lvb.longvideobench_process_results}[family_name]  # fmt: skip
    return {"doc": doc, **process(doc, [output])}


videomme_docs = st.fixed_dictionaries({
    "duration": st.sampled_from(videomme.VIDEO_TYPE),
    "domain": st.sampled_from(videomme.CATEGORIES[:3]),
    "sub_category": st.sampled_from(videomme.SUB_CATEGORIES[:4]),
    "task_type": st.sampled_from(videomme.TASK_CATEGORIES[:4]),
    "answer": st.sampled_from("ABCD"),
    "question_id": st.just("q"),
    "videoID": st.just("v"),
})  # fmt: skip
mlvu_docs = st.fixed_dictionaries({
    "task_type": st.sampled_from(MLVU_DEV_TYPES),
    "answer": st.sampled_from("ABCD"),
    "question": st.just("What?\n(A) a\n(B) b\n(C) c\n(D) d\n"),
    "duration": st.floats(10, 4000),
})  # fmt: skip
lvb_docs = st.fixed_dictionaries({
    "duration_group": st.sampled_from([15, 60, 600, 3600]),
    "question_category": st.sampled_from(["TAA", "S2E", "O3O"]),
    "correct_choice": st.integers(0, 3),
    "id": st.just("x"),
    **{f"option{i}": st.just(f"option {i}") for i in range(4)},
    "option4": st.just("N/A"),
})  # fmt: skip


def rows_for(family_name, docs_and_outputs):
    family = FAMILIES[family_name]
    logs = [logged(family_name, doc, out) for doc, out in docs_and_outputs]
    return logs, [sample_row(family, log, failure=None) for log in logs]


@settings(max_examples=6)  # lmms-eval's Video-MME aggregation walks 6480 category keys per call
@given(st.lists(st.tuples(videomme_docs, st.sampled_from(OUTPUTS)), min_size=1, max_size=30))
def test_videomme_categories_match_lmms_eval(samples):
    logs, rows = rows_for("videomme", samples)
    ours = score_task(FAMILIES["videomme"], rows)
    metric = [log["videomme_perception_score"] for log in logs]
    assert ours["score"] == pytest.approx(videomme.videomme_aggregate_results(metric))
    for label, field in FAMILIES["videomme"].categories.items():
        for value, acc in ours["categories"][label].items():
            subset = [m for m in metric if str(m[field]) == value]
            assert acc["n"] == len(subset)
            assert acc["accuracy"] == pytest.approx(videomme.videomme_aggregate_results(subset))


@given(st.lists(st.tuples(mlvu_docs, st.sampled_from(OUTPUTS)), min_size=1, max_size=30))
def test_mlvu_m_avg_and_types_match_lmms_eval(samples):
    logs, rows = rows_for("mlvu", samples)
    ours = score_task(FAMILIES["mlvu"], rows)
    metric = [log["mlvu_percetion_score"] for log in logs]
    assert ours["score"] == pytest.approx(mlvu.mlvu_aggregate_results_dev(metric))
    for task_type, acc in ours["categories"]["task_type"].items():
        # lmms-eval averages over all seven types, so one type alone scores its accuracy / 7
        alone = mlvu.mlvu_aggregate_results_dev([m for m in metric if m["task_type"] == task_type])
        assert acc["accuracy"] == pytest.approx(alone * len(MLVU_DEV_TYPES))


@needs_lvb
@given(st.lists(st.tuples(lvb_docs, st.sampled_from(OUTPUTS)), min_size=1, max_size=30), st.integers(0, 99))
def test_longvideobench_groups_match_lmms_eval(samples, seed):
    random.seed(seed)  # lmms-eval's parser picks a random letter for an unparsable answer
    logs, rows = rows_for("longvideobench", samples)
    ours = score_task(FAMILIES["longvideobench"], rows)
    metric = [log["lvb_acc"] for log in logs]
    assert ours["score"] == pytest.approx(100 * lvb.longvideobench_aggregate_results(metric), abs=1e-3)
    for label in ("duration_group", "question_category"):
        for value, acc in ours["categories"][label].items():
            subset = [m for m in metric if str(m[label]) == value]
            assert acc["accuracy"] == pytest.approx(
                100 * lvb.longvideobench_aggregate_results(subset), abs=1e-3
            )


@needs_lvb
def test_longvideobench_guess_is_fixed_per_question_whatever_came_before():
    from evals.tasks.utils import longvideobench_process_results

    doc = {"duration_group": 60, "question_category": "TAA", "correct_choice": 0, "id": "q17",
           **{f"option{i}": f"o{i}" for i in range(5)}}  # fmt: skip
    guesses = set()
    for seed in range(20):
        random.seed(seed)
        guesses.add(longvideobench_process_results(doc, ["no letter here"])["lvb_acc"]["parsed_pred"])
    random.seed("q17")
    assert guesses == {lvb.longvideobench_process_results(doc, ["no letter here"])["lvb_acc"]["parsed_pred"]}
    random.seed(5)
    before = random.random()
    random.seed(5)
    longvideobench_process_results(doc, ["no letter here"])
    assert random.random() == before  # the caller's random stream is left as it was


@needs_lvb
def test_failed_sample_counts_wrong_even_when_the_parser_guesses_right():
    doc = {"duration_group": 60, "question_category": "TAA", "correct_choice": 0, "id": "x",
           "option0": "a", "option1": "N/A", "option2": "N/A", "option3": "N/A", "option4": "N/A"}  # fmt: skip
    log = logged("longvideobench", doc, "")  # one option: the random pick is always right
    assert log["lvb_acc"]["parsed_pred"] == "A"
    assert sample_row(FAMILIES["longvideobench"], log, failure=None)["correct"] is True
    assert sample_row(FAMILIES["longvideobench"], log, failure="VideoError: missing")["correct"] is False


def test_mlvu_subset_reports_both_m_avg_and_the_mean_over_present_types():
    docs = [{"task_type": "needle", "answer": "A", "question": "q", "duration": 100.0},
            {"task_type": "count", "answer": "B", "question": "q", "duration": 900.0}]  # fmt: skip
    _, rows = rows_for("mlvu", [(docs[0], "A"), (docs[1], "C")])
    ours = score_task(FAMILIES["mlvu"], rows)
    assert ours["m_avg"] == pytest.approx(100 / 7)
    assert ours["m_avg_present"] == pytest.approx(50.0)
    assert list(ours["categories"]["length"]) == ["<3 min", "10-30 min"]


def test_covers_needs_half_of_the_scene_inside_the_answer_span():
    assert covers((10.0, 20.0), (10.0, 20.0))
    assert covers((9.0, 19.0), (10.0, 20.0))  # a boundary one second off still counts
    assert not covers((5.0, 11.0), (10.0, 20.0))  # mostly outside
    assert not covers((20.0, 30.0), (10.0, 20.0))


def test_router_recall_at_1_and_k():
    rows = [
        {"answer_span": (10, 20), "focus": [0, 3], "focus_times": [(0, 10), (10, 20)], "top1": 3},  # both hit
        {"answer_span": (10, 20), "focus": [0, 3], "focus_times": [(0, 10), (10, 20)], "top1": 0},  # only @K
        {"answer_span": (40, 50), "focus": [0, 3], "focus_times": [(0, 10), (10, 20)], "top1": 0},  # miss
        {"answer_span": (10, 20), "failure": "VideoError", "focus": None},  # not judged
        {"answer_span": None, "focus": [0], "focus_times": [(0, 10)], "top1": 0},  # no ground truth
    ]
    assert router_recall(rows) == {
        "n": 3,
        "recall@1": pytest.approx(100 / 3),
        "recall@K": pytest.approx(200 / 3),
    }
    assert router_recall(rows[3:]) is None


# -- generated replies without an option letter ----------------------------------------


@given(letter=st.sampled_from("ABCDEFGH"), opening=st.sampled_from(["", " ", "("]),
       rest=st.sampled_from(["", ".", ":", ")", ". red", ") a dog", " red circle"]))  # fmt: skip
def test_a_reply_opening_with_a_letter_alone_is_lettered(letter, opening, rest):
    counts = letterless_replies([{"answer": opening + letter + rest}])
    assert counts["letterless"] == 0 and counts["n"] == 1


@pytest.mark.parametrize("word", ["Blue.", "Black", "Cyan.", "Every frame", "", "  Dog"])
def test_a_word_reply_is_letterless_even_where_lmms_eval_reads_a_letter_in_it(word):
    assert letterless_replies([{"answer": word}])["letterless"] == 1
    if word == "Blue.":  # why the check exists: the task's parser scores this reply as option B
        assert videomme.extract_characters_regex(word) == "B"


def test_letterless_counts_skip_failed_samples_and_keep_three_distinct_examples():
    rows = [{"answer": a} for a in ["Red.", "Red.", "B", "Gray.", "Cyan.", "Blue."]]
    rows.append({"answer": "", "failure": "video missing"})
    counts = letterless_replies(rows)
    assert counts == {"n": 6, "letterless": 5, "examples": ["Red.", "Gray.", "Cyan."]}
    assert letterless_replies([{"answer": "", "failure": "video missing"}]) is None


def test_letterless_warning_only_when_most_replies_have_no_letter():
    assert letterless_warning("mlvu_dev_salova", {"n": 4, "letterless": 2, "examples": ["Red."]}) is None
    assert letterless_warning("mlvu_dev_salova", None) is None
    line = letterless_warning("mlvu_dev_salova", {"n": 4, "letterless": 3, "examples": ["Red.", "Blue."]})
    assert "3 of 4 mlvu_dev_salova replies" in line and "'Red.', 'Blue.'" in line
    assert "--answer-by likelihood" in line
