"""salova.data.more_questions: extra open-answer stage-2 records on a corpus's training videos."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salova.data import more_questions, synth
from salova.data.records import load_sft, router_query_text, sft_labels
from salova.errors import ConfigError, RecordError


def test_unique_keys_are_colours_no_other_scene_shows_in_that_role():
    looks = [{"background": "red", "shape_color": "blue"}, {"background": "red", "shape_color": "green"},
             {"background": "white", "shape_color": "blue"}]
    assert more_questions.unique_keys(looks) == {1: ["shape_color"], 2: ["background"]}


@settings(max_examples=25, deadline=None)
@given(colours=st.lists(st.tuples(st.sampled_from(synth.COLORS[:5]), st.sampled_from(synth.COLORS[5:])),
                        min_size=1, max_size=8), seed=st.integers(0, 1000),
       phrasing=st.sampled_from(more_questions.PHRASINGS))
def test_every_question_names_one_scene_and_asks_its_other_colour(colours, seed, phrasing):
    looks = [{"background": b, "shape_color": s, "shape": "circle", "motion": "left", "label": ""} for b, s in colours]
    keys = more_questions.unique_keys(looks)
    if not keys:
        return
    record = {"video": "videos/v.mp4", "scenes": []}
    made = more_questions.open_record(np.random.default_rng(seed), record, looks, keys, "r0",
                                      more_questions.phrasing_source(phrasing))
    labels = sft_labels(np.array(made["lb_sim"])).labels
    asked_scenes = []
    for turn, (human, gpt) in enumerate(zip(made["conversations"][0::2], made["conversations"][1::2])):
        assert human["value"].startswith("<image>\n") == (turn == 0)
        (scene,) = np.flatnonzero(labels[turn])  # the V2T row marks exactly one scene: the answer's
        asked_scenes.append(int(scene))
        question = router_query_text(human["value"])
        (key,) = [a for a in synth.PERCEIVABLE  # the phrase naming the scene, e.g. "an object on a red background"
                  if synth.scene_phrase({a: looks[scene][a]}).removeprefix("the scene with ") in question]
        asked = "shape_color" if key == "background" else "background"
        frame = question.replace(synth.scene_phrase({key: looks[scene][key]}), "")  # the words around the scene
        assert ("background" in frame or "behind" in frame) == (asked == "background")  # asks the other colour
        assert gpt["value"] == looks[scene][asked].capitalize() + "."
        assert sum(look[key] == looks[scene][key] for look in looks) == 1  # the key names this scene alone
    assert len(set(asked_scenes)) == len(asked_scenes) == min(more_questions.QUESTIONS_PER_RECORD, len(keys))


def test_command_writes_records_the_sft_loader_reads(ci_corpus, tmp_path, capsys):
    out = tmp_path / "open.json"
    more_questions.main([str(ci_corpus), "--repeats", "3", "--out", str(out)])
    records = json.loads(out.read_text())
    videos = {r["video"] for r in json.loads((ci_corpus / "train" / "sft.json").read_text())}
    assert {r["video"] for r in records} <= videos and len(records) <= 3 * len(videos)
    loaded = load_sft(out, ci_corpus / "train")
    assert len(loaded) == len(records) and all(len(r.questions) == len(r.lb_sim) for r in loaded)
    assert f"{len(records)} records" in capsys.readouterr().out
    again = tmp_path / "again.json"
    more_questions.main([str(ci_corpus), "--repeats", "3", "--out", str(again)])
    assert again.read_text() == out.read_text()  # seeded
    with pytest.raises(SystemExit):
        more_questions.main([str(ci_corpus)])  # --out is required


def test_a_record_whose_video_is_not_in_the_ground_truth_is_named(ci_corpus, tmp_path):
    data = tmp_path / "data"
    (data / "train").mkdir(parents=True)
    (data / "ground_truth.json").write_text((ci_corpus / "ground_truth.json").read_text())
    records = json.loads((ci_corpus / "train" / "sft.json").read_text())
    records[1]["video"] = "videos/missing.mp4"
    (data / "train" / "sft.json").write_text(json.dumps(records))
    with pytest.raises(RecordError, match=r"sft.json record 1 .*field 'video' 'videos/missing.mp4'"):
        more_questions.more_questions(data, repeats=1, seed=0)


def test_questions_per_record_are_drawn_from_the_range(ci_corpus):
    records = more_questions.more_questions(ci_corpus, repeats=30, seed=0, questions=(1, 3))
    counts = [len(r["lb_sim"]) for r in records]
    assert set(counts) == {1, 2, 3}  # 30 draws per video: every count turns up
    for record, count in zip(records, counts):
        assert len(record["conversations"]) == 2 * count  # one question-answer pair per scene
        assert len({int(np.argmax(row)) for row in record["lb_sim"]}) == count  # about different scenes (V2T peak)
    same = more_questions.more_questions(ci_corpus, repeats=30, seed=0, questions=(1, 3))
    assert same == records


@pytest.mark.parametrize("questions", [(0, 2), (3, 2)])
def test_an_empty_or_reversed_range_is_a_config_error(ci_corpus, questions):
    with pytest.raises(ConfigError, match="questions per record"):
        more_questions.more_questions(ci_corpus, repeats=1, seed=0, questions=questions)


def test_router_questions_are_extra_keyed_questions_that_leave_the_conversations_as_they_were(ci_corpus, tmp_path):
    plain = more_questions.more_questions(ci_corpus, repeats=4, seed=2, questions=(1, 3))
    extended = more_questions.more_questions(ci_corpus, repeats=4, seed=2, questions=(1, 3), router_only=6)
    assert [{k: v for k, v in r.items() if k != "router_questions"} for r in extended] == plain
    truth = json.loads((ci_corpus / "ground_truth.json").read_text())["videos"]
    for record in extended:
        looks = truth[f"train/{record['video']}"]["scenes"]
        assert len(record["router_questions"]) == 6
        for entry in record["router_questions"]:
            (scene,) = np.flatnonzero(sft_labels(np.array([entry["lb_sim"]])).labels[0])
            question = router_query_text(entry["question"])
            named = [a for a in synth.PERCEIVABLE if synth.scene_phrase({a: looks[scene][a]}).removeprefix("the scene with ") in question]
            assert len(named) == 1 and sum(look[named[0]] == looks[scene][named[0]] for look in looks) == 1
    out = tmp_path / "r.json"
    more_questions.main([str(ci_corpus), "--repeats", "4", "--seed", "2", "--questions", "1", "3",
                         "--router-questions", "6", "--out", str(out)])
    assert json.loads(out.read_text()) == extended
    loaded = load_sft(out, ci_corpus / "train")
    assert all(len(r.router_questions) == 6 and r.router_lb_sim.shape == (6, len(r.scenes)) for r in loaded)
    with pytest.raises(ConfigError, match="router-only questions"):
        more_questions.more_questions(ci_corpus, repeats=1, seed=0, router_only=-1)
