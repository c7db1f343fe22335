"""The diagnostic probes of training/probes: what they ask and how they score."""

from types import SimpleNamespace

import numpy as np

from salova.data import synth
from training.probes import open_answer, text_mc


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
