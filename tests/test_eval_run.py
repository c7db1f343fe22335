"""End to end: python -m evals.run and python -m lmms_eval on the synthetic `ci` sets with a
tiny SALOVA checkpoint (random weights, scaled up so answers and router choices differ from
sample to sample)."""

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from evals.run import main
from evals.sample_log import read_records
from salova.config import SalovaConfig
from salova.data.synth import NIAH_SCHEMA, generate
from salova.modeling.salova import SalovaForCausalLM
from salova.processing import SalovaProcessor

REPO = Path(__file__).resolve().parent.parent
TASKS = "videomme,mlvu,longvideobench,niah"
LIMIT = 2  # per task: 8 samples in all


@pytest.fixture(scope="session")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    os.environ["LMMS_EVAL_DATASETS_CACHE"] = str(root / "datasets")  # evals.run keeps a value already set
    return root


@pytest.fixture(scope="session")
def ci_root(workspace):
    generate("ci", workspace / "ci", seed=0, show_progress=False)
    return workspace / "ci"


@pytest.fixture(scope="session")
def checkpoint(workspace):
    torch.manual_seed(0)
    config = SalovaConfig.from_preset("tiny")
    model = SalovaForCausalLM(config)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() >= 2:
                param.normal_(0.0, 0.3)
    folder = workspace / "tiny-checkpoint"
    model.save_pretrained(folder)
    SalovaProcessor.for_config(config).save_pretrained(folder)
    return folder


def run_args(ci_root, checkpoint, output, *extra, tasks=TASKS, limit=LIMIT):
    args = ["--tasks", tasks, "--data-root", str(ci_root), "--checkpoint", str(checkpoint), "--output", str(output),
            "--cache-dir", str(output.parent / "features"), "--max-new-tokens", "4"]  # fmt: skip
    return args + (["--limit", str(limit)] if limit else []) + list(extra)


def child_env(workspace):
    return {
        **os.environ,
        "SALOVA_CACHE": str(workspace / "cache"),
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": "1",
    }


def answers(folder: Path) -> dict:
    return {r["key"]: r["answer"] for r in read_records(folder / "samples.jsonl")}


def scores(folder: Path) -> dict:
    results = json.loads((folder / "results.json").read_text())
    return {task: (s["score"], s["categories"]) for task, s in results["tasks"].items()}


@pytest.fixture(scope="session")
def reference(workspace, ci_root, checkpoint):
    pytest.importorskip("decord", reason="the LongVideoBench task needs decord (lmms-eval 0.7.3 imports it)")
    output = workspace / "reference" / "run"
    assert main(run_args(ci_root, checkpoint, output)) == 0
    return output


# -- start-up errors --------------------------------------------------------------------


def test_unknown_task_fails_at_start_up(ci_root, checkpoint, tmp_path, capsys):
    assert main(run_args(ci_root, checkpoint, tmp_path / "out", tasks="videomme,egoschema")) == 1
    error = capsys.readouterr().err
    assert "unknown task 'egoschema'" in error and "longvideobench" in error
    assert not (tmp_path / "out").exists()


def test_data_root_without_benchmark_files_fails_at_start_up(checkpoint, tmp_path, capsys):
    (tmp_path / "data" / "videomme").mkdir(parents=True)
    assert main(run_args(tmp_path / "data", checkpoint, tmp_path / "out")) == 1
    error = capsys.readouterr().err
    assert "no videomme question file" in error and str(tmp_path / "data" / "videomme") in error
    assert main(run_args(tmp_path / "nowhere", checkpoint, tmp_path / "out")) == 1
    assert "--data-root" in capsys.readouterr().err


def test_question_file_without_questions_fails_at_start_up(checkpoint, tmp_path, capsys):
    (tmp_path / "data" / "niah" / "data").mkdir(parents=True)
    empty = tmp_path / "data" / "niah" / "test-00000-of-00001.parquet"
    pq.write_table(NIAH_SCHEMA.empty_table(), empty)
    assert main(run_args(tmp_path / "data", checkpoint, tmp_path / "out", tasks="niah")) == 1
    assert f"{empty}: holds no questions" in capsys.readouterr().err


