"""Checkpoint pieces that need no DeepSpeed run: RNG round trip and the resume guard."""

import json
import random

import numpy as np
import pytest
import torch
import torch.distributed as dist

from salova.errors import CheckpointError
from training import checkpoint
from training.distributed import free_port


def draws() -> tuple:
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_rng_states_round_trip_through_a_file(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    torch.save(checkpoint.rng_state(), tmp_path / "rng.pt")
    expected = draws()
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    checkpoint.restore_rng(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert draws() == expected


@pytest.fixture
def one_process_group():
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_resume_with_another_process_count_fails_clearly(tmp_path, one_process_group):
    folder = tmp_path / "checkpoints" / checkpoint.tag(3)
    folder.mkdir(parents=True)
    (folder / checkpoint.STATE_FILE).write_text(json.dumps({"step": 3, "skipped": [], "world_size": 2}))
    with pytest.raises(CheckpointError, match=r"step-0000003: written by 2 processes, resumed with 1"):
        checkpoint.resume(engine=None, folder=folder)  # refused before DeepSpeed reads anything


def test_latest_follows_deepspeeds_pointer(tmp_path):
    assert checkpoint.latest(tmp_path) is None
    (tmp_path / checkpoint.CHECKPOINTS).mkdir()
    (tmp_path / checkpoint.CHECKPOINTS / "latest").write_text(checkpoint.tag(40))
    assert checkpoint.latest(tmp_path) == tmp_path / "checkpoints" / "step-0000040"
