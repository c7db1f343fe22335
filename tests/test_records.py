"""Record readers, validators and label rules (salova/data/records.py)."""

import copy
import json
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salova.data import records
from salova.data.records import LabelThresholds, Where
from salova.errors import RecordError

# ----------------------------------------------------------------------------- fixtures


def make_media(root):
    """A media folder with the files the good records name."""
    for name in ("clips/a.mp4", "images/b.jpg", "videos/yt_03.mp4", "data/vid1.mp4", "needle.mp4", "videos/lvb1.mp4"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"\x00")
    return root


@pytest.fixture
def media(tmp_path):
    return make_media(tmp_path / "media")


@pytest.fixture(scope="module")
def shared_media(tmp_path_factory):
    """Read-only media folder for the property tests (hypothesis reuses fixtures across examples)."""
    return make_media(tmp_path_factory.mktemp("media"))


def turns(*texts):
    return [{"from": "human" if i % 2 == 0 else "gpt", "value": text} for i, text in enumerate(texts)]


def scene(start, end, fps=30):
    return {"start_frame": start, "end_frame": end, "start_fps": fps, "end_fps": fps}


def stage1_record():
    return {"id": "webvid_1", "video": "clips/a.mp4", "conversations": turns("<image>\nDescribe.", "a red circle")}


def scenewalk_record():
    return {
        "id": "yt_03",
        "video": "videos/yt_03.mp4",
        "clip_num": 3,
        "scenes": [scene(0, 90), scene(90, 150), scene(150, 300)],
        "sen_sim": [[1.0, 0.71, 0.85], [0.71, 1.0, 0.64], [0.85, 0.64, 1.0]],
        "lb_sim": [[0.27, 0.18, 0.22], [0.19, 0.25, 0.17], [0.20, 0.16, 0.26]],
        "conversations": turns("<video>\nDescribe.", "cap 0", "<video>\nDescribe.", "cap 1", "<video>\nDescribe.", "cap 2"),
    }


def sft_record():
    return {
        "id": "sft_1",
        "video": "videos/yt_03.mp4",
        "scenes": [scene(0, 450), scene(450, 1890)],
        "lb_sim": [[0.23, 0.19], [0.17, 0.24]],
        "conversations": turns("<image>\nWhat is first?", "A red umbrella.", "What happens last?", "She leaves."),
    }


def videomme_row():
    return {"video_id": "001", "duration": "short", "domain": "Life Record", "sub_category": "Daily Life",
            "url": "", "videoID": "vid1", "question_id": "001-1", "task_type": "Attribute Perception",
            "question": "What color is the circle?", "options": ["A. Red.", "B. Blue.", "C. Green.", "D. Gray."],
            "answer": "B"}  # fmt: skip


def mlvu_row():
    return {"video_name": "needle.mp4", "duration": 467.98,
            "question": "What does the man do?\n(A) Waves\n(B) Runs\n(C) Sits\n(D) Jumps\n",
            "candidates": ["Waves", "Runs", "Sits", "Jumps"], "answer": "C", "task_type": "needle", "question_id": "Q0"}  # fmt: skip


def lvb_row():
    return {"video_id": "lvb1", "id": "lvb1_0", "video_path": "lvb1.mp4", "subtitle_path": "lvb1_en.json",
            "question": "What is shown?", "option0": "a", "option1": "b", "option2": "c", "option3": "N/A",
            "option4": "N/A", "correct_choice": 2, "duration": 12.0, "duration_group": 15,
            "question_category": "S2A", "topic_category": "SY-Synthetic", "starting_timestamp_for_subtitles": 0.0}  # fmt: skip


def write_json(path, rows):
    path.write_text(json.dumps(rows))
    return path


PARSERS = {
    "stage1": (records.parse_stage1, stage1_record),
    "scenewalk": (records.parse_scenewalk, scenewalk_record),
    "sft": (records.parse_sft, sft_record),
    "videomme": (records.parse_videomme, videomme_row),
    "mlvu": (records.parse_mlvu, mlvu_row),
    "longvideobench": (records.parse_longvideobench, lvb_row),
    "niah": (records.parse_niah, lambda: videomme_row() | {"haystack_minutes": 5.0, "needle_depth": 25}),
}

