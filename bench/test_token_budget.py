"""Case 6: visual tokens sent to the LLM per video length (computed, not timed).

SALOVA: min(K, T) * 256 local tokens + T routing tokens, for K = 5 and 9, with
T from the scene-length model (mean 33 s per scene). Uniform sampling: 8, 16,
32 or 64 frames at 169 (13x13) or 196 (14x14) tokens per frame, whatever the
length. Writes token_budget.md and token_budget.png. The `benchmark` fixture
times the computation only so the case runs under --benchmark-only.
Asserted: the table matches the formula recomputed here for the 1-h row, and
at 1 h SALOVA K=5 sends >= 5x fewer tokens than uniform 64 frames x 196.
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from bench.scene_model import scene_lengths  # noqa: E402

MINUTES = [1, 5, 10, 30, 60, 120]
LOCAL_TOKENS = 256


def token_table() -> pd.DataFrame:
    rows = []
    for minutes in MINUTES:
        scenes = len(scene_lengths(60 * minutes))
        row = {"minutes": minutes, "scenes": scenes}
        for k in (5, 9):
            row[f"SALOVA K={k}"] = min(k, scenes) * LOCAL_TOKENS + scenes
        for frames in (8, 16, 32, 64):
            for per_frame in (169, 196):
                row[f"uniform {frames}x{per_frame}"] = frames * per_frame
        rows.append(row)
    return pd.DataFrame(rows)


def test_visual_token_budget(benchmark, record, results_dir):
    table = benchmark(token_table)
    (results_dir / "token_budget.md").write_text(table.to_markdown(index=False))
    plot(table, results_dir / "token_budget.png")

    hour = table.set_index("minutes").loc[60]
    scenes_in_an_hour = len(scene_lengths(3600))
    assert hour["SALOVA K=5"] == 5 * 256 + scenes_in_an_hour
    assert hour["SALOVA K=9"] == 9 * 256 + scenes_in_an_hour
    ratio = hour["uniform 64x196"] / hour["SALOVA K=5"]
    record({"scenes_1h": int(scenes_in_an_hour), "salova_k5_tokens_1h": int(hour["SALOVA K=5"]),
            "salova_k9_tokens_1h": int(hour["SALOVA K=9"]),
            "token_ratio_uniform64x196_over_salova_k5_1h": float(ratio)},
           {"token_ratio_uniform64x196_over_salova_k5_1h": ">= 5"})
    assert ratio >= 5


def plot(table, path):
    figure, axis = plt.subplots(figsize=(7, 4.2))
    for column in table.columns[2:]:
        style = "o-" if column.startswith("SALOVA") else "--"
        axis.plot(table.minutes, table[column], style, label=column, linewidth=2 if "SALOVA" in column else 1)
    axis.set(xscale="log", yscale="log", xlabel="video length (min, 1 fps)", ylabel="visual tokens to the LLM",
             title="Visual-token budget")
    axis.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
