"""The diagnostic probes of training/probes: what they ask and how they score."""

from types import SimpleNamespace

import numpy as np
import pytest

from salova.data import synth
from salova.tokenizer import SYNTHETIC_WORDS, byte_tokenizer, word_tokenizer
from training.probes import caption_probe, open_answer, text_mc


def test_open_question_is_the_held_out_phrasing_without_options():
    by_shape = {"asked": "background", "key": {"shape_color": "purple"}}
    by_background = {"asked": "shape_color", "key": {"background": "yellow"}}
    assert open_answer.open_question(by_shape) == "What is the background color of the scene with a purple object?"
    assert (open_answer.open_question(by_background)
            == "Which color does the shape have in the scene with an object on a yellow background?")
    for phrasings in synth.TRAIN_PHRASINGS.values():
        assert open_answer.open_question(by_shape) not in [p.format(scene="x", thing="shape") for p in phrasings]


def test_detected_scene_is_the_one_overlapping_the_answer_span_most():
    scenes = [SimpleNamespace(start_time=s, end_time=e) for s, e in [(0, 10), (10, 12), (12, 30)]]
    indexed = SimpleNamespace(scenes=scenes)
    assert open_answer.detected_scene(indexed, (9.5, 12.0)) == 1
    assert open_answer.detected_scene(indexed, (11.0, 20.0)) == 2
    assert open_answer.detected_scene(indexed, (0.0, 9.0)) == 0


@pytest.mark.parametrize("perceivable_only", [True, False])
def test_caption_probe_finds_the_token_that_starts_each_attribute_word_with_either_tokenizer(perceivable_only):
    rng = np.random.default_rng(3)
    for _ in range(30):
        look = {a: str(rng.choice(values)) for a, values in synth.VOCABULARY.items()}
        look["shape_color"] = str(rng.choice([c for c in synth.COLORS if c != look["background"]]))
        if perceivable_only:
            look["label"] = synth.UNLABELLED[0]
        caption = synth.caption(look, perceivable_only)
        words = {a: synth.attribute_text(a, look[a]).split()[0] for a in caption_probe.word_starts(caption, look)}
        assert set(words) >= {"shape_color", "shape", "background"}
        for tokenizer, whole_words in ((word_tokenizer(), True), (byte_tokenizer(), False)):
            ids = tokenizer(caption, add_special_tokens=False)["input_ids"]
            for attribute, index in caption_probe.word_token_positions(tokenizer, caption, look).items():
                token, word = tokenizer.decode([ids[index]]).strip(), words[attribute]
                # a listed word is one token of the word tokenizer; any other word starts with its first byte
                expected = word if whole_words and word in SYNTHETIC_WORDS else word[0]
                assert token == expected, (caption, attribute)


def test_text_mc_letter_statement_states_the_correct_letter():
    rng = np.random.default_rng(0)
    for _ in range(20):
        prompt, index = text_mc.example(rng, text_mc.PALETTE, 4, statement="letter")
        assert f"The answer is {text_mc.LETTERS[index]}." in prompt
        assert "The background is" not in prompt
        prompt, index = text_mc.example(rng, text_mc.PALETTE, 4)
        answer_line = [line for line in prompt.splitlines() if line.startswith(f"{text_mc.LETTERS[index]}. ")][0]
        assert f"The background is {answer_line[3:]}." in prompt