# ----------------------------------------------------------------------------- good records


def test_stage1_reads_video_and_image_records(media, tmp_path):
    image = {"id": 7, "image": "images/b.jpg", "conversations": turns("<image>\nSummarize.", "a dirt road")}
    loaded = records.load_stage1(write_json(tmp_path / "s1.json", [stage1_record(), image]), media)
    assert [(r.id, r.media_kind, r.caption) for r in loaded] == [("webvid_1", "video", "a red circle"), ("7", "image", "a dirt road")]
    assert loaded[0].media == (media / "clips/a.mp4").resolve()


def test_stage1_images_and_videos_can_live_in_separate_folders(media, tmp_path):
    image = {"id": "img", "image": "b.jpg", "conversations": turns("<image>\nSummarize.", "a road")}
    video = {"id": "vid", "video": "a.mp4", "conversations": turns("<image>\nDescribe.", "a circle")}
    path = write_json(tmp_path / "s1.json", [image, video])
    loaded = records.load_stage1(path, media / "images", video_root=media / "clips")
    assert [r.media for r in loaded] == [(media / "images/b.jpg").resolve(), (media / "clips/a.mp4").resolve()]
    with pytest.raises(RecordError, match=r"record 1 \(id=vid\): field 'video'"):
        records.load_stage1(path, media / "images")


def test_scenewalk_reads_matrices_scenes_and_captions(media, tmp_path):
    path = tmp_path / "sw.jsonl"
    path.write_text(json.dumps(scenewalk_record()) + "\n\n")
    (record,) = records.load_scenewalk(path, media)
    assert record.captions == ("cap 0", "cap 1", "cap 2")
    assert record.sen_sim.shape == (3, 3) and record.lb_sim[2, 2] == 0.26
    assert [(s.start_frame, s.end_frame) for s in record.scenes] == [(0, 90), (90, 150), (150, 300)]
    assert (record.scenes[1].start_s, record.scenes[1].end_s) == (3.0, 5.0)


def test_sft_reads_questions_without_placeholder(media, tmp_path):
    (record,) = records.load_sft(write_json(tmp_path / "sft.json", [sft_record()]), media)
    assert record.questions == ("What is first?", "What happens last?")
    assert record.lb_sim.shape == (2, 2)


def test_sft_router_questions_are_read_as_router_queries_with_their_own_labels(media, tmp_path):
    raw = {**sft_record(), "router_questions": [{"question": "<image>\nWhich is red?\nA. one\nB. two", "lb_sim": [0.1, 0.3]},
                                                {"question": "Which is blue?", "lb_sim": [0.15, 0.12]}]}
    (record,) = records.load_sft(write_json(tmp_path / "sft.json", [raw]), media)
    assert record.router_questions == ("Which is red?", "Which is blue?")  # read by router_query_text
    assert record.router_only_labels().labels.tolist() == [[False, True], [True, False]]  # second: argmax fallback
    assert len(record.questions) == 2 and record.router_labels().labels.shape == (2, 2)  # the conversation's own
    (plain,) = records.load_sft(write_json(tmp_path / "plain.json", [sft_record()]), media)
    assert plain.router_questions == () and plain.router_lb_sim.shape == (0, 2)


def test_question_views_of_the_three_benchmarks(media):
    vmme = records.parse_videomme(videomme_row(), Where("q.parquet", 0), media)
    assert (vmme.id, vmme.answer, vmme.options[1], vmme.video) == ("001-1", "B", "Blue.", (media / "data/vid1.mp4").resolve())
    assert vmme.categories == {"duration": "short", "domain": "Life Record", "sub_category": "Daily Life", "task_type": "Attribute Perception"}
    mlvu = records.parse_mlvu(mlvu_row(), Where("m.parquet", 0), media)
    assert (mlvu.question, mlvu.options, mlvu.answer) == ("What does the man do?", ("Waves", "Runs", "Sits", "Jumps"), "C")
    lvb = records.parse_longvideobench(lvb_row(), Where("lvb_val.json", 0), media)
    assert (lvb.options, lvb.answer, lvb.categories["duration_group"]) == (("a", "b", "c"), "C", "15")
    assert lvb.video == (media / "videos/lvb1.mp4").resolve()
    assert vmme.answer_scene is None and lvb.answer_span_s is None
    niah = records.parse_niah(videomme_row() | {"haystack_minutes": 0.5, "needle_depth": 25}, Where("n.parquet", 0), media)
    assert (niah.benchmark, niah.categories["haystack_minutes"], niah.categories["needle_depth"]) == ("niah", "0.5", "25")


