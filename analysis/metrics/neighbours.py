"""Euclidean nearest-neighbour quantities, computed in row blocks.

The k-nearest-neighbour metrics (precision, recall, density, coverage,
AuthPct) need distances between every pair of samples. For 50,000 samples a
full float64 distance matrix would take 20 GB, so everything here works on
blocks of rows and keeps only per-row results.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.typing import NDArray

#: Rows per block: a 2048 x 50,000 float64 block is about 800 MB.
BLOCK_ROWS = 2048


def _blocks(n: int) -> Iterator[slice]:
    size = BLOCK_ROWS
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def distances(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """Euclidean distances between the rows of ``a`` and of ``b`` (float64).

    Uses :math:`\\lVert a\\rVert^2 + \\lVert b\\rVert^2 - 2a^\\top b`, clipped at
    zero before the square root, so a matrix product does the work.
    """
    sq = (a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None, :] - 2 * (a @ b.T)
    return np.sqrt(np.clip(sq, 0.0, None))


def kth_neighbour_radii(x: NDArray[np.float64], k: int) -> NDArray[np.float64]:
    """Distance from each row of ``x`` to its k-th nearest other row.

    The row itself (distance 0) is the nearest and is skipped, so this is the
    (k+1)-th smallest distance in the row's distance list.
    """
    radii = np.empty(x.shape[0])
    for rows in _blocks(x.shape[0]):
        d = distances(x[rows], x)
        radii[rows] = np.partition(d, k, axis=1)[:, k]
    return radii


def nearest(
    a: NDArray[np.float64], b: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Distance to and index of the nearest row of ``b`` for each row of ``a``."""
    dist = np.empty(a.shape[0])
    index = np.empty(a.shape[0], dtype=np.int64)
    for rows in _blocks(a.shape[0]):
        d = distances(a[rows], b)
        index[rows] = d.argmin(axis=1)
        dist[rows] = d[np.arange(d.shape[0]), index[rows]]
    return dist, index


def count_within(
    points: NDArray[np.float64],
    centres: NDArray[np.float64],
    radii: NDArray[np.float64],
) -> NDArray[np.int64]:
    """For each point, the number of balls (centre, radius) it lies strictly in."""
    counts = np.empty(points.shape[0], dtype=np.int64)
    for rows in _blocks(points.shape[0]):
        d = distances(points[rows], centres)
        counts[rows] = (d < radii[None, :]).sum(axis=1)
    return counts
