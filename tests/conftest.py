"""Shared test settings: nothing may reach a network hub, and runs are repeatable."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from hypothesis import settings  # noqa: E402

settings.register_profile("salova", deadline=None, derandomize=True, max_examples=25)
settings.load_profile("salova")

import pytest  # noqa: E402
import torch  # noqa: E402

# Tiny models on a 2-core machine run faster on one thread than on two (no oversubscription).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def ci_corpus(tmp_path_factory):
    """The synthetic `ci` corpus (videos, records, benchmark question files), generated once."""
    from salova.data.synth import generate

    out = tmp_path_factory.mktemp("ci_corpus")
    generate("ci", out, seed=0)
    return out


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A randomly initialised tiny SALOVA saved with save_pretrained (model + processor)."""
    from salova.config import SalovaConfig
    from salova.modeling.salova import SalovaForCausalLM
    from salova.processing import SalovaProcessor

    torch.manual_seed(0)
    config = SalovaConfig.from_preset("tiny")
    directory = tmp_path_factory.mktemp("tiny_checkpoint")
    SalovaForCausalLM(config).eval().save_pretrained(directory)
    SalovaProcessor.for_config(config).save_pretrained(directory)
    return directory
