"""Learned position tables that never drop a position.

A learned table has a fixed number of rows (frames of a scene, scenes of a
video, text tokens). The released SALOVA code sub-samples frames or fails
with an index error beyond the table; here a sequence longer than the table
gets the table linearly resampled to its length instead, so every frame and
every scene keeps a position and neighbouring positions stay close.
"""

import torch
import torch.nn.functional as F


def positions(table: torch.Tensor, n: int) -> torch.Tensor:
    """Position rows for a sequence of length `n`.

    table: (M, D) learned rows. Returns (n, D): rows 0..n-1 when n <= M, else the
    whole table linearly resampled to n rows (align_corners=True, so the first and
    last rows are kept exactly and the rest interpolate between neighbours).
    """
    num_rows = table.shape[0]
    if n <= num_rows:
        return table[:n]
    rows_last = table.t().unsqueeze(0)  # (1, D, M): interpolate works on the last axis
    resampled = F.interpolate(rows_last, size=n, mode="linear", align_corners=True)  # (1, D, n)
    return resampled.squeeze(0).t()