def test_answer_scene_columns_are_read_from_parquet(media):
    row = {**videomme_row(), "answer_scene": 2, "answer_start_s": 4.0, "answer_end_s": 7.5}
    pq.write_table(pa.Table.from_pylist([row]), media / "test.parquet")
    (question,) = records.load_questions(media / "test.parquet", "videomme")
    assert (question.answer_scene, question.answer_span_s) == (2, (4.0, 7.5))
    assert question.row["options"] == videomme_row()["options"]


# ----------------------------------------------------------------------------- malformed fields

MALFORMED = [
    ("stage1", lambda r: r.pop("conversations"), "conversations", "is missing"),
    ("stage1", lambda r: r.update(image="images/b.jpg"), "image/video", "exactly one"),
    ("stage1", lambda r: r["conversations"][1].update({"from": "human"}), "conversations[1].from", "expected 'gpt'"),
    ("stage1", lambda r: r["conversations"][0].update(value=3), "conversations[0].value", "expected a string"),
    ("stage1", lambda r: r.update(video="clips/missing.mp4"), "video", "is not a file"),
    ("scenewalk", lambda r: r.update(sen_sim=[[1, 0], [0, 1], [1, 1]]), "sen_sim", "has shape 3x2, expected 3x3 (one row and column per scene)"),
    ("scenewalk", lambda r: r.update(lb_sim=[[0.1, 0.2, 0.3], [0.1], [0.1, 0.2, 0.3]]), "lb_sim", "ragged"),
    ("scenewalk", lambda r: r["lb_sim"][1].__setitem__(2, float("nan")), "lb_sim[1][2]", "finite"),
    ("scenewalk", lambda r: r["sen_sim"][0].__setitem__(0, "1.0"), "sen_sim[0][0]", "expected a number"),
    ("scenewalk", lambda r: r.update(clip_num=4), "clip_num", "lists 3 scenes"),
    ("scenewalk", lambda r: r.update(conversations=r["conversations"][:4]), "conversations", "expected 6 (2 per scene)"),
    ("scenewalk", lambda r: r["scenes"][1].update(end_frame=80), "scenes[1].end_frame", "more than start_frame 90"),
    ("scenewalk", lambda r: r["scenes"][2].update(start_frame=100), "scenes[2].start_frame", "previous scene's end_frame 150"),
    ("scenewalk", lambda r: r["scenes"][0].update(start_fps=0), "scenes[0].start_fps", "positive frame rate"),
    ("scenewalk", lambda r: r["scenes"][0].pop("end_fps"), "scenes[0].end_fps", "is missing"),
    ("scenewalk", lambda r: r["scenes"][0].update(start_frame=True), "scenes[0].start_frame", "expected an integer"),
    ("scenewalk", lambda r: r.update(scenes=[]), "scenes", "non-empty list"),
    ("sft", lambda r: r.update(lb_sim=[[0.2, 0.3]]), "lb_sim", "has shape 1x2, expected 2x2 (one row per question"),
    ("sft", lambda r: r.update(conversations=r["conversations"][:3]), "conversations", "even number"),
    ("sft", lambda r: r.update(id=""), "id", "is empty"),
    ("sft", lambda r: r.update(id=10**5000), "id", "outside the 64-bit integer range"),
    ("sft", lambda r: r["scenes"][0].update(end_frame=-(10**5000)), "scenes[0].end_frame", "too long to print"),
    ("sft", lambda r: r["lb_sim"][0].__setitem__(0, 10**400), "lb_sim[0][0]", "too large for a float"),
    ("sft", lambda r: r.update(router_questions={"question": "x"}), "router_questions", "expected a list"),
    ("sft", lambda r: r.update(router_questions=["Which?"]), "router_questions[0]", "expected an object"),
    ("sft", lambda r: r.update(router_questions=[{"lb_sim": [0.3, 0.1]}]), "router_questions[0].question", "is missing"),
    ("sft", lambda r: r.update(router_questions=[{"question": "Which?", "lb_sim": [0.3]}]),
     "router_questions[*].lb_sim", "has shape 1x1, expected 1x2 (one number per scene)"),
    ("videomme", lambda r: r.update(options=["A. x", "C. y"]), "options[1]", "start with 'B. '"),
    ("videomme", lambda r: r.update(answer="E"), "answer", "expected one of ['A', 'B', 'C', 'D']"),
    ("videomme", lambda r: r.update(duration="tiny"), "duration", "short"),
    ("videomme", lambda r: r.update(task_type="Guessing"), "task_type", "expected one of"),
    ("videomme", lambda r: r.pop("sub_category"), "sub_category", "is missing"),
    ("videomme", lambda r: r.update(videoID="nothere"), "videoID", "is not a file"),
    ("mlvu", lambda r: r.update(question="What does the man do?"), "question", "(A)"),
    ("mlvu", lambda r: r.update(task_type="needleQA"), "task_type", "expected one of"),
    ("mlvu", lambda r: r.update(duration="long"), "duration", "expected a number"),
    ("mlvu", lambda r: r.update(candidates=["only one"]), "candidates", "at least 2"),
    ("longvideobench", lambda r: r.update(option1="N/A"), "option0..option4", "then only 'N/A'"),
    ("longvideobench", lambda r: r.update(correct_choice=3), "correct_choice", "only 3 options"),
    ("longvideobench", lambda r: r.update(duration_group=120), "duration_group", "[15, 60, 600, 3600]"),
    ("longvideobench", lambda r: r.update(answer_scene=1), "answer_start_s", "is missing"),
    ("niah", lambda r: r.update(needle_depth=150), "needle_depth", "0..100"),
    ("niah", lambda r: r.pop("haystack_minutes"), "haystack_minutes", "is missing"),
    ("niah", lambda r: r.update(answer="F"), "answer", "expected one of"),
    ("longvideobench", lambda r: r.update(answer_scene=1, answer_start_s=5.0, answer_end_s=2.0), "answer_end_s", "more than"),
]