def test_long_video_probe_encodes_each_ground_truth_scene_of_the_video(ci_corpus, tiny_checkpoint):
    import json

    import torch

    from salova.data.collate import DataSettings, video_pixels
    from salova.modeling.salova import SalovaForCausalLM
    from training.probes.linear_probe import scene_features

    model = SalovaForCausalLM.from_pretrained(tiny_checkpoint).eval()
    settings = DataSettings.for_config(model.config, 2048)
    videos = json.loads((ci_corpus / "ground_truth.json").read_text())["videos"]
    path = sorted(p for p in videos if p.startswith("videomme/"))[0]
    video = videos[path]
    with torch.no_grad():
        rows = scene_features(model, settings, ci_corpus / path, video)
        # independent: the last scene decoded on its own (the connector encodes every scene apart)
        last = video["scenes"][-1]
        alone = [{"start_frame": last["start_frame"], "end_frame": last["end_frame"],
                  "start_fps": video["fps"], "end_fps": video["fps"]}]  # fmt: skip
        features = model.encode_video(*video_pixels(ci_corpus / path, settings.sampler, alone))
    assert {name: len(value) for name, value in rows.items()} == dict.fromkeys(("routing", "local", "local mean"),
                                                                              len(video["scenes"]))
    np.testing.assert_allclose(rows["routing"][-1], features.routing[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(rows["local mean"][-1], features.local[0].mean(0).numpy(), atol=1e-5)


# ----------------------------------------------------------------------------- role probe

BLUE_SCENE = {"background": "blue", "shape_color": "purple", "shape": "circle", "motion": "left", "label": ""}


def test_role_probe_words_each_question_as_asked_with_a_wrong_key_and_without_one():
    from training.probes import role_probe

    rng = np.random.default_rng(0)
    by_shape = {"asked": "background", "key": {"shape_color": "purple"}}
    for _ in range(20):
        asked = role_probe.wordings(by_shape, BLUE_SCENE, rng)
        wrong_text, wrong = asked["wrong key"]
        assert asked["as asked"] == ("What is the background color of the scene with a purple object?", "purple")
        assert wrong in synth.COLORS and wrong not in ("blue", "purple")
        assert wrong_text == f"What is the background color of the scene with {synth._article(wrong)} {wrong} object?"
        assert asked["no key"] == ("What is the background color of this scene?", None)
    by_background = role_probe.wordings({"asked": "shape_color", "key": {"background": "blue"}}, BLUE_SCENE, rng)
    assert by_background["as asked"] == ("Which color does the shape have in the scene with an object on a blue background?",
                                         "blue")
    assert by_background["no key"][0] == "Which color does the shape have in this scene?"


def test_role_probe_counts_an_answer_as_asked_other_named_or_another_colour():
    from training.probes.role_probe import outcome

    assert outcome("blue", BLUE_SCENE, "background", "purple") == "asked colour"
    assert outcome("purple", BLUE_SCENE, "background", "purple") == "other colour"  # the scene's shape, also named
    assert outcome("blue", BLUE_SCENE, "shape_color", "blue") == "other colour"
    assert outcome("green", BLUE_SCENE, "background", "green") == "named colour"
    assert outcome("green", BLUE_SCENE, "background", None) == "another"


def test_role_probe_summary_gives_each_outcome_share_by_attribute_and_wording():
    import pandas as pd

    from training.probes.role_probe import summary

    table = pd.DataFrame({"asked": ["background"] * 4 + ["shape_color"] * 2,
                          "wording": ["as asked", "as asked", "as asked", "no key", "as asked", "as asked"],
                          "outcome": ["asked colour", "asked colour", "other colour", "another", "other colour",
                                      "other colour"]})  # fmt: skip
    rows = {(r["asked"], r["wording"]): r for r in summary(table).to_dict("records")}
    assert list(rows) == [("background", "as asked"), ("background", "no key"), ("shape_color", "as asked")]
    assert rows["background", "as asked"]["asked colour"] == pytest.approx(200 / 3)
    assert rows["background", "as asked"]["other colour"] == pytest.approx(100 / 3)
    assert rows["background", "no key"]["another"] == 100 and rows["background", "no key"]["questions"] == 1
    assert rows["shape_color", "as asked"]["other colour"] == 100 and rows["shape_color", "as asked"]["named colour"] == 0


def test_role_probe_answers_every_held_out_colour_question_three_ways(tmp_path, tiny_checkpoint):
    import json

    import torch

    from salova.checkpoint import load_checkpoint
    from salova.index import VideoIndex
    from training.probes import role_probe

    preset = synth.Preset("roles", benchmark_videos=1, benchmark_questions=3, benchmark_video_seconds=(20.0, 24.0),
                          benchmark_scenes=(4, 5), niah_minutes=(), perceivable_only=True)  # fmt: skip
    synth.generate(preset, tmp_path / "data", seed=0, show_progress=False)
    truth = json.loads((tmp_path / "data" / "ground_truth.json").read_text())
    model, processor = load_checkpoint(tiny_checkpoint, torch.device("cpu"))
    table = role_probe.evaluate(model, processor, VideoIndex(model, processor, tmp_path / "cache"), tmp_path / "data", truth,
                                None)
    questions = {q["question_id"]: q for q in truth["questions"] if q["benchmark"] != "niah"}
    assert sorted(table.question_id.unique()) == sorted(questions) and len(table) == 3 * len(questions)
    for row in table.to_dict("records"):
        question = questions[row["question_id"]]
        scene = truth["videos"][question["video"]]["scenes"][question["answer_scene"]]
        expected = ("asked colour" if row["predicted"] == question["answer"]
                    else "other colour" if row["predicted"] == scene[synth.other_colour(question["asked"])]
                    else None)  # fmt: skip
        assert expected is None or row["outcome"] == expected
        assert row["outcome"] != "asked colour" or row["predicted"] == question["answer"]


def test_role_probe_stops_with_a_clear_error_on_a_corpus_without_colour_questions(tmp_path, tiny_checkpoint, capsys):
    import json

    from training.probes import role_probe

    shape_question = {"benchmark": "videomme", "question_id": "001-1", "video": "videomme/data/a.mp4",
                      "asked": "shape", "key": {"label": "cat"}, "answer": "circle", "answer_scene": 0}  # fmt: skip
    (tmp_path / "ground_truth.json").write_text(json.dumps({"videos": {}, "questions": [shape_question]}))
    with pytest.raises(SystemExit) as stop:
        role_probe.main([str(tiny_checkpoint), "--data-root", str(tmp_path), "--cache", str(tmp_path / "cache")])
    assert stop.value.code == 2
    assert f"{tmp_path}: no held-out question asks one colour" in capsys.readouterr().err


def test_caption_probe_mixes_one_clips_focus_tokens_with_the_next_clips_fast_token():
    import torch

    from salova.modeling.salova import SceneFeatures

    features = [SceneFeatures(routing=torch.full((1, 4), float(i)), local=torch.full((1, 3, 4), 10.0 + i))
                for i in range(3)]  # fmt: skip
    inputs = caption_probe.probe_inputs(features, 2)
    routing = {name: video.routing[0, 0].item() for name, video in inputs.items()}
    local = {name: video.local[0, 0, 0].item() for name, video in inputs.items()}
    assert routing == {"own video": 2, "other video": 0, "own Focus, other Fast": 0, "other Focus, own Fast": 2}
    assert local == {"own video": 12, "other video": 10, "own Focus, other Fast": 12, "other Focus, own Fast": 10}
