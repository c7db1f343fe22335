"""evals/options.py: each benchmark's options read from its record, and the cloze form."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evals.options import cloze, named_options, record_options
from salova.errors import RecordError


@pytest.mark.parametrize(
    "task, doc, expected",
    [
        ("videomme_salova", {"options": ["A. red", "B. dark blue", "C. green", "D. white"]},
         ["red", "dark blue", "green", "white"]),
        ("videomme_long_salova", {"options": ["A. The man leaves.", "B. He waves."]}, ["The man leaves.", "He waves."]),
        ("niah_salova", {"options": ["A. purple", "B. gray"]}, ["purple", "gray"]),
        ("mlvu_dev_salova", {"candidates": ["circle", "square", "star"]}, ["circle", "square", "star"]),
        ("longvideobench_val_salova", {f"option{i}": o for i, o in enumerate(["red", "blue", "pink", "N/A", "N/A"])},
         ["red", "blue", "pink", None, None]),
        ("longvideobench_val_salova", {"candidates": ["yes", "no"]}, ["yes", "no"]),  # the lvb_val.json form
    ],
)  # fmt: skip
def test_options_by_letter_position(task, doc, expected):
    assert record_options(task, doc) == expected


@pytest.mark.parametrize(
    "task, doc, field",
    [("videomme_salova", {"question_id": "001-2", "options": "A. red"}, "options"),
     ("mlvu_dev_salova", {"question_id": "m_3"}, "candidates")],
)  # fmt: skip
def test_a_record_without_options_names_the_task_record_and_field(task, doc, field):
    with pytest.raises(RecordError, match=rf"{task} record {doc['question_id']}: field '{field}'"):
        record_options(task, doc)


def test_a_record_whose_options_are_all_padding_is_an_error():
    with pytest.raises(RecordError, match="longvideobench_val_salova record q7: no options"):
        record_options("longvideobench_val_salova", {"id": "q7", **{f"option{i}": "N/A" for i in range(5)}})


@given(st.text(alphabet="abcdefghij klm.?", min_size=1))
def test_cloze_is_a_capitalised_sentence(option):
    capitalised = option[0].upper() + option[1:]
    assert cloze(option) == (capitalised if option[-1] in ".?" else capitalised + ".")


def test_cloze_is_the_open_answer_form_of_the_sft_records():
    from salova.data import synth

    assert [cloze(c) for c in synth.COLORS] == [synth.open_answer(c) for c in synth.COLORS]
    assert cloze("Is it red?") == "Is it red?"


@pytest.mark.parametrize(
    "question, options, expected",
    [
        ("What is the background color of the scene with a purple object?", ["magenta", "purple", "blue", None], ["B"]),
        ("Which color is the shape on a Dark Blue background?", ["dark blue", "blue", "light gray"], ["A", "B"]),
        ("Is the covered object reddish?", ["red", "cover", "green"], []),  # parts of words are not named
        ("What color is the sky?", ["dark blue", "light gray", None, "red", None], []),
    ],
)
def test_named_options_are_those_the_question_contains_as_whole_words(question, options, expected):
    assert named_options(question, options) == expected


@given(words=st.lists(st.sampled_from(["red", "blue", "green", "gray", "white", "black"]), min_size=2, max_size=6,
                      unique=True), named=st.integers(0, 5))
def test_an_option_put_into_the_question_is_named_and_the_others_are_not(words, named):
    named %= len(words)
    question = f"In the scene with a {words[named]} object, what color is the background?"
    assert named_options(question, words) == [chr(65 + named)]
