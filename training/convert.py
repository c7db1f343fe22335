"""Turn a DeepSpeed checkpoint into a save_pretrained folder (safetensors + processor).

    python -m training.convert OUTPUT_DIR/checkpoints/step-0000040 OUT_DIR
    python -m training.convert OUTPUT_DIR/checkpoints OUT_DIR        (the newest, from `latest`)

The fp32 weights are gathered from the ZeRO partitions (stages 1-3) with DeepSpeed's
zero_to_fp32; a checkpoint without ZeRO reads the module states directly. The model config
and processor come from the `salova/` folder the trainer writes into every checkpoint.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

from salova.config import SalovaConfig
from salova.errors import CheckpointError, SalovaError
from salova.modeling.salova import SalovaForCausalLM
from salova.processing import SalovaProcessor
from training.checkpoint import CONFIG_FOLDER


def checkpoint_folder(path: Path) -> Path:
    """A tag folder, or the folder holding `latest` -> the tag folder."""
    if (path / "latest").is_file():
        return path / (path / "latest").read_text().strip()
    return path


def fp32_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    if list(folder.glob("*optim_states.pt")) and list(folder.glob("zero_pp_rank_*")):
        return get_fp32_state_dict_from_zero_checkpoint(str(folder.parent), tag=folder.name)
    states = sorted(folder.glob("mp_rank_*_model_states.pt"))
    if not states:
        raise CheckpointError(f"{folder}: no DeepSpeed model states (mp_rank_*_model_states.pt)")
    return {name: tensor.float() for name, tensor in torch.load(states[0], map_location="cpu", weights_only=False)["module"].items()}


def convert(checkpoint: str | Path, out_dir: str | Path) -> Path:
    folder = checkpoint_folder(Path(checkpoint))
    meta = folder / CONFIG_FOLDER
    if not (meta / "config.json").is_file():
        raise CheckpointError(f"{folder}: not a SALOVA training checkpoint (no {CONFIG_FOLDER}/config.json)")
    state = fp32_state_dict(folder)
    config = SalovaConfig.from_pretrained(meta)
    with torch.device("meta"):
        model = SalovaForCausalLM(config)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if missing or unexpected:
        raise CheckpointError(f"{folder}: weights do not match the model config (missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]})")
    model.tie_weights()
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir, safe_serialization=True)
    SalovaProcessor.from_pretrained(meta, config=config).save_pretrained(out_dir)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="DeepSpeed checkpoint folder (a step-N tag, or the folder with `latest`)")
    parser.add_argument("out_dir", help="where to write the save_pretrained folder")
    args = parser.parse_args(argv)
    try:
        print(f"saved {convert(args.checkpoint, args.out_dir)}")
    except SalovaError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
