"""`salova info`: parameter counts per component on the meta device, against the published
sizes of the backbones and the connector's closed-form parameter count."""

import json

import pytest

from salova.cli import main, parameter_counts
from salova.config import SalovaConfig


def connector_parameters(dim, patches, latents=256, depth=2, heads=2, dim_head=64, ff_mult=4, frames=2160):
    """Closed form of the ST-Connector's parameters (docs/architecture.md)."""
    inner = heads * dim_head
    attention = 2 * 2 * dim + dim * inner + dim * 2 * inner + inner * dim  # 2 LNs, to_q, to_kv, to_out
    feed_forward = 2 * dim + 2 * dim * ff_mult * dim
    return (1 + latents) * dim + patches * dim + frames * dim + depth * (attention + feed_forward) + 2 * dim


def test_info_for_the_7b_model(capsys):
    assert main(["info", "--preset", "qwen2.5-7b-siglip", "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)["parameters"]
    assert 8.0e9 <= counts["total"] <= 8.9e9
    assert counts["connector"] == 25_439_616 == connector_parameters(1152, 196)
    assert 7.60e9 <= counts["llm"] <= 7.63e9  # Qwen2.5-7B: 7.62 B
    projector = 1152 * 3584 + 3584 + 3584 * 3584 + 3584
    assert counts["projector"] == projector
    assert counts["total"] == sum(v for k, v in counts.items() if k != "total")


def test_tied_llama_embeddings_are_counted_once():
    counts = parameter_counts(SalovaConfig.from_preset("llama3.2-3b-clip"))
    assert 3.20e9 <= counts["llm"] <= 3.22e9  # Llama-3.2-3B: 3.21 B with tied embeddings
    assert counts["connector"] == connector_parameters(1024, 144)
    assert 3.6e9 <= counts["total"] <= 3.8e9


def test_info_prints_a_table(capsys):
    assert main(["info", "--preset", "tiny"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "preset tiny"
    assert [line.split()[0] for line in lines[1:]] == [
        "vision_tower", "text_tower", "connector", "router", "projector", "llm", "total"]


def test_unknown_preset_is_rejected(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["info", "--preset", "gpt-5"])
    assert exit_info.value.code == 2
    assert "qwen2.5-7b-siglip" in capsys.readouterr().err
