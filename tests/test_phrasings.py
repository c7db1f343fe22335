"""salova.data.phrasings: composed question wordings, held-out wordings kept out."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from salova.data import more_questions, phrasings, synth

HELD_OUT = list(synth.HELD_OUT_TEMPLATES.values())


def test_ngrams_treat_placeholders_as_words():
    assert phrasings.words("What is the {thing} in {scene}?") == ["what", "is", "the", "{thing}", "in", "{scene}"]
    assert phrasings.ngrams("a b c d e", 4) == {("a", "b", "c", "d"), ("b", "c", "d", "e")}


def test_no_composed_phrasing_shares_four_words_in_a_row_with_a_held_out_template():
    held_out_ngrams = set().union(*(phrasings.ngrams(t) for t in HELD_OUT))
    for asked in phrasings.TARGETS:
        composed = phrasings.composed(asked, HELD_OUT)
        assert len(composed) > 500  # many wordings, not a handful
        for text in composed:
            assert not phrasings.ngrams(text) & held_out_ngrams, text
            assert text.format(scene="S", thing="T") not in [t.format(scene="S", thing="T") for t in HELD_OUT]


def test_the_filter_removes_exactly_the_phrasings_that_share_a_sequence():
    banned = ["What colour is the background in {scene}?"]
    kept = phrasings.composed("background", banned)
    everything = phrasings.composed("background", [])
    removed = set(everything) - set(kept)
    assert "What colour is the background in {scene}?" in removed
    assert all(phrasings.ngrams(t) & phrasings.ngrams(banned[0]) for t in removed)
    assert not any(phrasings.ngrams(t) & phrasings.ngrams(banned[0]) for t in kept)


def test_each_phrasing_names_the_scene_once_and_asks_its_own_attribute():
    for asked, target in (("background", "background"), ("shape_color", "{thing}")):
        for text in phrasings.composed(asked, HELD_OUT):
            assert text.count("{scene}") == 1 and target in text and (text[0].isupper() or text.startswith("{scene}"))
            assert text.rstrip()[-1] in "?."
            if asked == "shape_color":
                assert "background" not in text


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_composed_questions_contain_the_scene_description_and_no_held_out_sequence(seed):
    rng = np.random.default_rng(seed)
    looks = [{"background": b, "shape_color": s, "shape": "circle", "motion": "left", "label": ""}
             for b, s in zip(synth.COLORS[:6], synth.COLORS[6:])]
    templates = more_questions.phrasing_source("composed")(rng)
    held_out = set().union(*(phrasings.ngrams(t.format(scene="{scene}", thing="shape")) for t in HELD_OUT))
    for asked in phrasings.TARGETS:
        key = {more_questions.synth.other_colour(asked): looks[2][more_questions.synth.other_colour(asked)]}
        question = synth.make_question(rng, looks, 2, asked, templates, 4, synth.AnswerPositions(rng), key)
        assert synth.scene_phrase(key) in question.text and question.answer == looks[2][asked]
        assert not phrasings.ngrams(question.text.replace(synth.scene_phrase(key), "{scene}")) & held_out
