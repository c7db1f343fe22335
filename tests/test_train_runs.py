"""Real DeepSpeed runs of the tiny model on the synthetic CI corpus, each in its own process(es):
resume after a kill, 2 processes vs 1, the benchmark callback after each save, conversion of a
DeepSpeed checkpoint, and the three-stage chain of training/train.sh.

The first DeepSpeed start JIT-compiles its shared-memory op (~30 s); the build is cached in
TORCH_EXTENSIONS_DIR (default ~/.cache/torch_extensions), so later runs start in seconds.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from salova.config import SalovaConfig
from salova.data import synth
from salova.modeling.salova import SalovaForCausalLM
from salova.processing import SalovaProcessor
from training.callbacks import BenchmarkOnSave, read_rows
from training.convert import convert
from training.distributed import free_port
from training.optimizer import is_connector_parameter

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
GLOO_TEARDOWN_ABORT = -6  # environment.md §3: a rank can abort at exit after a successful run
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
       "TOKENIZERS_PARALLELISM": "false"}
for variable in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
    ENV.pop(variable, None)

STUB_EVAL = """\
import json, sys
from pathlib import Path
output, step = Path(sys.argv[1]), int(sys.argv[2])
assert (Path(sys.argv[3]) / "model.safetensors").is_file(), "not a converted checkpoint"
output.mkdir(parents=True, exist_ok=True)
(output / "results.json").write_text(json.dumps({"tasks": {"synthetic": {"score": step / 100}}}))
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    assert synth.main(["--preset", "ci", "--out", str(root), "--quiet"]) == 0
    return root / "train"


@pytest.fixture(scope="module")
def records(corpus):
    """The SceneWalk records plus one whose video is missing: the runs must skip it and count it."""
    rows = json.loads((corpus / "scenewalk.json").read_text())
    rows.append({**rows[0], "id": "gone", "video": "videos/gone.mp4"})
    path = corpus / "scenewalk-with-missing.json"
    path.write_text(json.dumps(rows))
    return path


@pytest.fixture(scope="module")
def stub_eval(tmp_path_factory):
    path = tmp_path_factory.mktemp("stub") / "stub_eval.py"
    path.write_text(STUB_EVAL)
    return path


def longvideo_command(records, output, *extra, launcher=(sys.executable,)):
    """Stage 1.5 of the tiny model from scratch: token drop and the margin loss draw random numbers."""
    return [*launcher, "-m", "training.train", "--stage", "longvideo",
            "--recipe", str(REPO / "training/recipes/tiny-longvideo.yaml"), "init_from=null",
            f"data_path={records}", f"video_folder={records.parent}", f"output_dir={output}",
            "max_steps=6", "micro_batch_size=1", *extra]


def run(command, timeout=300, retry_teardown_abort=False):
    for _ in range(2 if retry_teardown_abort else 1):
        done = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout)
        aborted = done.returncode == GLOO_TEARDOWN_ABORT or "terminate called without an active exception" in done.stderr
        if done.returncode == 0 or not (retry_teardown_abort and aborted):
            break
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def log(output) -> list[dict]:
    path = Path(output) / "train_log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def reference(records, stub_eval, tmp_path_factory):
    """Uninterrupted: 6 steps of 2 accumulated micro-batches, saves at steps 3 and 6, each benchmarked."""
    output = tmp_path_factory.mktemp("reference")
    done = run(longvideo_command(records, output, "gradient_accumulation_steps=2", "save_steps=3", "eval_on_save=true",
                          f"eval_command={{python}} {stub_eval} {{output}} {{step}} {{checkpoint}}"))
    (output / "stderr.txt").write_text(done.stderr)
    return output


def test_a_missing_video_is_skipped_counted_and_named(reference):
    assert {row["skipped_records"] for row in log(reference)[2:]} == {1}  # found in epoch 0 or 1, then counted once
    stderr = (reference / "stderr.txt").read_text()
    assert "skipping" in stderr and "id=gone" in stderr and "gone.mp4" in stderr
    assert "1 unreadable record(s) skipped" in stderr


def test_resume_after_a_kill_is_bit_identical(records, reference, tmp_path):
    command = longvideo_command(records, tmp_path, "gradient_accumulation_steps=2", "save_steps=3")
    process = subprocess.Popen(command, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not any(row["step"] >= 4 for row in log(tmp_path)):  # past the step-3 checkpoint
        assert process.poll() is None and time.time() < deadline, "the run ended before it could be killed"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert not (tmp_path / "final").exists()

    run([*command, "--resume"])

    resumed, uninterrupted = load_file(tmp_path / "final/model.safetensors"), load_file(reference / "final/model.safetensors")
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in uninterrupted)
    assert [row["step"] for row in log(tmp_path)] == [1, 2, 3, 4, 5, 6]
    assert [row["loss"] for row in log(tmp_path)] == [row["loss"] for row in log(reference)]


def test_two_processes_follow_the_one_process_loss_curve(records, reference, tmp_path):
    """ZeRO-2 over gloo: 2 processes x 1 micro-batch vs 1 process x 2 accumulated, same global batch."""
    torchrun = (sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()))
    run(longvideo_command(records, tmp_path, "gradient_accumulation_steps=1", "save_steps=100", launcher=torchrun),
        retry_teardown_abort=True)
    two, one = log(tmp_path), log(reference)
    assert [row["step"] for row in two] == [1, 2, 3, 4, 5, 6]
    for key in ("loss", "lm_loss", "sim_loss"):
        assert [row[key] for row in two] == pytest.approx([row[key] for row in one], abs=1e-4), key
    assert one[0]["loss"] != pytest.approx(one[-1]["loss"], abs=1e-3)  # the curve moves: the comparison means something


