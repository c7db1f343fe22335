"""The built-in demo checkpoint is a shortened run of the `small` learning recipe: the same
recipe files and Reproduction steps as `python -m training.reproduce`, with only the corpus
size and the step counts cut (evals/demo_checkpoint.py). Built here with 2 steps a stage."""

import json
from pathlib import Path

import pytest
import yaml

from evals import demo_checkpoint as demo
from salova.sources import source_digest
from training import reproduce

# What the demo (and training.reproduce) set per stage; every other key comes from the recipe file.
RUN_KEYS = {"data_path", "image_folder", "video_folder", "output_dir", "seed", "init_from", "max_steps"}
STEPS = {"pretrain": 2, "longvideo": 2, "sft": 2, "sft-reading": 2}
# The recipe as each stage's trainer saved it: both stage-2 phases run `training.train --stage sft`.
USED_RECIPE = {"pretrain": "recipe-pretrain.yaml", "longvideo": "recipe-longvideo.yaml", "sft": "recipe-sft.yaml",
               "sft-reading": "recipe-sft.yaml"}  # fmt: skip


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(demo, "CORPUS_SIZES", {**demo.CORPUS_SIZES, "stage1_clips": 8, "stage1_images": 8,
                                             "train_videos": 2})  # fmt: skip
        patch.setattr(demo, "DEMO_STEPS", STEPS)
        final = demo.build(folder)
    return folder, final


def test_final_folder_is_the_small_model_after_stage_2(built):
    folder, final = built
    assert final == folder / "full" / "sft-reading" / "final"
    config = json.loads((final / "config.json").read_text())
    assert config["llm_config"]["hidden_size"] == 128 and config["llm_config"]["num_hidden_layers"] == 4  # SMALL_LLM
    assert (final / "model.safetensors").is_file()


@pytest.mark.parametrize("stage", list(STEPS))
def test_each_stage_runs_its_recipe_file_with_only_run_keys_changed(built, stage):
    folder, _ = built
    recipe_file = yaml.safe_load((reproduce.RECIPES / reproduce.STAGE_RECIPES[stage]).read_text())
    used = yaml.safe_load((folder / "full" / stage / USED_RECIPE[stage]).read_text())
    for key, value in recipe_file.items():
        if key not in RUN_KEYS:
            assert used[key] == value, key
    assert used["max_steps"] == STEPS[stage]
    log = [json.loads(line) for line in (folder / "full" / stage / "train_log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log if "step" in entry][-1] == STEPS[stage]


def test_stages_chain_and_stage_2_reads_the_generated_questions(built):
    folder, _ = built
    used = {stage: yaml.safe_load((folder / "full" / stage / USED_RECIPE[stage]).read_text())
            for stage in STEPS}  # fmt: skip
    assert used["pretrain"]["init_from"] is None
    assert Path(used["longvideo"]["init_from"]) == folder / "full" / "pretrain" / "final"
    assert Path(used["sft"]["init_from"]) == folder / "full" / "longvideo" / "final"
    assert Path(used["sft-reading"]["init_from"]) == folder / "full" / "sft" / "final"
    phases = {phase: json.loads(Path(used[phase]["data_path"]).read_text()) for phase in reproduce.STAGE2_PHASES}
    low, high = reproduce.QUESTIONS_PER_RECORD
    for phase, records in phases.items():
        assert len(records) == 2 * reproduce.QUESTION_REPEATS  # 2 training videos
        assert all(low <= len(r["lb_sim"]) <= high and len(r["router_questions"]) == reproduce.ROUTER_QUESTIONS[phase]
                   for r in records)  # fmt: skip
    # the second phase asks the first phase's questions, with fewer router-only ones
    assert [r["conversations"] for r in phases["sft"]] == [r["conversations"] for r in phases["sft-reading"]]


def test_folder_hash_follows_the_recipe_files_and_the_question_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("SALOVA_CACHE", str(tmp_path))
    before = demo.checkpoint_folder()
    copy = tmp_path / "recipes"
    copy.mkdir()
    for name in reproduce.STAGE_RECIPES.values():
        (copy / name).write_text((reproduce.RECIPES / name).read_text())
    monkeypatch.setattr(reproduce, "RECIPES", copy)
    assert demo.checkpoint_folder() == before
    sft = copy / reproduce.STAGE_RECIPES["sft"]
    steps = yaml.safe_load(sft.read_text())["max_steps"]
    sft.write_text(sft.read_text().replace(f"max_steps: {steps}", f"max_steps: {steps + 1}"))
    changed = demo.checkpoint_folder()
    assert changed != before
    monkeypatch.setitem(reproduce.ROUTER_QUESTIONS, "sft-reading", reproduce.ROUTER_QUESTIONS["sft-reading"] + 1)
    assert demo.checkpoint_folder() not in (before, changed)  # the stage-2 questions are part of the key


def test_folder_hash_follows_the_code_that_builds_the_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("SALOVA_CACHE", str(tmp_path))
    before = demo.checkpoint_folder()
    monkeypatch.setattr(demo, "source_digest", lambda *packages: "other code")
    assert demo.checkpoint_folder() != before


def test_source_digest_changes_with_any_file_of_the_package_and_only_then(tmp_path, monkeypatch):
    package = tmp_path / "digest_probe_pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "render.py").write_text("SIZE = 16\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    first = source_digest("digest_probe_pkg")
    assert source_digest("digest_probe_pkg") == first
    (package / "notes.txt").write_text("not code")
    assert source_digest("digest_probe_pkg") == first
    (package / "sub" / "render.py").write_text("SIZE = 24\n")
    edited = source_digest("digest_probe_pkg")
    (package / "sub" / "extra.py").write_text("")
    assert len({first, edited, source_digest("digest_probe_pkg")}) == 3


def test_demo_sets_are_generated_again_when_the_data_code_changes(tmp_path, monkeypatch):
    from evals import demo_data
    from salova.data import synth

    generated = []

    def fake_generate(preset, out, seed):
        generated.append(out)
        (Path(out) / "manifest.json").write_text("{}")

    monkeypatch.setattr(synth, "generate", fake_generate)
    first = demo_data.demo_data_root(tmp_path)
    assert demo_data.demo_data_root(tmp_path) == first and len(generated) == 1  # cached
    monkeypatch.setattr(demo_data, "source_digest", lambda *packages: "other code")
    second = demo_data.demo_data_root(tmp_path)
    assert second != first and len(generated) == 2 and (first / "manifest.json").is_file()
