"""Process-group set-up and teardown for every way of starting the trainer.

- no launcher: one process; RANK/LOCAL_RANK/WORLD_SIZE/MASTER_* get single-process defaults;
- `deepspeed` launcher (also multi-node through --hostfile) and `torchrun` (also multi-node
  through --nnodes/--rdzv_endpoint) set those variables themselves;
- MPI launchers are found by DeepSpeed's own discovery (OMPI_COMM_WORLD_*).

Backend: NCCL on GPUs, gloo on CPU. Workers end with barrier + destroy: without it gloo
sometimes aborts at exit after a successful run (environment.md §3).
"""

from __future__ import annotations

import os
import socket

import deepspeed
import torch
import torch.distributed as dist


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def init() -> tuple[int, int, torch.device]:
    """Join (or create) the process group; returns (rank, world size, this process's device)."""
    launched = "RANK" in os.environ or "OMPI_COMM_WORLD_RANK" in os.environ
    if not launched:
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=os.environ.get("MASTER_PORT", str(free_port())))
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        device = torch.device("cuda", torch.cuda.current_device())
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        deepspeed.init_distributed(dist_backend="nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), device


def teardown() -> None:
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def mean_across_ranks(values: dict[str, float]) -> dict[str, float]:
    """Average each value over all processes (one all-reduce)."""
    keys = sorted(values)
    tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.all_reduce(tensor)
    tensor /= dist.get_world_size()
    return dict(zip(keys, tensor.tolist()))


def sum_across_ranks(value: int) -> int:
    tensor = torch.tensor([value], dtype=torch.int64)
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.all_reduce(tensor)
    return int(tensor.item())