def test_the_media_caches_change_nothing_but_the_work_done(records, tmp_path):
    """With the vision tower frozen, caching decoded videos and the tower's outputs must train
    bit-identically to decoding and encoding every time, and must be used (the data cycles)."""
    frozen = ("vision_tower_lr=0", "gradient_accumulation_steps=2", "save_steps=100")
    run(longvideo_command(records, tmp_path / "plain", *frozen))
    cached = run(longvideo_command(records, tmp_path / "cached", *frozen, "decoded_cache_mb=64", "tower_cache_mb=64"))
    plain_weights = load_file(tmp_path / "plain/final/model.safetensors")
    cached_weights = load_file(tmp_path / "cached/final/model.safetensors")
    assert all(torch.equal(cached_weights[k], plain_weights[k]) for k in plain_weights)
    assert [row["loss"] for row in log(tmp_path / "cached")] == [row["loss"] for row in log(tmp_path / "plain")]
    for cache in ("decoded-video cache", "vision-tower memo"):
        line = next(line for line in cached.stderr.splitlines() if line.startswith(cache))
        hits, misses = (int(line.split(f" {word}")[0].split()[-1]) for word in ("hits", "misses"))
        assert hits > 0 and misses > 0, line


def test_each_save_is_benchmarked_in_a_separate_process(reference):
    rows = read_rows(reference / "benchmarks.jsonl")
    assert [(row["step"], row["status"], row["scores"]) for row in rows] == [
        (3, "ok", {"synthetic": 0.03}), (6, "ok", {"synthetic": 0.06})]
    assert (reference / "benchmarks.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_converted_deepspeed_checkpoint_equals_the_final_save_pretrained(reference, tmp_path):
    convert(reference / "checkpoints", tmp_path)  # the newest checkpoint, step 6 = the end of the run
    converted, final = load_file(tmp_path / "model.safetensors"), load_file(reference / "final/model.safetensors")
    assert converted.keys() == final.keys() and all(torch.equal(converted[k], final[k]) for k in final)
    assert SalovaProcessor.from_pretrained(tmp_path).queries(["a query"])[0].tolist() == \
        SalovaProcessor.from_pretrained(reference / "final").queries(["a query"])[0].tolist()


def test_a_failing_benchmark_is_recorded_and_does_not_raise(reference, tmp_path):
    callback = BenchmarkOnSave(tmp_path, "synthetic", 2, command="{python} -c 'import sys; sys.exit(3)'")
    callback.on_save(3, reference / "checkpoints/step-0000003")
    callback.close()
    [row] = read_rows(tmp_path / "benchmarks.jsonl")
    assert (row["step"], row["status"], row["returncode"], row["scores"]) == (3, "failed", 3, {})
    assert (tmp_path / "benchmarks.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def chain(corpus, tmp_path_factory):
    """training/train.sh with the tiny preset: stage 1 -> 1.5 -> 2, each from the previous final folder."""
    output = tmp_path_factory.mktemp("chain")
    env = {**ENV, "SALOVA_PRESET": "tiny", "DATA_ROOT": str(corpus), "OUTPUT_DIR": str(output),
           "BATCH1": "2", "ACC1": "1", "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(REPO / "training/train.sh"), "tiny", "ci", "v0", "max_steps=8", "save_steps=100"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return {stage: output / f"ci-{stage}_v0" for stage in ("stage1", "stage1.5", "stage2")}


@pytest.mark.parametrize("stage", ["stage1", "stage1.5", "stage2"])
def test_loss_falls_in_every_stage_of_the_chain(chain, stage):
    losses = [row["loss"] for row in log(chain[stage])]
    assert len(losses) == 8
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3


def test_stage1_trains_only_the_connectors_and_each_stage_starts_from_the_previous(chain):
    torch.manual_seed(42)  # the tiny model of stage 1 is built from the recipe's seed
    initial = SalovaForCausalLM(SalovaConfig.from_preset("tiny")).state_dict()
    stage1 = load_file(chain["stage1"] / "final/model.safetensors")
    stage15 = load_file(chain["stage1.5"] / "final/model.safetensors")
    for name, weights in stage1.items():
        if is_connector_parameter(name):
            assert not torch.equal(weights, initial[name]), f"{name} should have trained in stage 1"
        else:
            assert torch.equal(weights, initial[name]), f"{name} should be frozen in stage 1"
    patch = next(k for k in stage1 if k.startswith("vision_tower.") and k.endswith("patch_embedding.weight"))
    assert not torch.equal(stage15[patch], stage1[patch])  # the vision tower trains from stage 1.5 on
    assert "init_from: " + str(chain["stage1"] / "final") in (chain["stage1.5"] / "recipe-longvideo.yaml").read_text()
    assert "init_from: " + str(chain["stage1.5"] / "final") in (chain["stage2"] / "recipe-sft.yaml").read_text()


def test_the_final_checkpoint_answers_salova_ask(chain, corpus, tmp_path):
    """The chain's last folder is a complete checkpoint: `salova ask` loads it and answers with its scenes."""
    video = sorted((corpus / "videos").glob("*.mp4"))[0]
    done = subprocess.run([sys.executable, "-m", "salova.cli", "ask", str(video), "What colour is the shape?",
                           "--checkpoint", str(chain["stage2"] / "final"), "--cache-dir", str(tmp_path),
                           "--max-new-tokens", "4", "--json"],
                          cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout)
    assert answer["focus"] == sorted(answer["focus"]) and len(answer["focus"]) >= 1
    assert len(answer["scores"]) >= len(answer["focus"]) and isinstance(answer["answer"], str)
