"""Contribution bounding: at most ``max_cells`` cells per unit, ``max_records`` per unit and cell.

Bounding is what makes a subscriber's influence on a release finite (its *sensitivity*): after
it, one subscriber changes at most ``max_cells`` cells of a level, each by at most
``max_records`` records. Which of a heavy user's cells and records are kept is chosen at random
(a seeded permutation of cells per unit and of records per cell), so the kept sample is not
biased towards, say, early buckets.

The kernel takes NumPy arrays only (codes sorted by unit, then cell, by one stable sort of one
int64 key); :func:`bound` prepares them. ``tests/naive.py`` has the obviously correct reference.
"""

from __future__ import annotations

import numba
import numpy as np

from cemkit import config


@numba.njit(cache=config.NUMBA_CACHE, nogil=config.NUMBA_NOGIL)
def _keep_sorted(unit: np.ndarray, cell: np.ndarray, cell_priority: np.ndarray,
                 record_priority: np.ndarray, max_cells: int,
                 max_records: int) -> np.ndarray:  # fmt: skip
    """Keep mask over rows sorted by (unit, cell, input position).

    A unit with more than ``max_cells`` cells keeps the cells of lowest priority (ties: lower
    cell code); a cell with more than ``max_records`` rows keeps the rows of lowest record
    priority (ties: earlier row). Only heavy units and cells pay for a selection; everyone else
    is one linear pass.
    """
    n = unit.shape[0]
    keep = np.zeros(n, dtype=np.bool_)
    i = 0
    while i < n:
        j = i
        while j < n and unit[j] == unit[i]:
            j += 1
        # cell runs of unit rows [i, j)
        n_runs = 0
        k = i
        while k < j:
            n_runs += 1
            m = k
            while m < j and cell[m] == cell[k]:
                m += 1
            k = m
        starts = np.empty(n_runs, dtype=np.int64)
        ends = np.empty(n_runs, dtype=np.int64)
        prio = np.empty(n_runs, dtype=np.uint64)
        r = 0
        k = i
        while k < j:
            m = k
            while m < j and cell[m] == cell[k]:
                m += 1
            starts[r] = k
            ends[r] = m
            prio[r] = cell_priority[k]
            r += 1
            k = m
        if n_runs > max_cells:
            chosen = np.argsort(prio, kind="mergesort")[:max_cells]
        else:
            chosen = np.arange(n_runs)
        for c in chosen:
            a = starts[c]
            b = ends[c]
            if b - a <= max_records:
                keep[a:b] = True
            else:
                best = np.argsort(record_priority[a:b], kind="mergesort")[:max_records]
                for x in best:
                    keep[a + x] = True
        i = j
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


def order(unit: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Row order by unit, then cell, then input position (one stable sort of one int64 key)."""
    span = int(cell.max()) + 1 if cell.size else 1
    return np.argsort(unit * span + cell, kind="stable")


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
    valid = np.flatnonzero((unit >= 0) & (cell >= 0))
    u, c = unit[valid], cell[valid]
    cell_priority, record_priority = priorities(unit, cell, seed)
    idx = order(u, c)
    sel = valid[idx]
    kept_sorted = _keep_sorted(u[idx], c[idx], cell_priority[sel], record_priority[sel],
                               int(max_cells), int(max_records))  # fmt: skip
    keep = np.zeros(unit.shape[0], dtype=np.bool_)
    keep[sel] = kept_sorted
    return keep
