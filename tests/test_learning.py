"""The recipe learns: a miniature stage 1.5 (the `small-longvideo.yaml` recipe on the `tiny` model)
trained with the regular trainer must route held-out videos' scene captions to their own scene
far more often than chance. A change that breaks learning anywhere on the path (synthetic
corpus, decoding, collation, connector, router, loss, optimizer, trainer) fails it.

The miniature run starts from random weights, so it trains the text tower at stage 1's LR (1e-3)
instead of the recipe's lower stage-1.5 text-tower LR, which assumes a text tower stage 1 has
trained: with the recipe's 1e-4 or 3e-4 it reaches recall@1 0.28-0.29 in 240 steps.

Measured (2-core shared CPU, load ~10): the miniature run takes ~40 s of CPU, 40-120 s wall
under that load (the trainer's start-up, decoding and 240 steps); recall@1 0.5625 against
chance 0.125 (the assertion asks 3x chance = 0.375), 0.125 before training.

Also here: the uniform-sampling baseline the reproduction compares the router against
(`focus_selection="uniform"`).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from hypothesis import given
from hypothesis import strategies as st

from salova.config import SalovaConfig
from salova.data import synth
from salova.data.collate import DataSettings, video_pixels
from salova.modeling.focusfast import uniform_focus
from salova.modeling.salova import SalovaForCausalLM, SceneFeatures
from salova.processing import SalovaProcessor

REPO = Path(__file__).resolve().parents[1]
SCENES = 8  # per video, training and held out: chance recall@1 is 1/8
TRAIN_STEPS = 240  # one video per step
# Held-out videos come from the benchmark writers' own random streams (not the training videos).
CORPUS = synth.Preset("learning", fps=2, train_videos=40, benchmark_videos=10, video_seconds=(16.0, 16.0),
                      scenes=(SCENES, SCENES))  # fmt: skip
MINIATURE = ["preset=tiny", "init_from=null", f"max_steps={TRAIN_STEPS}", "log_steps=40", "save_steps=100000",
             "model_max_length=1024", "seed=42", "text_tower_lr=1.0e-3"]  # fmt: skip
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
       "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip


def held_out_videos(root: Path) -> list[tuple[Path, list[dict], list[str]]]:
    """(video, ground-truth scene records, scene captions) of the held-out Video-MME-style videos."""
    truth = json.loads((root / "ground_truth.json").read_text())["videos"]
    videos = []
    for relative, video in sorted(truth.items()):
        if relative.startswith("videomme/"):
            scenes = [{"start_frame": s["start_frame"], "end_frame": s["end_frame"], "start_fps": video["fps"],
                       "end_fps": video["fps"]} for s in video["scenes"]]  # fmt: skip
            videos.append((root / relative, scenes, [s["caption"] for s in video["scenes"]]))
    return videos


@torch.no_grad()
def caption_recall_at_1(model: SalovaForCausalLM, processor: SalovaProcessor, videos) -> tuple[float, float]:
    """(share of captions whose top-scored scene is their own, chance = mean 1/T over captions)."""
    sampler = DataSettings.for_config(model.config).sampler
    hits, chance = [], []
    for path, scenes, captions in videos:
        pixels, frames = video_pixels(path, sampler, scenes)
        features = model.encode_video(pixels, frames)
        ids, mask = processor.queries(captions)
        scores = model.score_scenes(features, ids, mask)  # (captions, T)
        hits += (scores.argmax(dim=1) == torch.arange(len(captions))).tolist()
        chance += [1.0 / features.num_scenes] * len(captions)
    return sum(hits) / len(hits), sum(chance) / len(chance)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("learning_corpus")
    synth.generate(CORPUS, root, seed=0, show_progress=False)
    return root


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("learning_run")
    command = [sys.executable, "-m", "training.train", "--stage", "longvideo",
               "--recipe", str(REPO / "training/recipes/small-longvideo.yaml"), *MINIATURE,
               f"data_path={corpus / 'train/scenewalk.json'}", f"video_folder={corpus / 'train'}",
               f"output_dir={output}"]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return output / "final"


@pytest.mark.slow
def test_router_learns_to_find_held_out_scenes(corpus, trained):
    videos = held_out_videos(corpus)
    assert len(videos) == CORPUS.benchmark_videos
    model = SalovaForCausalLM.from_pretrained(trained).eval()
    processor = SalovaProcessor.from_pretrained(trained, config=model.config)
    recall, chance = caption_recall_at_1(model, processor, videos)
    assert chance == pytest.approx(1 / SCENES)
    assert recall >= 3 * chance, f"router recall@1 {recall:.3f} on held-out videos, chance {chance:.3f}"

    torch.manual_seed(42)  # the weights the miniature run started from (same preset, same seed)
    untrained = SalovaForCausalLM(SalovaConfig.from_preset("tiny")).eval()
    before, _ = caption_recall_at_1(untrained, SalovaProcessor.for_config(untrained.config), videos)
    assert before < 2 * chance, f"untrained recall@1 {before:.3f} is already far above chance {chance:.3f}"


@pytest.mark.slow
def test_training_log_shows_the_router_loss_falling(trained):
    rows = [json.loads(line) for line in (trained.parent / "train_log.jsonl").read_text().splitlines()]
    assert len(rows) == TRAIN_STEPS
    first = sum(r["sim_loss"] for r in rows[:40]) / 40
    last = sum(r["sim_loss"] for r in rows[-40:]) / 40
    assert last < 0.8 * first, f"sim_loss {first:.3f} over the first 40 steps, {last:.3f} over the last 40"


# ---------------------------------------------------------------- the uniform-sampling baseline


@given(num_scenes=st.integers(1, 300), k=st.integers(1, 20))
def test_uniform_focus_is_k_distinct_evenly_spread_scenes(num_scenes, k):
    focus = uniform_focus(num_scenes, k).tolist()
    assert focus == sorted(set(focus))
    assert len(focus) == min(k, num_scenes)
    assert 0 <= focus[0] and focus[-1] < num_scenes
    if k < num_scenes:  # one scene per 1/k of the video: scene i sits in the i-th k-th
        assert all(i * num_scenes <= f * k < (i + 1) * num_scenes for i, f in enumerate(focus))


def test_uniform_selection_ignores_the_query_and_keeps_the_token_budget():
    torch.manual_seed(0)
    config = SalovaConfig.from_preset("tiny", focus_k=3)
    router_model = SalovaForCausalLM(config).eval()
    uniform_model = SalovaForCausalLM(SalovaConfig.from_preset("tiny", focus_k=3, focus_selection="uniform")).eval()
    uniform_model.load_state_dict(router_model.state_dict())
    video = SceneFeatures(torch.randn(12, 64), torch.randn(12, config.connector_latents, 64))
    ids = torch.randint(0, 256, (2, 9))
    mask = torch.ones_like(ids)
    routes = uniform_model.route(video, ids, mask)
    assert [r.focus.tolist() for r in routes] == [[2, 6, 10], [2, 6, 10]]  # scenes at 1/6, 3/6, 5/6 of 12
    assert routes[0].scores.tolist() == [1.0 if i in (2, 6, 10) else 0.0 for i in range(12)]
    router_focus = router_model.route(video, ids, mask)[0].focus
    assert len(router_focus) == len(routes[0].focus) == 3  # the same number of Focus tokens


# ---------------------------------------------------------------- the reproduction's bookkeeping


def test_router_probe_recall_counts_the_target_among_the_k_best():
    from training.router_probe import recall

    scores = torch.tensor([[0.1, 0.9, 0.5, 0.2], [0.8, 0.1, 0.3, 0.7]])  # (2 queries, 4 scenes)
    assert recall(scores, [1, 3], k=1) == [True, False]
    assert recall(scores, [2, 3], k=2) == [True, True]
    assert recall(scores, [3, 1], k=9) == [True, True]  # k beyond T takes every scene


def test_router_probe_rephrases_a_held_out_question_in_the_first_training_phrasing():
    from training.router_probe import training_phrasing

    colour = {"asked": "background", "key": {"shape_color": "red"}}
    assert training_phrasing(colour) == "In the scene with a red object, what color is the background?"
    motion = {"asked": "motion", "key": {"background": "blue", "label": "cat"}}
    assert training_phrasing(motion) == 'In the scene with an object on a blue background labelled "cat", how does the shape move?'


def test_report_splits_accuracy_by_whether_the_answer_scene_is_in_focus():
    from training.results_report import focus_split

    def row(focus_times, correct):  # the answer lies in 10-12 s; top-1 is the first Focus scene
        return {"answer_span": [10.0, 12.0], "failure": None, "focus": list(range(len(focus_times))), "top1": 0,
                "focus_times": focus_times, "correct": correct}

    rows = [row([[0.0, 5.0], [9.0, 13.0]], True), row([[9.5, 12.5]], False), row([[0.0, 5.0]], True),
            row([[20.0, 30.0]], False), {"answer_span": None, "correct": True}]  # the last cannot be judged
    assert focus_split(rows) == {True: (2, 50.0), False: (2, 50.0)}


def test_report_counts_wrong_answers_that_choose_an_option_the_question_names():
    from evals.diagnostics import named_option_split

    def row(named, pred, target="A", **extra):
        return {"named_options": named, "pred": pred, "target": target, "correct": pred == target, **extra}

    rows = [row(["B"], "B"), row(["B"], "A"), row(["C"], "D"), row([], "C"), row(["B"], "B", failure="VideoError"),
            {"pred": "B", "correct": False}]  # a failure and a row from a log without the field are not counted
    assert named_option_split(rows) == {"recorded": 4, "n": 3, "accuracy": 100 / 3, "wrong_with_named_option": 1}
    assert named_option_split([{"pred": "A", "correct": True}]) is None


def test_report_tables_the_named_option_split_of_each_evaluation(tmp_path):
    from training.results_report import load, named_option_table

    rows = [{"named_options": ["B"], "pred": "B", "correct": False}, {"named_options": ["C"], "pred": "A", "correct": True},
            {"named_options": [], "pred": "A", "correct": True}]  # fmt: skip
    (tmp_path / "full-k1").mkdir()
    (tmp_path / "full-k1" / "results.json").write_text(json.dumps({"settings": {"k": 1}}))
    (tmp_path / "full-k1" / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert named_option_table(*load(tmp_path)).splitlines()[-1] == "| full | 1 | 2 of 3 | 50.0 | 1 |"


def test_report_splits_accuracy_by_the_attribute_asked_from_the_corpus_ground_truth(tmp_path):
    from training.results_report import asked_split_table, load, main

    # one 4-fps video of three 2-s scenes; the questions of each benchmark in its row order (= doc_id)
    scenes = [{"start_frame": 8 * i, "end_frame": 8 * i + 8} for i in range(3)]
    truth = {"videos": {"v.mp4": {"fps": 4, "scenes": scenes}},
             "questions": [{"benchmark": "videomme", "video": "v.mp4", "answer_scene": 1, "asked": "shape_color"},
                           {"benchmark": "niah", "video": "v.mp4", "answer_scene": 2, "asked": "background"},
                           {"benchmark": "videomme", "video": "v.mp4", "answer_scene": 0, "asked": "background"},
                           {"benchmark": "videomme", "video": "v.mp4", "answer_scene": 2, "asked": "shape_color"}]}  # fmt: skip

    def row(task, doc_id, span, focus, correct):
        return {"task": task, "doc_id": doc_id, "answer_span": span, "failure": None, "focus": [0], "top1": 0,
                "focus_times": [focus], "correct": correct}

    rows = [row("videomme_salova", 0, [2.0, 4.0], [2.0, 4.0], False), row("videomme_salova", 1, [0.0, 2.0], [0.0, 2.0], True),
            row("videomme_salova", 2, [4.0, 6.0], [0.0, 2.0], True), row("niah_salova", 0, [4.0, 6.0], [4.0, 6.0], True)]  # fmt: skip
    (tmp_path / "truth.json").write_text(json.dumps(truth))

    def evaluations(folder, rows):
        (folder / "full-k1").mkdir(parents=True)
        (folder / "full-k1" / "results.json").write_text(json.dumps({"settings": {"k": 1}}))
        (folder / "full-k1" / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return load(folder)

    table = asked_split_table(*evaluations(tmp_path / "this", rows), tmp_path / "truth.json").splitlines()[2:]
    assert table == ["| full | 1 | the others | shape_color | 1 | 0.0 | 1 | 100.0 |",
                     "| full | 1 | the others | background | 1 | 100.0 | 0 | – |",
                     "| full | 1 | NIAH | background | 1 | 100.0 | 0 | – |"]  # fmt: skip
    # samples of another corpus: their answer spans do not match, and the error says which row
    rows[1]["answer_span"] = [6.0, 8.0]
    with pytest.raises(SystemExit, match="truth.json: videomme_salova doc_id 1 .*another corpus"):
        asked_split_table(*evaluations(tmp_path / "other", rows), tmp_path / "truth.json")
    with pytest.raises(SystemExit) as missing:  # a --truth that is not there is a usage error, not a silent skip
        main([str(tmp_path / "this"), "--truth", str(tmp_path / "no-such.json")])
    assert missing.value.code == 2


def test_report_scores_the_same_questions_for_every_variant():
    from training.results_report import constant_answer_scores, subset_scores

    rows = [{"task": "niah_salova", "doc_id": i, "correct": i in (0, 3), "target": "AABAB"[i], "num_scenes": n,
             "answer_span": None} for i, n in enumerate([40, 40, 10, 40, 40])]  # fmt: skip
    first_four = subset_scores(rows, limit=4)["niah_salova"]
    assert (first_four["n"], first_four["accuracy"]) == (4, 50.0)
    long_only = subset_scores(rows, limit=None, min_scenes=30)["niah_salova"]
    assert (long_only["n"], long_only["accuracy"]) == (4, 50.0)
    assert constant_answer_scores(rows, limit=None)["niah_salova"] == {"letter": "A", "accuracy": 60.0}


def test_variant_checkpoint_changes_only_the_named_knobs(tmp_path, tiny_checkpoint):
    from training.reproduce import Reproduction

    run = Reproduction(tmp_path, seed=0, tasks="niah")
    copy = run.variant_checkpoint("fast-only-start", tiny_checkpoint, use_focus=False)
    before = json.loads((tiny_checkpoint / "config.json").read_text())
    after = json.loads((copy / "config.json").read_text())
    assert {k for k in before if before[k] != after.get(k)} == {"use_focus"} and after["use_focus"] is False
    assert SalovaForCausalLM.from_pretrained(copy).config.use_focus is False


def test_a_marker_left_by_a_dead_process_is_cleared(tmp_path):
    from training.reproduce import wait_for_other_process

    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    marker = tmp_path / ".reproduce-running"
    marker.write_text(finished.stdout.strip())  # that process has exited
    wait_for_other_process(marker, poll_s=0.01)
    assert not marker.exists()


@pytest.mark.parametrize("threads", [None, "2"])
def test_reproduction_steps_run_offline_on_the_threads_the_user_asks_for(threads, monkeypatch):
    from training import reproduce

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    if threads:
        monkeypatch.setenv("OMP_NUM_THREADS", threads)
    env = reproduce.child_env()
    assert env["OMP_NUM_THREADS"] == (threads or "1") and env["HF_HUB_OFFLINE"] == env["TRANSFORMERS_OFFLINE"] == "1"


def test_reproduction_trains_stage_two_on_router_questions_and_answers_by_likelihood(tmp_path, monkeypatch):
    from training import reproduce
    from training.recipe import parse_overrides

    commands = {}
    monkeypatch.setattr(reproduce.Reproduction, "step", lambda self, name, command, folder, done, processes=1:
                        commands.setdefault(name, command))
    changed = {}
    monkeypatch.setattr(reproduce.Reproduction, "variant_checkpoint",
                        lambda self, name, source, **config: changed.setdefault(name, (source, config))[0])
    reproduce.reproduce(tmp_path, seed=0, variants=["full", "no-longvideo"], ks=[1, 5], tasks="niah", ablation_limit=None)
    # stage 2 sees the Fast tokens whatever stage 1 trained with: stage 1.5 switches them on, and so does
    # the variant that skips it
    longvideo = yaml.safe_load((reproduce.RECIPES / reproduce.STAGE_RECIPES["longvideo"]).read_text())
    assert longvideo["use_fast"] is True
    assert changed["no-longvideo-start"] == (tmp_path / "full" / "pretrain" / "final", {"use_fast": True})
    files = {"sft": "sft_router.json", "sft-reading": "sft_reading.json"}
    for phase, router_questions in {"sft": "27", "sft-reading": "3"}.items():
        questions = commands[f"{phase} questions"]
        assert questions[questions.index("--out") + 1] == str(tmp_path / "data" / "train" / files[phase])
        assert questions[questions.index("--questions") + 1:][:2] == ["1", "1"]
        assert questions[questions.index("--seed") + 1] == "1"  # the same asked questions in both files
        assert questions[questions.index("--router-questions") + 1] == router_questions
        assert "--phrasing" not in questions  # the composed default
        recipe = yaml.safe_load((reproduce.RECIPES / reproduce.STAGE_RECIPES[phase]).read_text())
        assert recipe["max_queries"] == 1 + int(router_questions)  # the asked question and every router-only one
    starts = {"full": tmp_path / "full" / "longvideo" / "final", "no-longvideo": tmp_path / "full" / "pretrain" / "final"}
    for variant, start in starts.items():
        for phase, recipe_file in {"sft": "small-open-sft.yaml", "sft-reading": "small-reading-sft.yaml"}.items():
            sft = commands[f"train {variant} {phase}"]
            assert sft[sft.index("--stage") + 1] == "sft"
            assert sft[sft.index("--recipe") + 1].endswith(recipe_file)
            overrides = parse_overrides(sft[sft.index("--recipe") + 2:])
            assert len(overrides) == len(sft[sft.index("--recipe") + 2:])  # each key passed once
            data = str(tmp_path / "data" / "train" / files[phase])
            assert (overrides["init_from"], overrides["data_path"], overrides["seed"]) == (str(start), data, 42)
            assert overrides["output_dir"] == str(tmp_path / variant / phase) and "max_steps" not in overrides
            start = tmp_path / variant / phase / "final"  # the next phase starts from this one
    # the headline (every question) and the ablations at K = 1, the full model also at the other K
    evaluations = [name for name in commands if name.startswith("eval ")]
    assert evaluations == ["eval full k=1 likelihood", "eval no-longvideo k=1 likelihood", "eval full k=5 likelihood"]
    evaluation = commands["eval full k=1 likelihood"]
    assert evaluation[evaluation.index("--answer-by") + 1] == "likelihood"
    assert evaluation[evaluation.index("--output") + 1] == str(tmp_path / "eval" / "full-k1-likelihood")


def test_stage_two_as_data_parallel_processes_keeps_the_samples_per_step(tmp_path, monkeypatch):
    from training import reproduce
    from training.recipe import parse_overrides

    commands, launched = {}, {}

    def step(self, name, command, folder, done, processes=1):
        commands[name], launched[name] = command, processes

    monkeypatch.setattr(reproduce.Reproduction, "step", step)
    run = reproduce.Reproduction(tmp_path, seed=0, tasks="niah", stage2_processes=2)
    accumulated = yaml.safe_load((reproduce.RECIPES / "small-open-sft.yaml").read_text())["gradient_accumulation_steps"]
    pretrain = run.stage("full", "pretrain", None)
    run.stage2("full", pretrain)
    stage1 = commands["train full pretrain"]
    assert stage1[1:3] == ["-m", "training.train"]  # the in-batch router loss needs the whole micro-batch
    for phase in ("sft", "sft-reading"):
        stage2 = commands[f"train full {phase}"]
        assert stage2[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
        overrides = parse_overrides(stage2[stage2.index("--recipe") + 2:])
        recipe = yaml.safe_load((reproduce.RECIPES / reproduce.STAGE_RECIPES[phase]).read_text())
        assert int(overrides["gradient_accumulation_steps"]) * 2 == recipe["gradient_accumulation_steps"]
    # what each step's summary entry records
    assert launched == {"train full pretrain": 1, "train full sft": 2, "train full sft-reading": 2}
    uneven = reproduce.Reproduction(tmp_path, seed=0, tasks="niah", stage2_processes=accumulated + 1)
    with pytest.raises(SystemExit, match="small-open-sft.yaml accumulates"):
        uneven.stage("full", "sft", pretrain)
    with pytest.raises(SystemExit):
        reproduce.parse_args(["--stage2-processes", "0"])


@pytest.mark.parametrize("writes_result", [True, False])
def test_a_step_that_exits_badly_is_kept_only_when_it_wrote_its_result(tmp_path, writes_result):
    from training.reproduce import Reproduction

    done = tmp_path / "step" / "final.txt"
    writes = "p.parent.mkdir(exist_ok=True); p.write_text('x')" if writes_result else "pass"
    script = f"import pathlib, sys; p = pathlib.Path({str(done)!r}); {writes}; sys.exit(3)"
    run = Reproduction(tmp_path, seed=0, tasks="niah")
    if writes_result:
        run.step("teardown abort", [sys.executable, "-c", script], done.parent, done)
    else:
        with pytest.raises(SystemExit, match="failed .exit 3."):
            run.step("teardown abort", [sys.executable, "-c", script], done.parent, done)
    assert json.loads(run.summary_path.read_text())["steps"]["teardown abort"]["returncode"] == 3


@pytest.mark.parametrize("threads", ["1", "2"])
def test_each_step_records_its_processes_and_threads_and_the_report_shows_them(tmp_path, monkeypatch, threads):
    from training.reproduce import Reproduction
    from training.results_report import times_table

    done = tmp_path / "step" / "final.txt"
    script = f"import pathlib; p = pathlib.Path({str(done)!r}); p.parent.mkdir(exist_ok=True); p.write_text('x')"
    monkeypatch.setenv("OMP_NUM_THREADS", threads)
    run = Reproduction(tmp_path, seed=0, tasks="niah", stage2_processes=2)
    run.step("two-process step", [sys.executable, "-c", script], done.parent, done, processes=2)
    summary = json.loads(run.summary_path.read_text())
    entry = summary["steps"]["two-process step"]
    assert (entry["processes"], entry["threads"], entry["returncode"]) == (2, int(threads), 0)
    assert "stage2_processes" not in summary["machine"] and "threads_per_step" not in summary["machine"]
    summary["steps"]["older entry"] = {"seconds": 1.0, "returncode": 0}  # written before steps recorded them
    rows = times_table(summary).splitlines()[2:]
    assert rows[0].split(" | ")[1] == f"2 x {threads}" and rows[1].split(" | ")[1] == "–"


def test_report_niah_table_adds_each_depth_over_every_length():
    """The acceptance criterion is read per depth: the last row pools the lengths of each depth."""
    from training.results_report import niah_table

    grid = {"1": {"0": 100.0, "50": 50.0}, "5": {"0": 50.0, "50": 25.0}, "60": {"0": 75.0}}  # 4 questions a cell
    by_depth = {"0": {"n": 12, "correct": 9, "accuracy": 75.0}, "50": {"n": 8, "correct": 3, "accuracy": 37.5}}
    niah = {"niah_grid": grid, "categories": {"needle_depth": by_depth}}
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in niah_table({"tasks": {"niah_salova": niah}}).splitlines()]
    assert rows[0] == ["haystack (min)", "depth 0%", "depth 50%"]
    assert rows[2:5] == [["1", "100.0", "50.0"], ["5", "50.0", "25.0"], ["60", "75.0", "–"]]
    assert rows[-1] == ["every length", "75.0", "37.5"]  # 60 min has no depth-50 cell: 3 of the 8 questions there


def test_report_headline_is_the_full_model_at_the_main_k_whatever_the_answer_mode():
    from training.results_report import headline

    summary = {"evaluations": {"uniform-k1-likelihood": {"variant": "uniform", "k": 1},
                               "full-k5-likelihood": {"variant": "full", "k": 5},
                               "full-k1-likelihood": {"variant": "full", "k": 1}}}  # fmt: skip
    assert headline(summary, dict.fromkeys(summary["evaluations"])) == "full-k1-likelihood"
    assert headline(summary, {"full-k5-likelihood": None}) is None
    assert headline(summary, dict.fromkeys(summary["evaluations"]), "full-k5-likelihood") == "full-k5-likelihood"
    with pytest.raises(SystemExit, match="--headline full-k9.*full-k1-likelihood"):
        headline(summary, dict.fromkeys(summary["evaluations"]), "full-k9")


def test_report_reads_a_folder_of_evaluations_without_a_summary(tmp_path):
    from training.results_report import load

    for name, k in (("full-k1", 1), ("no-longvideo-k5", 5)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps({"settings": {"k": k, "answer_by": "likelihood"}}))
    (tmp_path / "notes").mkdir()  # not an evaluation
    summary, results = load(tmp_path)
    assert set(results) == {"full-k1", "no-longvideo-k5"}
    assert summary["evaluations"]["no-longvideo-k5"] == {"variant": "no-longvideo", "k": 5, "limit": None,
                                                         "answer_by": "likelihood",
                                                         "results": str(tmp_path / "no-longvideo-k5" / "results.json")}


def test_report_figure_data_pools_each_evaluation_over_its_questions(tmp_path):
    from training.results_report import main

    def sample(task, doc_id, correct, scenes):
        return {"task": task, "doc_id": doc_id, "correct": correct, "num_scenes": scenes, "target": "A", "answer_span": None}

    runs = {"full-k1": [sample("niah_salova", 0, True, 40), sample("mlvu_dev_salova", 0, True, 10),
                        sample("mlvu_dev_salova", 1, False, 35)],
            "uniform-k1": [sample("niah_salova", 0, False, 40), sample("mlvu_dev_salova", 0, True, 10),
                           sample("mlvu_dev_salova", 1, False, 35)]}  # fmt: skip
    for name, rows in runs.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps({"settings": {"k": 1}, "tasks": {}}))
        (tmp_path / name / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main([str(tmp_path), "--figures", str(tmp_path / "figures")]) == 0
    frame = pd.read_csv(tmp_path / "figures" / "variants.csv").set_index("evaluation")
    assert frame.loc["full-k1", "accuracy"] == pytest.approx(200 / 3) and frame.loc["full-k1", "accuracy_30_scenes"] == 50.0
    assert frame.loc["uniform-k1", "accuracy"] == pytest.approx(100 / 3) and frame.loc["uniform-k1", "accuracy_30_scenes"] == 0.0
    assert (tmp_path / "figures" / "variants.png").read_bytes()[:4] == b"\x89PNG"
