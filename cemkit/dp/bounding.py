"""Contribution bounding: at most ``max_cells`` cells per unit, ``max_records`` per unit and cell.

Bounding is what makes a subscriber's influence on a release finite (its *sensitivity*): after
it, one subscriber changes at most ``max_cells`` cells of a level, each by at most
``max_records`` records. Which of a heavy user's cells and records are kept is chosen at random
(a seeded permutation of cells per unit and of records per cell), so the kept sample is not
biased towards, say, early buckets.

The kernel takes NumPy arrays only (codes sorted by unit, then cell priority, then record
priority); :func:`bound` prepares them. ``tests/naive.py`` has the obviously correct reference.
"""

from __future__ import annotations

import numba
import numpy as np

from cemkit import config


@numba.njit(cache=config.NUMBA_CACHE, nogil=config.NUMBA_NOGIL)
def _keep_sorted(unit: np.ndarray, cell: np.ndarray, max_cells: int,
                 max_records: int) -> np.ndarray:  # fmt: skip
    """Keep mask over rows sorted by (unit, cell priority, record priority).

    Rows of one unit are contiguous, and within a unit the rows of one cell are contiguous, in
    the order the cells (and records) are to be preferred.
    """
    n = unit.shape[0]
    keep = np.zeros(n, dtype=np.bool_)
    cells_taken = 0
    in_cell = 0
    for i in range(n):
        new_unit = i == 0 or unit[i] != unit[i - 1]
        if new_unit:
            cells_taken = 0
        if new_unit or cell[i] != cell[i - 1]:
            cells_taken += 1
            in_cell = 0
        in_cell += 1
        keep[i] = cells_taken <= max_cells and in_cell <= max_records
    return keep


def _mix(x: np.ndarray, seed: int) -> np.ndarray:
    """A seeded 64-bit mixing of integers (splitmix64 finalizer): pseudo-random priorities."""
    z = (x.astype(np.uint64) + np.uint64(seed & 0xFFFFFFFFFFFFFFFF)
         + np.uint64(0x9E3779B97F4A7C15))  # fmt: skip
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def priorities(unit: np.ndarray, cell: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random priority of each row's (unit, cell) pair, and of each row within its cell."""
    unit = np.asarray(unit, dtype=np.int64)
    cell = np.asarray(cell, dtype=np.int64)
    with np.errstate(over="ignore"):
        cell_priority = _mix(_mix(unit, seed) ^ cell.astype(np.uint64), seed + 1)
        record_priority = _mix(np.arange(unit.shape[0], dtype=np.int64), seed + 2)
    return cell_priority, record_priority


def order(unit: np.ndarray, cell: np.ndarray, seed: int) -> np.ndarray:
    """Row order by unit, then the (unit, cell) priority, then the record priority."""
    cell_priority, record_priority = priorities(unit, cell, seed)
    # priorities may tie for different cells: the cell code breaks ties so a cell stays contiguous
    return np.lexsort((record_priority, cell, cell_priority, unit))


def bound(unit: np.ndarray, cell: np.ndarray, *, max_cells: int, max_records: int,
          seed: int) -> np.ndarray:  # fmt: skip
    """Boolean mask of the rows kept (in input order).

    Parameters
    ----------
    unit : int array
        Privacy-unit code per row (a dense code of the pseudonymized subscriber); rows with a
        negative code (no unit) are never kept.
    cell : int array
        Cell code per row (node group and time bucket at one level of the hierarchy).
    max_cells, max_records : int
        The bounds of the policy's ``release.bounds``.
    seed : int
        Seed of the random choice of cells and records.
    """
    unit = np.asarray(unit, dtype=np.int64)
    cell = np.asarray(cell, dtype=np.int64)
    if unit.shape != cell.shape:
        raise ValueError("unit and cell codes must have the same length")
    idx = order(unit, cell, seed)
    kept_sorted = _keep_sorted(unit[idx], cell[idx], int(max_cells), int(max_records))
    keep = np.zeros(unit.shape[0], dtype=np.bool_)
    keep[idx] = kept_sorted
    keep &= unit >= 0
    return keep