@pytest.mark.parametrize("kind, mutate, field, problem", MALFORMED, ids=[f"{m[0]}:{m[2]}" for m in MALFORMED])
def test_malformed_field_is_named(media, kind, mutate, field, problem):
    parse, make = PARSERS[kind]
    raw = make()
    mutate(raw)
    record_id = raw.get("id") or raw.get("question_id") or None
    record_id = record_id if isinstance(record_id, str) else None
    with pytest.raises(RecordError) as caught:
        parse(raw, Where("train.json", 12, record_id), media)
    message = str(caught.value)
    assert message.startswith("train.json record 12")
    assert f"field '{field}'" in message and problem in message
    if record_id:
        assert f"(id={record_id})" in message


def test_file_loader_names_index_and_id(media, tmp_path):
    bad = scenewalk_record()
    bad["id"] = "yt_bad"
    bad["sen_sim"] = [row[:2] for row in bad["sen_sim"]]
    path = write_json(tmp_path / "train.json", [scenewalk_record() | {"id": "ok"}, bad])
    with pytest.raises(RecordError, match=r"train\.json record 1 \(id=yt_bad\): field 'sen_sim' has shape 3x2, expected 3x3"):
        records.load_scenewalk(path, media)


@pytest.mark.parametrize(
    "name, content, problem",
    [
        ("a.json", "{not json", "not valid JSON"),
        ("a.jsonl", '{"id": 1}\n{oops\n', "line 2 is not valid JSON"),
        ("a.json", '{"id": 1}', "expected a JSON list"),
        ("a.csv", "id\n1\n", "unknown record format"),
        ("a.parquet", "not parquet", "cannot read"),
    ],
)
def test_unreadable_files_are_named(tmp_path, name, content, problem):
    (tmp_path / name).write_text(content)
    with pytest.raises(RecordError, match=problem) as caught:
        records.load_stage1(tmp_path / name, tmp_path)
    assert name in str(caught.value)


