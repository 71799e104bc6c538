"""Numba kernels of the KQI rollup: integer counters summed per cell in one pass.

NumPy arrays in, NumPy arrays out; no pandas here (the stumpy pattern). A *cell* is an integer
index the caller computed (object code x time bucket, or a customer code); every counter of
:data:`cemkit.kqi.formulas.COUNTERS` is summed per cell in one pass over the records, whatever
the number of counters.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from cemkit import config

#: Marks a missing time (NaT) in int64 nanoseconds.
NULL_TIME = np.iinfo(np.int64).min


@njit(cache=config.NUMBA_CACHE, nogil=config.NUMBA_NOGIL, fastmath=config.NUMBA_FASTMATH)
def sum_by_cell(cell, values, replace_row, replacement, n_cells):  # pragma: no cover - compiled
    """Sum every row of ``values`` per cell, and count the records of each cell.

    Parameters
    ----------
    cell : int64[n]
        Cell of each record, in ``[0, n_cells)``; negative: the record is left out.
    values : int64[c, n]
        One row per counter (any memory layout).
    replace_row : int
        A row of ``values`` read from ``replacement`` instead (-1: none); lets the caller
        override one counter without copying the whole block.
    replacement : int64[n]
        The values of row ``replace_row``.
    n_cells : int
        Number of cells.

    Returns
    -------
    (int64[c, n_cells], int64[n_cells])
        Sums per counter and cell; records per cell.
    """
    n_counters = values.shape[0]
    n = cell.shape[0]
    out = np.zeros((n_counters, n_cells), dtype=np.int64)
    count = np.zeros(n_cells, dtype=np.int64)
    for i in range(n):
        k = cell[i]
        if k >= 0:
            count[k] += 1
    for j in range(n_counters):
        row = out[j]
        if j == replace_row:
            for i in range(n):
                k = cell[i]
                if k >= 0:
                    row[k] += replacement[i]
        else:
            src = values[j]
            for i in range(n):
                k = cell[i]
                if k >= 0:
                    row[k] += src[i]
    return out, count


@njit(cache=config.NUMBA_CACHE, nogil=config.NUMBA_NOGIL, fastmath=config.NUMBA_FASTMATH)
def first_start(code, time, use, n_codes):  # pragma: no cover - compiled
    """Earliest ``time`` per code over the records with ``use`` (NULL_TIME when none).

    Parameters
    ----------
    code : int64[n]
        Code of each record (negative: no code).
    time : int64[n]
        Times; NULL_TIME for missing ones (never the minimum).
    use : bool[n]
        Records that take part.
    n_codes : int
        Number of codes.
    """
    out = np.full(n_codes, NULL_TIME, dtype=np.int64)
    for i in range(code.shape[0]):
        c = code[i]
        t = time[i]
        if c < 0 or not use[i] or t == NULL_TIME:
            continue
        if out[c] == NULL_TIME or t < out[c]:
            out[c] = t
    return out
