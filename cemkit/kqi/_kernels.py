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


@njit(cache=config.NUMBA_CACHE, nogil=config.NUMBA_NOGIL, fastmath=config.NUMBA_FASTMATH)
def grouped_quantiles(row, value, count, start, reps, target, n_targets, qs):  # pragma: no cover
    """Exact quantiles (numpy's "linear" method) of values sent to one or more targets each.

    Entry ``i`` (value ``value[i]`` occurring ``count[i]`` times, from source row ``row[i]``)
    belongs to every target ``target[start[r] : start[r] + reps[r]]`` of its row ``r``: a leaf
    row of a rollup and each of its ancestors, say. One pass over the entries in value order,
    no sort per target.

    Parameters
    ----------
    row : int64[n]
        Source row of each entry.
    value : float64[n]
        Values, non-decreasing (the caller sorts them once).
    count : int64[n]
        How often each value occurs (>= 1).
    start, reps : int64[rows]
        Where each source row's targets start in ``target``, and how many it has.
    target : int64[m]
        Target of each (source row, k).
    n_targets : int
        Number of targets.
    qs : float64[nq]
        Quantiles in [0, 1].

    Returns
    -------
    float64[nq, n_targets]
        ``numpy.quantile(numpy.repeat(values of the target, counts), q)``; NaN without values.
    """
    nq = qs.shape[0]
    n = row.shape[0]
    total = np.zeros(n_targets, dtype=np.int64)
    for i in range(n):
        r = row[i]
        for k in range(reps[r]):
            total[target[start[r] + k]] += count[i]
    lo = np.full((nq, n_targets), -1, dtype=np.int64)
    hi = np.full((nq, n_targets), -1, dtype=np.int64)
    frac = np.zeros((nq, n_targets))
    for q in range(nq):
        for t in range(n_targets):
            if total[t] > 0:
                h = (total[t] - 1) * qs[q]
                low = np.int64(np.floor(h))
                lo[q, t] = low
                hi[q, t] = min(low + 1, total[t] - 1)
                frac[q, t] = h - low
    v_lo = np.full((nq, n_targets), np.nan)
    v_hi = np.full((nq, n_targets), np.nan)
    seen = np.zeros(n_targets, dtype=np.int64)
    for i in range(n):
        r = row[i]
        v = value[i]
        c = count[i]
        for k in range(reps[r]):
            t = target[start[r] + k]
            s0 = seen[t]
            s1 = s0 + c
            for q in range(nq):
                if s0 <= lo[q, t] < s1:
                    v_lo[q, t] = v
                if s0 <= hi[q, t] < s1:
                    v_hi[q, t] = v
            seen[t] = s1
    out = np.full((nq, n_targets), np.nan)
    for q in range(nq):
        for t in range(n_targets):
            if total[t] > 0:
                f = frac[q, t]
                diff = v_hi[q, t] - v_lo[q, t]
                # numpy's _lerp: from the nearer end for f >= 0.5
                if f >= 0.5:
                    out[q, t] = v_hi[q, t] - diff * (1 - f)
                else:
                    out[q, t] = v_lo[q, t] + diff * f
    return out
