"""`salova index` and `salova ask` on a synthetic video."""

import json

from salova.cli import main


def test_index_prints_scenes_and_cache_path(tiny_checkpoint, ci_corpus, tmp_path, capsys):
    video = sorted((ci_corpus / "videomme" / "data").glob("*.mp4"))[0]
    truth = json.loads((ci_corpus / "ground_truth.json").read_text())
    assert main(["index", str(video), "--checkpoint", str(tiny_checkpoint), "--cache-dir", str(tmp_path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["from_cache"] is False
    assert summary["decoded_frames"] > summary["sampled_frames"] > 0
    assert sum(scene["frames"] for scene in summary["scenes"]) == summary["sampled_frames"]
    assert (tmp_path / summary["cache_path"]).is_file()
    known = truth["videos"][f"videomme/data/{video.name}"]
    true_starts = [scene["start_frame"] / known["fps"] for scene in known["scenes"]]
    found_starts = [scene["start_s"] for scene in summary["scenes"]]
    assert len(found_starts) == len(true_starts)
    assert all(abs(a - b) <= 1.0 for a, b in zip(found_starts, true_starts))  # the real cuts, within 1 s


def test_ask_reports_answer_and_scenes(tiny_checkpoint, ci_corpus, tmp_path, capsys):
    video = sorted((ci_corpus / "videomme" / "data").glob("*.mp4"))[0]
    args = ["ask", str(video), "What colour is the square?", "--checkpoint", str(tiny_checkpoint),
            "--cache-dir", str(tmp_path), "--k", "2", "--max-new-tokens", "4", "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert len(first["focus"]) == 2 and first["focus"] == sorted(first["focus"])
    assert len(first["scene_times"]) == 2 and not first["from_cache"]
    top_two = sorted(range(len(first["scores"])), key=lambda i: -first["scores"][i])[:2]
    assert sorted(top_two) == first["focus"]  # the router's top-K, in temporal order
    assert main(args) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["from_cache"] and second["answer"] == first["answer"]


def test_missing_video_exits_2_with_the_file_named(tiny_checkpoint, tmp_path, capsys):
    code = main(["ask", str(tmp_path / "absent.mp4"), "hi", "--checkpoint", str(tiny_checkpoint)])
    assert code == 2
    assert "absent.mp4" in capsys.readouterr().err
