"""Which record feeds which optimizer step, process and micro-step; unreadable records skipped.

Every sample has a *position* in the training stream. With G = micro x world x accumulation
samples per optimizer step, step s takes positions s*G .. s*G+G-1 of the stream, and
micro-step a of rank r takes the micro-batch starting at s*G + (a*world + r)*micro. So the
samples of a step are the same whatever the split into processes and accumulation steps,
and a run restarted at step s reads exactly what an uninterrupted run would have read.

Epoch e visits the records in a permutation drawn from (seed, e); the last incomplete
global batch of an epoch is dropped. A record whose video is missing or corrupt is
replaced by the next one of the same epoch order (wrapping around inside the epoch, never
past the end of the dataset), with a warning naming it; the batch reports it so the
trainer counts it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from salova.errors import RecordError, SalovaError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamShape:
    dataset_size: int
    micro: int  # samples per micro-batch per process
    world: int
    accumulation: int

    @property
    def global_batch(self) -> int:
        return self.micro * self.world * self.accumulation

    @property
    def steps_per_epoch(self) -> int:
        return self.dataset_size // self.global_batch

    def micro_batch(self, step: int, micro_step: int, rank: int) -> list[int]:
        """Stream positions of one micro-batch."""
        start = step * self.global_batch + (micro_step * self.world + rank) * self.micro
        return list(range(start, start + self.micro))


class MicroBatches(torch.utils.data.Sampler):
    """This process's micro-batches (lists of stream positions) from `start_step` to `total_steps`."""

    def __init__(self, shape: StreamShape, rank: int, start_step: int, total_steps: int):
        self.shape, self.rank, self.start_step, self.total_steps = shape, rank, start_step, total_steps

    def __len__(self) -> int:
        return (self.total_steps - self.start_step) * self.shape.accumulation

    def __iter__(self):
        for step in range(self.start_step, self.total_steps):
            for micro_step in range(self.shape.accumulation):
                yield self.shape.micro_batch(step, micro_step, self.rank)


def sample_seed(seed: int, position: int) -> int:
    """The random seed of one stream position: the same on any process, before and after a resume."""
    return int(np.random.SeedSequence([seed, position]).generate_state(1, dtype=np.uint64)[0] >> 1)


class TrainingStream(torch.utils.data.Dataset):
    """Stream position -> sample of the stage dataset, skipping unreadable records.

    `dataset` has `__len__`, `sample(index, rng)` (raising SalovaError for a bad record) and
    `describe(index)` (the record named in messages)."""

    def __init__(self, dataset, shape: StreamShape, seed: int):
        self.dataset, self.shape, self.seed = dataset, shape, seed
        self.bad: set[int] = set()  # records already found unreadable in this process
        self.orders: dict[int, np.ndarray] = {}

    def order(self, epoch: int) -> np.ndarray:
        if epoch not in self.orders:
            self.orders = {epoch: np.random.default_rng([self.seed, epoch]).permutation(self.shape.dataset_size)}
        return self.orders[epoch]

    def __len__(self) -> int:
        return self.shape.dataset_size

    def __getitem__(self, position: int) -> dict:
        per_epoch = self.shape.steps_per_epoch * self.shape.global_batch
        epoch, offset = divmod(position, per_epoch)
        order = self.order(epoch)
        skipped = []
        for attempt in range(len(order)):
            index = int(order[(offset + attempt) % len(order)])
            if index in self.bad:
                continue
            try:
                sample = self.dataset.sample(index, np.random.default_rng(sample_seed(self.seed, position)))
            except SalovaError as error:
                self.bad.add(index)
                skipped.append(self.dataset.describe(index))
                log.warning("skipping %s: %s", self.dataset.describe(index), error)
                continue
            sample["skipped"] = skipped
            sample["position"] = position
            return sample
        raise RecordError(f"no readable record in the dataset ({len(order)} records, all unreadable)")
