"""Synthetic corpora (salova/data/synth.py): determinism, official schemas, ground truth."""

import json
import warnings

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from salova.config import PRESETS
from salova.data import records, render, synth
from salova.errors import ConfigError


@pytest.fixture(scope="module")
def ci(tmp_path_factory):
    out = tmp_path_factory.mktemp("ci")
    manifest = synth.generate("ci", out, seed=0, show_progress=False)
    return out, manifest, json.loads((out / "ground_truth.json").read_text())


# A miniature of the `small` preset's corpus: perceivable attributes only, K = 5 questions per
# training video, held-out videos of 30-40 scenes.
PERCEIVABLE_PRESET = synth.Preset("perceivable", stage1_clips=4, stage1_images=2, train_videos=4, sft_questions=5,
                                  benchmark_videos=2, benchmark_questions=4, video_seconds=(20.0, 30.0), scenes=(6, 10),
                                  benchmark_video_seconds=(64.0, 80.0), benchmark_scenes=(30, 40),
                                  niah_minutes=(1, 3), niah_depths=(0, 50, 100), niah_needles=2,
                                  perceivable_only=True)  # fmt: skip


@pytest.fixture(scope="module")
def perceivable(tmp_path_factory):
    out = tmp_path_factory.mktemp("perceivable")
    manifest = synth.generate(PERCEIVABLE_PRESET, out, seed=0, show_progress=False)
    return out, manifest, json.loads((out / "ground_truth.json").read_text())


def all_files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------- determinism and manifest


def test_same_seed_gives_identical_bytes_and_other_seed_differs(ci, tmp_path):
    out, _, _ = ci
    synth.generate("ci", tmp_path / "again", seed=0, show_progress=False)
    synth.generate("ci", tmp_path / "other", seed=1, show_progress=False)
    first, again, other = all_files(out), all_files(tmp_path / "again"), all_files(tmp_path / "other")
    assert first == again
    assert first["train/scenewalk.json"] != other["train/scenewalk.json"]
    assert first["videomme/data/synth_vmme_0000.mp4"] != other["videomme/data/synth_vmme_0000.mp4"]


def test_manifest_hashes_every_file_and_counts_records(ci):
    import hashlib

    out, manifest, truth = ci
    assert (manifest["preset"], manifest["seed"]) == ("ci", 0)
    on_disk = set(all_files(out)) - {"manifest.json"}
    assert set(manifest["files"]) == on_disk
    for relative, digest in manifest["files"].items():
        assert hashlib.sha256((out / relative).read_bytes()).hexdigest() == digest
    counts = manifest["counts"]
    assert counts["videos"] == len(truth["videos"]) == sum(name.endswith(".mp4") for name in on_disk)
    assert counts["sft_records"] == len(json.loads((out / "train/sft.json").read_text()))
    assert counts["videomme_questions"] == pq.read_metadata(out / "videomme/test-00000-of-00001.parquet").num_rows


def test_ci_preset_stays_tiny(ci):
    """A size proxy for 'generates in a few seconds' (timings belong in bench/)."""
    _, manifest, truth = ci
    frames = sum(video["scenes"][-1]["end_frame"] for video in truth["videos"].values())
    assert frames <= 3000 and manifest["counts"]["videos"] <= 25
    for path, video in truth["videos"].items():
        longest = 40 if path.startswith(("train/videos/", "videomme/", "mlvu/", "longvideobench/")) else 130
        assert video["size"] == [64, 48] and video["duration_s"] <= longest, path


# ----------------------------------------------------------------------------- videos


