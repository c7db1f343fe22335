"""A least-recently-used memo bounded by bytes.

Training uses it twice, because the same media come back every epoch (the `small` corpus holds
240 videos under 9,600 records): decoded videos (`salova.data.collate`) and the outputs of a
frozen vision tower (`salova.modeling.tower_memo`). A budget of 0 stores nothing.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

MIB = 2**20


def nbytes(value: Any) -> int:
    """Bytes held by the tensors and arrays in `value` (also inside tuples and lists)."""
    if isinstance(value, torch.Tensor):
        return value.nelement() * value.element_size()
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, (tuple, list)):
        return sum(nbytes(item) for item in value)
    return 0


class ByteLRU:
    def __init__(self, budget_mb: float):
        self.budget = int(budget_mb * MIB)
        self.entries: OrderedDict[Any, tuple[Any, int]] = OrderedDict()
        self.used = self.hits = self.misses = 0

    def get(self, key, compute: Callable[[], Any]) -> Any:
        """The value stored under `key`, else `compute()` (stored when it fits the budget)."""
        if key in self.entries:
            self.entries.move_to_end(key)
            self.hits += 1
            return self.entries[key][0]
        self.misses += 1
        value = compute()
        size = nbytes(value)
        if size <= self.budget:
            self.entries[key] = (value, size)
            self.used += size
            while self.used > self.budget:
                _, (_, evicted) = self.entries.popitem(last=False)
                self.used -= evicted
        return value

    def summary(self) -> str:
        return (f"{self.hits} hits, {self.misses} misses, {len(self.entries)} entries in "
                f"{self.used / MIB:.0f} of {self.budget / MIB:.0f} MiB")
