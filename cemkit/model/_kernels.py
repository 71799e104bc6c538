"""Numba kernels of the service model: leading digits of numbers, longest-prefix match.

NumPy arrays in, NumPy arrays out; no pandas here (the stumpy pattern). Strings arrive as the
two buffers of an Arrow string array (``offsets``, ``data``), so no Python object is ever built
per customer.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from cemkit import config

_PLUS = 43  # '+'
_ZERO = 48
_NINE = 57

#: Largest number of digits compared (E.164 numbers have at most 15).
MAX_DIGITS = 15


@njit(cache=config.NUMBA_CACHE, nogil=config.NUMBA_NOGIL, fastmath=config.NUMBA_FASTMATH)
def leading_digits(offsets, data, valid, max_digits):  # pragma: no cover - compiled
    """Leading digits of each string as an integer, their count, and whether a '+' came first.

    Parameters
    ----------
    offsets : int64[n + 1]
        Arrow string offsets (already shifted to the array's own offset).
    data : uint8[:]
        Arrow string data buffer.
    valid : bool[n]
        False for null values (they get zero digits).
    max_digits : int
        Read at most this many digits (the kept prefix of protected numbers).

    Returns
    -------
    (int64[n], int8[n], bool[n])
        Value of the digits read, number of digits read, leading '+'.
    """
    n = offsets.shape[0] - 1
    value = np.zeros(n, dtype=np.int64)
    ndigits = np.zeros(n, dtype=np.int8)
    plus = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        if not valid[i]:
            continue
        pos = offsets[i]
        stop = offsets[i + 1]
        if pos < stop and data[pos] == _PLUS:
            plus[i] = True
            pos += 1
        v = np.int64(0)
        k = 0
        while pos < stop and k < max_digits:
            c = data[pos]
            if c < _ZERO or c > _NINE:
                break
            v = v * 10 + (c - _ZERO)
            k += 1
            pos += 1
        value[i] = v
        ndigits[i] = k
    return value, ndigits, plus


@njit(cache=config.NUMBA_CACHE, nogil=config.NUMBA_NOGIL, fastmath=config.NUMBA_FASTMATH)
def longest_prefix(value, ndigits, plus, table, starts, pow10):  # pragma: no cover - compiled
    """Index of the longest matching prefix of each number, or -1.

    Parameters
    ----------
    value, ndigits, plus : arrays from :func:`leading_digits`
    table : int64[m]
        Prefix values, grouped by (has '+', length) and sorted within each group.
    starts : int64[2 * (MAX_DIGITS + 1) + 1]
        Group ``(p, L)`` (``p`` 1 for a leading '+') occupies
        ``table[starts[p * (MAX_DIGITS + 1) + L] : starts[p * (MAX_DIGITS + 1) + L + 1]]``.
    pow10 : int64[MAX_DIGITS + 1]
        Powers of ten.

    Returns
    -------
    int64[n]
        Position in ``table`` of the longest prefix of each number, -1 when none matches.
    """
    n = value.shape[0]
    out = np.full(n, -1, dtype=np.int64)
    width = pow10.shape[0]
    for i in range(n):
        k = ndigits[i]
        base = width if plus[i] else 0
        for length in range(k, 0, -1):
            lo = starts[base + length]
            hi = starts[base + length + 1]
            if lo == hi:
                continue
            key = value[i] // pow10[k - length]
            # binary search in table[lo:hi]
            a = lo
            b = hi
            while a < b:
                mid = (a + b) >> 1
                if table[mid] < key:
                    a = mid + 1
                else:
                    b = mid
            if a < hi and table[a] == key:
                out[i] = a
                break
    return out