def test_video_frames_show_each_scene_background(ci):
    """Decode a benchmark video: frame count and each scene's dominant colour match the ground truth."""
    out, _, truth = ci
    path = "mlvu/synth_mlvu_0000.mp4"
    with av.open(str(out / path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    scenes = truth["videos"][path]["scenes"]
    assert len(frames) == scenes[-1]["end_frame"]
    for scene in scenes:
        middle = frames[(scene["start_frame"] + scene["end_frame"]) // 2]
        dominant = np.median(middle.reshape(-1, 3), axis=0)
        assert np.abs(dominant - render.PALETTE[scene["background"]]).max() < 30, scene


def test_motion_phrases_match_the_captions():
    for motion, phrase in synth.MOTION_PHRASES.items():
        assert phrase in render.SceneSpec("red", "circle", "blue", motion, "cat", 1.0).caption()


# ----------------------------------------------------------------------------- training records


def test_scenewalk_records_give_each_caption_its_own_scene(ci):
    out, _, truth = ci
    loaded = records.load_scenewalk(out / "train/scenewalk.json", out / "train")
    assert len(loaded) == 3
    for record in loaded:
        scenes = truth["videos"][f"train/{record.video.relative_to((out / 'train').resolve()).as_posix()}"]["scenes"]
        count = len(scenes)
        assert record.sen_sim.shape == record.lb_sim.shape == (count, count) == (len(record.scenes), len(record.captions))
        assert list(record.captions) == [scene["caption"] for scene in scenes]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            labels = record.router_labels()
        assert labels.labels.tolist() == np.eye(count, dtype=bool).tolist()
        off_diagonal = record.lb_sim[~np.eye(count, dtype=bool)]
        assert off_diagonal.max() < 0.20 and record.sen_sim[~np.eye(count, dtype=bool)].max() < 0.83


def test_sft_labels_point_at_the_question_scene(ci):
    out, _, truth = ci
    expected = {entry["id"]: entry["question_scenes"] for entry in truth["sft"]}
    for record in records.load_sft(out / "train/sft.json", out / "train"):
        labels = record.router_labels()
        assert labels.fallback_rows == () and labels.labels.shape == (len(record.questions), len(record.scenes))
        assert [int(np.flatnonzero(row)[0]) for row in labels.labels] == expected[record.id]
        assert labels.labels.sum(axis=1).tolist() == [1] * len(record.questions)
        for row, v2t, scene in zip(labels.labels, record.lb_sim, expected[record.id]):
            assert records.focus_scenes(row, v2t, k=5).tolist() == [scene]


def test_stage1_records_are_single_scene_clips_and_images(ci):
    out, _, truth = ci
    loaded = records.load_stage1(out / "train/stage1.json", out / "train")
    assert sorted(r.media_kind for r in loaded) == ["image"] * 2 + ["video"] * 4
    for record in loaded:
        if record.media_kind == "video":
            (scene,) = truth["videos"][f"train/{record.media.relative_to((out / 'train').resolve()).as_posix()}"]["scenes"]
            assert record.caption == scene["caption"]
        else:
            assert record.media.suffix == ".png" and record.caption.startswith("A ")


# ----------------------------------------------------------------------------- question sets

OFFICIAL_COLUMNS = {
    "videomme/test-00000-of-00001.parquet": {
        "video_id": "string", "duration": "string", "domain": "string", "sub_category": "string", "url": "string",
        "videoID": "string", "question_id": "string", "task_type": "string", "question": "string",
        "options": "list<element: string>", "answer": "string"},
    "mlvu/test-00000-of-00001.parquet": {
        "video_name": "string", "duration": "double", "question": "string", "candidates": "list<element: string>",
        "answer": "string", "task_type": "string", "question_id": "string"},
    "longvideobench/validation-00000-of-00001.parquet": {
        "video_id": "string", "id": "string", "video_path": "string", "subtitle_path": "string", "question": "string",
        **{f"option{i}": "string" for i in range(5)}, "correct_choice": "int64", "duration": "double",
        "duration_group": "int64", "question_category": "string", "topic_category": "string",
        "starting_timestamp_for_subtitles": "double"},
}  # fmt: skip
EXTRA_COLUMNS = {"answer_scene": "int64", "answer_start_s": "double", "answer_end_s": "double"}


@pytest.mark.parametrize("relative", sorted(OFFICIAL_COLUMNS))
def test_question_files_have_the_official_columns_and_types(ci, relative):
    out, _, _ = ci
    schema = pq.read_schema(out / relative)
    types = {name: str(schema.field(name).type) for name in schema.names}
    assert types == OFFICIAL_COLUMNS[relative] | EXTRA_COLUMNS


def test_lvb_json_equals_lvb_parquet(ci):
    out, _, _ = ci
    from_json = json.loads((out / "longvideobench/lvb_val.json").read_text())
    assert from_json == pq.read_table(out / "longvideobench/validation-00000-of-00001.parquet").to_pylist()


BENCHMARK_FILES = {"videomme": "videomme/test-00000-of-00001.parquet", "mlvu": "mlvu/test-00000-of-00001.parquet",
                   "longvideobench": "longvideobench/lvb_val.json", "niah": "niah/test-00000-of-00001.parquet"}  # fmt: skip


def load_set(out, suite):
    return records.load_questions(out / BENCHMARK_FILES[suite], suite)


@pytest.mark.parametrize("corpus", ["ci", "perceivable"])
@pytest.mark.parametrize("suite", sorted(BENCHMARK_FILES))
def test_every_answer_lives_in_exactly_one_scene(request, corpus, suite):
    out, _, truth = request.getfixturevalue(corpus)
    questions = load_set(out, suite)
    facts = {q["question_id"]: q for q in truth["questions"] if q["benchmark"] == suite}
    assert len(questions) == len(facts) > 0
    for question in questions:
        fact = facts[question.id]
        video = truth["videos"][fact["video"]]
        scenes = video["scenes"]
        named = [i for i, s in enumerate(scenes) if all(s[a] == v for a, v in fact["key"].items())]
        assert named == [fact["answer_scene"]] == [question.answer_scene]
        assert question.video == (out / fact["video"]).resolve()
        answer_scene = scenes[question.answer_scene]
        assert synth.attribute_text(fact["asked"], answer_scene[fact["asked"]]) == fact["answer"]
        assert fact["answer"] in answer_scene["caption"]
        assert question.options["ABCDE".index(question.answer)] == fact["answer"]
        assert len(set(question.options)) == len(question.options)
        for attribute, value in fact["key"].items():
            assert synth.attribute_text(attribute, value) in question.question
        fps = video["fps"]
        assert question.answer_span_s == (answer_scene["start_frame"] / fps, answer_scene["end_frame"] / fps)


def test_distractor_options_come_from_look_alike_scenes(ci):
    """Wrong options are, where possible, values shown elsewhere in the same video."""
    out, _, truth = ci
    shown_elsewhere = total = 0
    for fact in truth["questions"]:
        scenes = truth["videos"][fact["video"]]["scenes"]
        others = {synth.attribute_text(fact["asked"], s[fact["asked"]]) for i, s in enumerate(scenes) if i != fact["answer_scene"]}
        total += 1
        shown_elsewhere += bool(others - {fact["answer"]})
    assert shown_elsewhere / total > 0.8


def test_niah_needle_sits_at_each_depth_with_the_same_question(ci):
    out, _, truth = ci
    rows = pq.read_table(out / BENCHMARK_FILES["niah"]).to_pylist()
    assert sorted({(r["haystack_minutes"], r["needle_depth"]) for r in rows}) == [(m, d) for m in (1.0, 2.0) for d in (0, 50, 100)]
    for minutes in (1.0, 2.0):
        same_length = [r for r in rows if r["haystack_minutes"] == minutes]
        assert len({(r["question"], tuple(r["options"]), r["answer"]) for r in same_length}) == 2
        for row in same_length:
            scenes = truth["videos"][f"niah/data/{row['videoID']}.mp4"]["scenes"]
            duration = scenes[-1]["end_frame"]
            assert abs(duration - minutes * 60 - 10) <= 1  # haystack + the 10 s needle at 1 fps
            if row["needle_depth"] == 0:
                assert row["answer_scene"] == 0
            if row["needle_depth"] == 100:
                assert row["answer_scene"] == len(scenes) - 1
            if row["needle_depth"] == 50:
                assert 0.2 < row["answer_start_s"] / duration < 0.8
            assert sum(s["label"] in synth.NEEDLE_LABELS for s in scenes) == 1


# ----------------------------------------------------------------------------- lmms-eval's own task functions


def test_lmms_eval_videomme_functions_accept_the_rows(ci, monkeypatch):
    videomme = pytest.importorskip("lmms_eval.tasks.videomme.utils")
    out, _, _ = ci
    monkeypatch.setattr(videomme, "base_cache_dir", str(out))  # as if HF_HOME=out
    rows = pq.read_table(out / BENCHMARK_FILES["videomme"]).to_pylist()
    prompt = videomme.videomme_doc_to_text(rows[0], {"post_prompt": "Answer:"})
    assert rows[0]["question"] in prompt and "\n".join(rows[0]["options"]) in prompt
    assert videomme.videomme_doc_to_visual(rows[0]) == [str(out / "videomme/data" / f"{rows[0]['videoID']}.mp4")]
    scored = [videomme.videomme_process_results(r, [f"The answer is {r['answer']}."])["videomme_perception_score"] for r in rows]
    assert videomme.videomme_aggregate_results(scored) == pytest.approx(100.0)
    wrong = [videomme.videomme_process_results(r, ["A" if r["answer"] != "A" else "B"])["videomme_perception_score"] for r in rows]
    assert videomme.videomme_aggregate_results(wrong) == pytest.approx(0.0)


def test_lmms_eval_mlvu_functions_accept_the_rows(ci, monkeypatch):
    mlvu = pytest.importorskip("lmms_eval.tasks.mlvu.utils")
    out, _, _ = ci
    monkeypatch.setattr(mlvu, "cache_dir_dev", str(out / "mlvu"))  # as if HF_HOME=out
    rows = pq.read_table(out / BENCHMARK_FILES["mlvu"]).to_pylist()
    assert mlvu.mlvu_doc_to_text(rows[0], {"pre_prompt": "", "post_prompt": "\nBest option: ("}).startswith(rows[0]["question"])
    assert mlvu.mlvu_doc_to_visual_dev(rows[0]) == [str(out / "mlvu" / rows[0]["video_name"])]
    scored = [mlvu.mlvu_process_results(r, [f"{r['answer']}) x"])["mlvu_percetion_score"] for r in rows]
    assert mlvu.mlvu_aggregate_results_dev(scored) == pytest.approx(100 / 7)  # needle only: M-Avg over 7 types


def test_lmms_eval_longvideobench_functions_accept_the_rows(ci):
    lvb = pytest.importorskip("lmms_eval.tasks.longvideobench.utils")  # needs decord in 0.7.3
    out, _, _ = ci
    rows = json.loads((out / BENCHMARK_FILES["longvideobench"]).read_text())
    kwargs = {"pre_prompt": "", "post_prompt": "Answer with the option's letter.\n"}
    assert "\nA. " + rows[0]["option0"] in lvb.longvideobench_doc_to_text(rows[0], kwargs)
    scored = [lvb.longvideobench_process_results(r, ["ABCDE"[r["correct_choice"]]])["lvb_acc"] for r in rows]
    assert lvb.longvideobench_aggregate_results(scored) == pytest.approx(1.0)
    assert all((out / "longvideobench/videos" / r["video_path"]).is_file() for r in rows)


# ----------------------------------------------------------------------------- pieces and command line


@given(seed=st.integers(0, 2**32 - 1), count=st.integers(1, 12))
def test_related_looks_are_distinct_drawable_and_cut(seed, count):
    looks = synth.related_looks(np.random.default_rng(seed), count)
    assert len(looks) == count and len({tuple(sorted(look.items())) for look in looks}) == count
    assert all(look["shape_color"] != look["background"] for look in looks)
    assert all(a["background"] != b["background"] for a, b in zip(looks, looks[1:]))


@given(seed=st.integers(0, 2**32 - 1), count=st.integers(1, 10), minimum=st.integers(1, 8), extra=st.integers(0, 500))
def test_split_frames_fills_the_video(seed, count, minimum, extra):
    frames = synth.split_frames(np.random.default_rng(seed), count * minimum + extra, count, minimum)
    assert len(frames) == count and sum(frames) == count * minimum + extra and min(frames) >= minimum


@given(seed=st.integers(0, 2**32 - 1), count=st.integers(2, 10))
def test_unique_key_names_one_scene_or_none(seed, count):
    rng = np.random.default_rng(seed)
    looks = synth.related_looks(rng, count, share=0.9)
    for scene in range(count):
        for asked in synth.ATTRIBUTES:
            key = synth.unique_key(rng, looks, scene, asked)
            matching = [i for i, look in enumerate(looks) if key and all(look[a] == v for a, v in key.items())]
            if key is None:  # then the scene differs from another only in the asked attribute
                assert any(all(look[a] == looks[scene][a] for a in synth.ATTRIBUTES if a != asked)
                           for i, look in enumerate(looks) if i != scene)  # fmt: skip
            else:
                assert asked not in key and matching == [scene]


@given(seed=st.integers(0, 2**32 - 1), low=st.floats(10, 60), extra=st.floats(0, 60), fewest=st.integers(1, 20),
       more=st.integers(0, 5), fps=st.integers(1, 8))  # fmt: skip
def test_planned_videos_respect_the_parameters(seed, low, extra, fewest, more, fps):
    try:
        preset = synth.configure("ci", video_seconds=(low, low + extra), scenes=(fewest, fewest + more), fps=fps)
    except ConfigError:
        return  # the scenes cannot fit (checked in test_configure_rejects_bad_parameters)
    video = synth.plan_video(np.random.default_rng(seed), "v.mp4", preset)
    assert fewest <= len(video.looks) == len(video.frames) <= fewest + more
    assert max(low, fewest * synth.MIN_SCENE_SECONDS) - 1 / fps <= video.duration_s <= low + extra + 1 / fps
    assert min(video.frames) >= synth.MIN_SCENE_SECONDS * fps


def test_command_line_writes_a_corpus_and_rejects_bad_parameters(tmp_path, capsys):
    assert synth.main(["--preset", "ci", "--out", str(tmp_path / "c"), "--seed", "3", "--quiet", "--size", "32x24",
                       "--video-seconds", "10", "12", "--scenes", "2", "3", "--fps", "2"]) == 0  # fmt: skip
    manifest = json.loads((tmp_path / "c/manifest.json").read_text())
    assert manifest["seed"] == 3 and manifest["parameters"]["size"] == [32, 24]
    truth = json.loads((tmp_path / "c/ground_truth.json").read_text())
    for path, video in truth["videos"].items():
        if path.startswith(("videomme/", "mlvu/", "longvideobench/", "train/videos/")):
            assert 2 <= len(video["scenes"]) <= 3 and 10 <= video["duration_s"] <= 12 and video["fps"] == 2
    with pytest.raises(SystemExit):
        synth.main(["--preset", "ci", "--out", str(tmp_path / "d"), "--video-seconds", "5", "20"])
    assert "--video-seconds" in capsys.readouterr().err


@pytest.mark.parametrize(
    "overrides, field",
    [({"video_seconds": (20.0, 4000.0)}, "--video-seconds"), ({"scenes": (4, 2)}, "--scenes"),
     ({"scenes": (8, 9), "video_seconds": (10.0, 12.0)}, "--scenes"), ({"size": (63, 48)}, "--size"), ({"fps": 0}, "--fps"),
     ({"train_videos": -1}, "--train-videos")],
)  # fmt: skip
def test_configure_rejects_bad_parameters(overrides, field):
    with pytest.raises(ConfigError, match=field):
        synth.configure("ci", **overrides)


def test_more_training_videos_extend_the_corpus_and_change_nothing_else(tmp_path):
    """`--train-videos` draws the extra videos after the others from the same stream: the first
    videos, their records, the stage-1 clips and every benchmark stay byte for byte the same."""
    synth.main(["--preset", "ci", "--out", str(tmp_path / "few"), "--quiet"])
    synth.main(["--preset", "ci", "--out", str(tmp_path / "more"), "--quiet", "--train-videos", "5"])
    few, more = (json.loads((tmp_path / name / "manifest.json").read_text()) for name in ("few", "more"))
    assert more["parameters"]["train_videos"] == 5 and few["parameters"]["train_videos"] == 3
    extra = {path for path in more["files"] if path not in few["files"]}
    assert extra == {"train/videos/video_00003.mp4", "train/videos/video_00004.mp4"}
    changed = {path for path in few["files"] if few["files"][path] != more["files"][path]}
    assert changed <= {"train/scenewalk.json", "train/sft.json", "ground_truth.json"}
    for name in ("scenewalk.json", "sft.json"):
        first, extended = (json.loads((tmp_path / run / "train" / name).read_text()) for run in ("few", "more"))
        assert len(extended) == 5 and extended[:3] == first


# ----------------------------------------------------------------------------- held-out videos of their own length


def test_held_out_videos_follow_the_benchmark_scene_range(tmp_path):
    """`benchmark_scenes` / `benchmark_video_seconds` shape only the benchmark videos (the `small`
    preset's 30-120-scene held-out sets); the training videos keep `scenes` / `video_seconds`."""
    preset = synth.Preset("held_out", train_videos=2, benchmark_videos=1, benchmark_questions=2, fps=2,
                          video_seconds=(10.0, 12.0), scenes=(3, 4),
                          benchmark_video_seconds=(64.0, 70.0), benchmark_scenes=(30, 32))  # fmt: skip
    synth.generate(preset, tmp_path, seed=0, show_progress=False)
    truth = json.loads((tmp_path / "ground_truth.json").read_text())["videos"]
    for path, video in truth.items():
        held_out = path.startswith(("videomme/", "mlvu/", "longvideobench/"))
        low, high = (30, 32) if held_out else (3, 4)
        assert low <= len(video["scenes"]) <= high, path
        seconds = (64.0, 70.0) if held_out else (10.0, 12.0)
        assert seconds[0] - 0.5 <= video["duration_s"] <= seconds[1] + 0.5, path


def test_small_preset_asks_for_many_scene_held_out_videos():
    small = synth.configure("small")
    assert small.held_out().scenes == (30, 120) and small.scenes == (8, 40)
    # Every training question's answer scene fits in the `small` model's Focus of K scenes.
    assert small.perceivable_only and small.sft_questions <= PRESETS["small"]["focus_k"]
    assert synth.configure("train").held_out() == synth.configure("train")  # other presets unchanged


# ----------------------------------------------------------------------------- perceivable-only corpora (`small`)


def test_perceivable_scenes_print_no_label_and_captions_name_only_colours_and_shape(perceivable):
    out, _, truth = perceivable
    scenes = [scene for video in truth["videos"].values() for scene in video["scenes"]]
    assert scenes and all(scene["label"] == "" for scene in scenes)
    for scene in scenes:
        article = "an" if scene["background"][0] in "aeiou" else "a"
        expected = f"A {scene['shape_color']} {scene['shape']} on {article} {scene['background']} background."
        assert scene["caption"] == expected
    stage1 = records.load_stage1(out / "train/stage1.json", out / "train")
    assert {record.caption for record in stage1 if record.media_kind == "video"} <= {s["caption"] for s in scenes}


def test_perceivable_questions_name_one_colour_and_ask_the_other(perceivable):
    _, _, truth = perceivable
    assert truth["questions"]
    for fact in truth["questions"]:
        (key_attribute,) = fact["key"]
        assert {key_attribute, fact["asked"]} == {"background", "shape_color"}


def test_perceivable_training_videos_ask_at_most_focus_k_questions_in_training_phrasings(perceivable):
    out, _, truth = perceivable
    held_out = list(synth.HELD_OUT_TEMPLATES.values())
    sft = records.load_sft(out / "train/sft.json", out / "train")
    scenes_by_record = {record["id"]: record["question_scenes"] for record in truth["sft"]}
    phrasings = set()
    for record in sft:
        scenes = scenes_by_record[record.id]
        assert len(scenes) == len(set(scenes)) == PERCEIVABLE_PRESET.sft_questions
        for question in record.questions:
            text = next(line for line in question.split("\n") if line and line != "<image>")
            for template in held_out:
                head, _, tail = template.partition("{scene}")
                assert not (text.startswith(head.replace("{thing}", "shape")) and text.endswith(tail)), text
            phrasings.add(text.split(" the scene with ")[0])
    assert len(phrasings) >= 8  # several phrasings, not one template per attribute


@pytest.mark.parametrize("corpus", ["ci", "perceivable"])
@pytest.mark.parametrize("suite", ["videomme", "mlvu", "longvideobench"])
def test_answer_letters_are_balanced_in_each_held_out_set(request, corpus, suite):
    out, _, _ = request.getfixturevalue(corpus)
    questions = load_set(out, suite)
    letters = [question.answer for question in questions]
    option_count = len(questions[0].options)
    counts = [letters.count(letter) for letter in "ABCDE"[:option_count]]
    assert sum(counts) == len(questions) and max(counts) - min(counts) <= 1


@given(seed=st.integers(0, 2**32 - 1), option_count=st.integers(2, 5), rounds=st.integers(1, 6))
def test_answer_positions_use_every_position_equally_often(seed, option_count, rounds):
    positions = synth.AnswerPositions(np.random.default_rng(seed))
    dealt = [positions.deal(option_count) for _ in range(option_count * rounds)]
    assert sorted(dealt) == sorted(list(range(option_count)) * rounds)


@given(seed=st.integers(0, 2**32 - 1), count=st.integers(1, 60), questions=st.integers(1, 5))
def test_perceivable_questions_keep_videos_drawable_and_keys_unique(seed, count, questions):
    rng = np.random.default_rng(seed)
    looks = synth.related_looks(rng, count, labels=synth.UNLABELLED)
    asked = synth.ask_perceivable(rng, looks, questions, synth.HELD_OUT_TEMPLATES, 4, synth.AnswerPositions(rng))
    assert len(asked) == min(questions, count) and len({q.scene for q in asked}) == len(asked)
    assert all(look["shape_color"] != look["background"] for look in looks)
    assert all(a["background"] != b["background"] for a, b in zip(looks, looks[1:]))
    for question in asked:
        named = [i for i, look in enumerate(looks) if all(look[a] == v for a, v in question.key.items())]
        assert named == [question.scene] and question.options[question.answer_index] == looks[question.scene][question.asked]


def test_perceivable_niah_names_the_needle_by_a_colour_no_haystack_scene_shows_in_that_role(perceivable):
    out, _, truth = perceivable
    rows = pq.read_table(out / BENCHMARK_FILES["niah"]).to_pylist()
    facts = {fact["question_id"]: fact for fact in truth["questions"] if fact["benchmark"] == "niah"}
    assert len(rows) == 2 * 2 * 3 * 2  # lengths x needles x depths x questions
    for minutes in (1.0, 3.0):
        same_length = [r for r in rows if r["haystack_minutes"] == minutes]
        needles = {}  # needle -> its questions and depths
        for row in same_length:
            scenes = truth["videos"][f"niah/data/{row['videoID']}.mp4"]["scenes"]
            needle = scenes[row["answer_scene"]]
            seen = needles.setdefault((needle["background"], needle["shape_color"], needle["shape"]), (set(), set()))
            seen[0].add((row["question"], tuple(row["options"]), row["answer"]))
            seen[1].add(row["needle_depth"])
            haystack = scenes[: row["answer_scene"]] + scenes[row["answer_scene"] + 1 :]
            assert all(s["background"] != needle["background"] and s["shape_color"] != needle["shape_color"] for s in haystack)
            (attribute,) = facts[row["question_id"]]["key"]
            assert facts[row["question_id"]]["key"][attribute] == needle[attribute]
        assert len(needles) == 2  # two needles a length, each at every depth with the same two questions
        assert all(len(questions) == 2 and depths == {0, 50, 100} for questions, depths in needles.values())