def test_repeated_id_is_rejected(media, tmp_path):
    path = write_json(tmp_path / "s1.json", [stage1_record(), stage1_record()])
    with pytest.raises(RecordError, match=r"record 1 \(id=webvid_1\): field 'id' repeats the id of record 0"):
        records.load_stage1(path, media)


# ----------------------------------------------------------------------------- media paths


@pytest.mark.parametrize("path", ["../outside.mp4", "clips/../../outside.mp4", "/etc/hostname", "clips/..\\..\\x.mp4"])
def test_paths_that_leave_the_media_folder_are_rejected(media, path):
    (media.parent / "outside.mp4").write_bytes(b"\x00")
    with pytest.raises(RecordError, match="field 'video'"):
        records.parse_stage1(stage1_record() | {"video": path}, Where("s1.json", 0), media, check_media=False)


def test_symlink_out_of_the_folder_is_rejected_and_inside_is_accepted(media):
    (media.parent / "secret.mp4").write_bytes(b"\x00")
    (media / "escape.mp4").symlink_to(media.parent / "secret.mp4")
    (media / "alias.mp4").symlink_to(media / "clips/a.mp4")
    with pytest.raises(RecordError, match="outside the media folder"):
        records.parse_stage1(stage1_record() | {"video": "escape.mp4"}, Where("s1.json", 0), media)
    record = records.parse_stage1(stage1_record() | {"video": "alias.mp4"}, Where("s1.json", 0), media)
    assert record.media == (media / "clips/a.mp4").resolve()


# ----------------------------------------------------------------------------- fuzzing

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)


@pytest.mark.parametrize("kind", sorted(PARSERS))
@settings(max_examples=100)
@given(value=json_values)
def test_random_values_raise_only_record_error(shared_media, kind, value):
    parse, _ = PARSERS[kind]
    with pytest.raises(RecordError):
        parse(value, Where("fuzz.json", 0), shared_media)


@pytest.mark.parametrize("kind", sorted(PARSERS))
@settings(max_examples=100)
@given(data=st.data())
def test_random_field_values_raise_only_record_error(shared_media, kind, data):
    """A good record with one field (or nested value) replaced by a random JSON value."""
    parse, make = PARSERS[kind]
    raw = make()
    target, key = raw, data.draw(st.sampled_from(sorted(raw)))
    while isinstance(target[key], (list, dict)) and target[key] and data.draw(st.booleans()):
        target = target[key]
        key = data.draw(st.sampled_from(sorted(target) if isinstance(target, dict) else range(len(target))))
    target[key] = data.draw(json_values)
    try:
        parse(raw, Where("fuzz.json", 0), shared_media)
    except RecordError as error:
        assert str(error).startswith("fuzz.json record 0")


# ----------------------------------------------------------------------------- label rules


def test_longvideo_labels_hand_computed():
    sen = [[1.0, 0.5, 0.9], [0.5, 1.0, 0.2], [0.83, 0.2, 1.0]]
    lb = [[0.1, 0.3, 0.1], [0.1, 0.1, 0.1], [0.05, 0.21, 0.15]]
    result = records.longvideo_labels(sen, lb)
    # row 0: T2T>0.83 at 0,2; V2T>0.21 at 1. row 1: own scene only. row 2: 0.83 and 0.21 are not above.
    expected = [[True, True, True], [False, True, False], [False, False, True]]
    assert result.labels.tolist() == expected and result.fallback_rows == ()


def test_longvideo_row_without_positive_falls_back_to_argmax_t2t_and_warns(media):
    sen = [[0.8, 0.5], [0.3, 0.6]]
    lb = [[0.1, 0.2], [0.1, 0.3]]
    result = records.longvideo_labels(sen, lb)
    assert result.labels.tolist() == [[True, False], [False, True]] and result.fallback_rows == (0,)
    raw = scenewalk_record()
    raw.update(scenes=raw["scenes"][:2], clip_num=2, sen_sim=sen, lb_sim=lb, conversations=raw["conversations"][:4])
    record = records.parse_scenewalk(raw, Where("sw.json", 4, "yt_03"), media)
    with pytest.warns(RuntimeWarning, match=r"sw\.json record 4 \(id=yt_03\): caption rows \[0\]"):
        record.router_labels()