def test_missing_checkpoint_fails_at_start_up(ci_root, tmp_path, capsys):
    assert main(run_args(ci_root, tmp_path / "no-such-checkpoint", tmp_path / "out")) == 1
    error = capsys.readouterr().err
    assert "no-such-checkpoint does not exist" in error and "demo checkpoint" in error


def test_without_a_data_root_the_synthetic_demo_sets_are_used_and_labelled(
    checkpoint, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("SALOVA_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SALOVA_DATA", raising=False)
    args = ["--tasks", "niah", "--limit", "1", "--checkpoint", str(checkpoint), "--output", str(tmp_path / "run"),
            "--cache-dir", str(tmp_path / "features"), "--max-new-tokens", "2"]  # fmt: skip
    assert main(args) == 0
    assert "SYNTHETIC demo sets" in capsys.readouterr().out
    data = json.loads((tmp_path / "run" / "results.json").read_text())["settings"]["data"]
    assert data["demo"] is True and Path(data["root"]).parent == tmp_path / "cache" / "demo-data"
    assert "NOT the real benchmarks" in (tmp_path / "run" / "report.md").read_text()


@pytest.mark.parametrize("given, expected", [(None, "likelihood"), ("generate", "generate")])
def test_the_demo_checkpoint_answers_by_likelihood_unless_told_otherwise(
    ci_root, checkpoint, tmp_path, monkeypatch, given, expected
):
    monkeypatch.setattr("evals.demo_checkpoint.demo_checkpoint", lambda: checkpoint)
    output = tmp_path / "run"
    args = ["--tasks", "videomme", "--limit", "1", "--data-root", str(ci_root), "--output", str(output),
            "--cache-dir", str(tmp_path / "features"), "--max-new-tokens", "2"]  # fmt: skip
    assert main(args + (["--answer-by", given] if given else [])) == 0
    results = json.loads((output / "results.json").read_text())
    assert results["settings"]["answer_by"] == expected and results["settings"]["checkpoint"]["demo"] is True
    rows = read_records(output / "samples.jsonl")
    assert ("option_scores" in rows[0]) == (expected == "likelihood")


# -- one run: the results folder ----------------------------------------------------------


def opens_with_letter(reply: str) -> bool:
    """The reply's first character past spaces and "(" is an option letter not followed by a letter or digit."""
    opening = reply.lstrip(" (")
    return opening[:1] != "" and opening[:1] in "ABCDEFGH" and not opening[1:2].isalnum()


def test_results_folder_holds_scores_samples_and_every_knob(reference, ci_root, checkpoint):
    results = json.loads((reference / "results.json").read_text())
    rows = read_records(reference / "samples.jsonl")
    assert results["totals"]["samples"] == len(rows) == 4 * LIMIT
    assert results["totals"]["model_calls"] == 4 * LIMIT
    for task, expected_categories in [("videomme_salova", {"duration", "domain", "sub_category", "task_type"}),
                                      ("mlvu_dev_salova", {"task_type", "length"}),
                                      ("longvideobench_val_salova", {"duration_group", "question_category"}),
                                      ("niah_salova", {"haystack_minutes", "needle_depth"})]:  # fmt: skip
        task_rows = [r for r in rows if r["task"] == task]
        scored = results["tasks"][task]
        assert set(scored["categories"]) == expected_categories
        assert scored["accuracy"] == pytest.approx(
            100 * sum(r["correct"] for r in task_rows) / len(task_rows)
        )
        assert scored["router"]["n"] == LIMIT  # synthetic sets know the answer scene
        assert scored["replies"]["n"] == LIMIT  # generated replies are checked for a letter
        assert scored["replies"]["letterless"] == sum(not opens_with_letter(r["answer"]) for r in task_rows)
    # lmms-eval's own number agrees with ours (Video-MME in %, LongVideoBench as a fraction)
    assert results["tasks"]["videomme_salova"]["lmms_eval"]["videomme_perception_score"] == pytest.approx(
        results["tasks"]["videomme_salova"]["score"])  # fmt: skip
    assert 100 * results["tasks"]["longvideobench_val_salova"]["lmms_eval"]["lvb_acc"] == pytest.approx(
        results["tasks"]["longvideobench_val_salova"]["score"], abs=1e-3)  # fmt: skip
    settings = results["settings"]
    assert settings["checkpoint"]["path"] == str(checkpoint) and len(settings["checkpoint"]["hash"]) == 32
    assert settings["k"] == SalovaConfig.from_preset("tiny").focus_k and "detector" in settings["sampler"]
    assert settings["sampler"]["fps"] == SalovaConfig.from_preset("tiny").fps
    assert settings["decoding"]["longvideobench_val_salova"] == {"max_new_tokens": 4, "do_sample": False}
    assert settings["data"]["tasks"]["mlvu_dev_salova"]["question_file"] == str(
        ci_root / "mlvu" / "test-00000-of-00001.parquet"
    )
    assert settings["packages"]["lmms-eval"] == "0.7.3" and "commit" in settings["git"]
    summary = (reference / "summary.csv").read_text()
    assert "niah_salova,needle_depth,0,2," in summary  # --limit 2: both questions of the depth-0 video
    report = (reference / "report.md").read_text()
    assert "## mlvu_dev_salova" in report and "| task_type" in report
    for plot in ("accuracy_by_length.png", "niah_salova_heatmap.png", "videomme_salova_categories.png"):
        assert (reference / "plots" / plot).stat().st_size > 1000


def test_two_runs_give_identical_answers(reference, workspace, ci_root, checkpoint):
    again = workspace / "again" / "run"
    assert main(run_args(ci_root, checkpoint, again)) == 0
    assert answers(again) == answers(reference)
    assert len(set(answers(reference).values())) > 1  # the answers differ between samples
    assert scores(again) == scores(reference)


# -- resume ---------------------------------------------------------------------------------


def test_run_killed_at_a_random_sample_resumes_without_answering_twice(
    reference, workspace, ci_root, checkpoint
):
    output = workspace / "killed" / "run"
    kill_after = random.Random(os.getpid()).randint(1, 4 * LIMIT - 1)
    child = subprocess.Popen([sys.executable, "-m", "evals.run", *run_args(ci_root, checkpoint, output)],
                             cwd=REPO, env=child_env(workspace), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 300
    while (
        len(read_records(output / "samples.jsonl")) < kill_after
        and child.poll() is None
        and time.time() < deadline
    ):
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait()
    answered_before_kill = len(read_records(output / "samples.jsonl"))
    assert 1 <= answered_before_kill < 4 * LIMIT and not (output / "results.json").exists()

    assert main(run_args(ci_root, checkpoint, output)) == 0
    results = json.loads((output / "results.json").read_text())
    assert results["totals"]["model_calls"] == 4 * LIMIT - answered_before_kill  # nothing answered twice
    assert answers(output) == answers(reference)
    assert scores(output) == scores(reference)


# -- failures ---------------------------------------------------------------------------------


def test_missing_and_corrupt_videos_become_failed_samples(workspace, ci_root, checkpoint, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(ci_root, data)
    (data / "niah" / "data" / "synth_niah_0001.mp4").unlink()
    (data / "niah" / "data" / "synth_niah_0004.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(500))
    video_of = pq.read_table(data / "niah" / "test-00000-of-00001.parquet").column("videoID").to_pylist()
    broken = {i for i, v in enumerate(video_of) if v in ("synth_niah_0001", "synth_niah_0004")}
    assert 0 < len(broken) < len(video_of)

    output = tmp_path / "run"
    assert main(run_args(data, checkpoint, output, tasks="niah", limit=None)) == 0
    results = json.loads((output / "results.json").read_text())
    niah = results["tasks"]["niah_salova"]
    assert {f["doc_id"] for f in niah["failures"]} == broken
    assert niah["failed"] == results["totals"]["failed"] == len(broken) and niah["n"] == len(video_of)
    rows = {r["doc_id"]: r for r in read_records(output / "samples.jsonl")}
    assert all(rows[i]["correct"] is False and rows[i]["answer"] == "" for i in broken)
    assert "synth_niah_0004.mp4" in (output / "report.md").read_text()

    assert main(run_args(data, checkpoint, tmp_path / "strict", "--strict", tasks="niah", limit=None)) == 1


# -- multi-process -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_processes_match_one_process_and_resume_its_answers(
    reference, workspace, ci_root, checkpoint
):
    output = workspace / "torchrun" / "run"
    done_by_one_process = (reference / "samples.jsonl").read_text().splitlines(keepends=True)[:3]
    for _attempt in range(2):  # gloo may abort at exit after a good run (environment.md §3): retry once
        shutil.rmtree(output, ignore_errors=True)
        output.mkdir(parents=True)
        (output / "samples.jsonl").write_text("".join(done_by_one_process))
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                   str(free_port()), "-m", "evals.run", *run_args(ci_root, checkpoint, output)]  # fmt: skip
        done = subprocess.run(
            command, cwd=REPO, env=child_env(workspace), capture_output=True, text=True, timeout=600
        )
        aborted = done.returncode == -6 or "Signals.SIGABRT" in done.stderr or "exitcode  : -6" in done.stderr
        if done.returncode == 0 or not aborted:
            break
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((output / "results.json").read_text())
    assert results["totals"]["world_size"] == 2
    calls = results["totals"]["model_calls_per_process"]
    assert sum(calls) == 4 * LIMIT - 3 and all(
        c > 0 for c in calls
    )  # the rest answered once, both ranks busy
    rows = read_records(output / "samples.jsonl")
    assert {r["rank"] for r in rows} == {0, 1} and len({r["key"] for r in rows}) == len(rows) == 4 * LIMIT
    assert answers(output) == answers(reference)
    assert scores(output) == scores(reference)


# -- lmms-eval's own command line ---------------------------------------------------------------


def test_lmms_eval_cli_finds_the_salova_entry_point(workspace, ci_root, checkpoint, tmp_path):
    command = [sys.executable, "-m", "lmms_eval", "--model", "salova",
               "--model_args", f"pretrained={checkpoint},cache_dir={tmp_path / 'features'},max_new_tokens=4",
               "--include_path", str(REPO / "evals" / "tasks"), "--tasks", "videomme_salova,mlvu_dev_salova",
               "--limit", "2", "--output_path", str(tmp_path / "out"), "--log_samples"]  # fmt: skip
    env = {**child_env(workspace), "SALOVA_DATA": str(ci_root)}
    done = subprocess.run(command, cwd=ci_root, env=env, capture_output=True, text=True, timeout=600)
    found = list((tmp_path / "out").rglob("*_results.json"))
    assert done.returncode == 0 and found, done.stderr[-3000:]  # the CLI exits 0 even on failure
    results = json.loads(found[0].read_text())
    assert results["n-samples"]["videomme_salova"]["effective"] == 2
    assert "evals.lmms_model.SalovaLMMS" in results["config"]["model_backend"]
    assert "mlvu_percetion_score,none" in results["results"]["mlvu_dev_salova"]


def test_answer_by_likelihood_answers_the_most_likely_options_letter(workspace, ci_root, checkpoint):
    output = workspace / "likelihood" / "run"
    assert main(run_args(ci_root, checkpoint, output, "--answer-by", "likelihood", tasks="videomme,mlvu,niah")) == 0
    rows = read_records(output / "samples.jsonl")
    assert len(rows) == 3 * LIMIT and not any(r.get("failure") for r in rows)
    for row in rows:
        scores = row["option_scores"]
        assert len(scores) == 4 and row["answer"] == max(scores, key=scores.get)
    questions = pq.read_table(ci_root / "videomme" / "test-00000-of-00001.parquet").to_pylist()[:LIMIT]
    videomme = [r for r in rows if r["task"] == "videomme_salova"]
    results = json.loads((output / "results.json").read_text())
    assert results["settings"]["answer_by"] == "likelihood"
    assert results["tasks"]["videomme_salova"]["accuracy"] == pytest.approx(  # the task scores the chosen letter
        100 * sum(r["answer"] == questions[r["doc_id"]]["answer"] for r in videomme) / LIMIT)  # fmt: skip