def test_longvideo_thresholds_are_configurable(media):
    record = records.parse_scenewalk(scenewalk_record(), Where("sw.json", 0), media)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        default = record.router_labels().labels
        strict = record.router_labels(LabelThresholds(t2t=0.99, v2t_longvideo=0.26)).labels
    assert default.tolist() == [[True, False, True], [False, True, False], [True, False, True]]
    assert strict.tolist() == [[True, False, False], [False, True, False], [False, False, True]]


def test_sft_labels_hand_computed_with_argmax_fallback():
    result = records.sft_labels([[0.23, 0.19, 0.25], [0.17, 0.20, 0.1], [0.1, 0.15, 0.12]])
    assert result.labels.tolist() == [[True, False, True], [False, True, False], [False, True, False]]
    assert result.fallback_rows == (1, 2)
    assert records.sft_labels([[0.15, 0.12]], v2t=0.1).labels.tolist() == [[True, True]]


def test_focus_keeps_best_positives_never_a_negative():
    labels = np.array([1, 1, 0, 1, 1, 1, 1], dtype=bool)
    v2t = np.array([0.3, 0.25, 0.9, 0.22, 0.5, 0.4, 0.21])
    # positives by V2T: 4 (.5), 5 (.4), 0 (.3) ... The released code would take scene 2 (.9, a negative).
    assert records.focus_scenes(labels, v2t, k=3).tolist() == [0, 4, 5]
    assert records.focus_scenes(labels, v2t, k=10).tolist() == [0, 1, 3, 4, 5, 6]


def test_focus_ties_prefer_the_earlier_scene():
    assert records.focus_scenes(np.ones(4, bool), np.array([0.3, 0.5, 0.3, 0.3]), k=2).tolist() == [0, 1]


@given(
    st.lists(st.tuples(st.booleans(), st.floats(0, 1)), min_size=1, max_size=12).filter(lambda xs: any(b for b, _ in xs)),
    st.integers(1, 6),
)
def test_focus_properties(pairs, k):
    labels = np.array([b for b, _ in pairs])
    v2t = np.array([x for _, x in pairs])
    focus = records.focus_scenes(labels, v2t, k)
    assert len(focus) == min(k, labels.sum()) and labels[focus].all()
    assert list(focus) == sorted(focus)
    left_out = np.setdiff1d(np.flatnonzero(labels), focus)
    assert all(v2t[i] <= v2t[focus].min() for i in left_out)


def test_question_file_from_json_and_deepcopy_of_rows(media):
    path = write_json(media / "lvb_val.json", [lvb_row(), lvb_row() | {"id": "lvb1_1", "correct_choice": 0}])
    questions = records.load_questions(path, "longvideobench")
    assert [q.answer for q in questions] == ["C", "A"]
    assert copy.deepcopy(questions[0].row) == lvb_row()
    with pytest.raises(RecordError, match="unknown benchmark"):
        records.load_questions(path, "mvbench")


_QUESTION_TEXT = st.text(st.characters(blacklist_characters="\n<", blacklist_categories=("Cs",)), min_size=1, max_size=40)


@settings(max_examples=40)
@given(question=_QUESTION_TEXT.filter(lambda q: q.strip()),
       options=st.lists(st.text(st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)), min_size=1,
                                max_size=12), min_size=0, max_size=5),
       style=st.sampled_from(["{letter}. ", "({letter}) ", "{letter}) "]),
       instruction=st.sampled_from(["", "\nAnswer with the option's letter from the given choices directly."]),
       placeholder=st.sampled_from(["", "<image>\n", "<video>\n"]))
def test_router_query_text_is_the_question_alone(question, options, style, instruction, placeholder):
    lines = [style.format(letter="ABCDE"[i]) + option for i, option in enumerate(options)]
    text = placeholder + question + "".join("\n" + line for line in lines) + (instruction if options else "")
    assert records.router_query_text(text) == question.strip()
