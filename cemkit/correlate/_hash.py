"""A 64-bit hash of Arrow strings for the Dask shuffle's buckets (NumPy arrays in, no pandas).

FNV-1a over each value's UTF-8 bytes, finished by the splitmix64 mixer so that nearby values
spread over all 64 bits; a null hashes to a constant of its own. The same bytes give the same
hash in every process (no per-process seed, unlike Python's ``hash``): equal keys of two frames
shuffled apart still meet in one partition. pandas' ``hash_pandas_object`` gives the same
guarantee but builds a Python object per distinct string, which cost ~10 % of a 10M-record run
for keys that are nearly all distinct (call references).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from cemkit import config

_jit = njit(cache=config.NUMBA_CACHE, nogil=config.NUMBA_NOGIL)
#: A position in a buffer, as jitted callers pass it (a Python or a NumPy integer).
_Index = int | np.integer

FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)
#: What a null value hashes to (before the column is mixed in).
NULL_HASH = np.uint64(0x9E3779B97F4A7C15)


@_jit
def mix64(h: np.uint64) -> np.uint64:
    """The splitmix64 finalizer (a bijection of 64-bit integers)."""
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


@_jit
def hash_strings(offsets: np.ndarray, data: np.ndarray, valid: np.ndarray,
                 into: np.ndarray) -> None:  # fmt: skip
    """Mix each value's hash into ``into`` (uint64, one per value), in place.

    ``offsets``, ``data``, ``valid`` as :func:`cemkit.arrowstr.buffers` gives them. Mixing is
    ``into = mix64(into * FNV_PRIME + h)``, so several key columns make one hash, in order.
    """
    for i in range(offsets.size - 1):
        if valid[i]:
            h = FNV_OFFSET
            for j in range(offsets[i], offsets[i + 1]):
                h = (h ^ np.uint64(data[j])) * FNV_PRIME
            h = mix64(h)
        else:
            h = NULL_HASH
        into[i] = mix64(into[i] * FNV_PRIME + h)


@_jit
def _fnv_bytes(h: np.uint64, offsets: np.ndarray, data: np.ndarray, i: int) -> np.uint64:
    """FNV-1a of value ``i``'s bytes continued from ``h``."""
    for j in range(offsets[i], offsets[i + 1]):
        h = (h ^ np.uint64(data[j])) * FNV_PRIME
    return h


@_jit
def hash_call_buckets(ref_offsets: np.ndarray, ref_data: np.ndarray, ref_valid: np.ndarray,
                      a_offsets: np.ndarray, a_data: np.ndarray, a_valid: np.ndarray,
                      b_offsets: np.ndarray, b_data: np.ndarray, b_valid: np.ndarray
                      ) -> np.ndarray:  # fmt: skip
    """:func:`hash_strings` of stitch's bucket text, without building the text.

    The text of a row is ``"c" + ref`` when it has a call reference, else ``"p" + a + US + b``
    (US: the byte 0x1F; a null party as ""): FNV-1a runs over those bytes piece by piece, so
    the hash (a one-column :func:`hash_strings` into zeros) is that of the built strings.
    """
    n = ref_offsets.size - 1
    out = np.empty(n, np.uint64)
    for i in range(n):
        h = FNV_OFFSET
        if ref_valid[i]:
            h = (h ^ np.uint64(99)) * FNV_PRIME  # "c"
            h = _fnv_bytes(h, ref_offsets, ref_data, i)
        else:
            h = (h ^ np.uint64(112)) * FNV_PRIME  # "p"
            if a_valid[i]:
                h = _fnv_bytes(h, a_offsets, a_data, i)
            h = (h ^ np.uint64(0x1F)) * FNV_PRIME
            if b_valid[i]:
                h = _fnv_bytes(h, b_offsets, b_data, i)
        out[i] = mix64(mix64(h))  # mix64(0 * FNV_PRIME + mix64(h)), as hash_strings mixes
    return out


@njit(inline="always")
def same_bytes(a: np.ndarray, i: _Index, b: np.ndarray, j: _Index, n: _Index) -> bool:
    """Whether ``a[i:i + n]`` and ``b[j:j + n]`` hold the same bytes (inlined where called)."""
    for k in range(n):  # noqa: SIM110 - Numba compiles no generator expression in all()
        if a[i + k] != b[j + k]:
            return False
    return True


@_jit
def _same_value(offsets: np.ndarray, data: np.ndarray, i: int, j: int) -> bool:
    """Whether values ``i`` and ``j`` hold the same bytes."""
    n = offsets[i + 1] - offsets[i]
    return offsets[j + 1] - offsets[j] == n and same_bytes(data, offsets[i], data, offsets[j], n)


@_jit
def codes_at(offsets: np.ndarray, data: np.ndarray, valid: np.ndarray,
             rows: np.ndarray) -> tuple[np.ndarray, int]:  # fmt: skip
    """Dense codes of the values at ``rows``: equal bytes, equal codes; a null a code of its own.

    ``offsets``, ``data``, ``valid`` as :func:`cemkit.arrowstr.buffers` gives them. Codes are
    ``0 .. k - 1`` in order of first appearance in ``rows`` (a hash table of the distinct
    values, their bytes compared: exact, linear in ``rows``, no Arrow call and no string
    built). Returns the codes (int64, one per row of ``rows``) and ``k``.
    """
    n = rows.shape[0]
    size = 2
    while size < 2 * n:
        size *= 2
    mask = np.uint64(size - 1)
    held = np.full(size, -1, np.int64)  # the row holding the slot's value
    code_of = np.zeros(size, np.int64)
    codes = np.empty(n, np.int64)
    k = 0
    null_code = -1
    for i in range(n):
        r = rows[i]
        if not valid[r]:
            if null_code < 0:
                null_code = k
                k += 1
            codes[i] = null_code
            continue
        s = np.int64(mix64(_fnv_bytes(FNV_OFFSET, offsets, data, r)) & mask)
        while True:
            j = held[s]
            if j < 0:
                held[s] = r
                code_of[s] = k
                codes[i] = k
                k += 1
                break
            if _same_value(offsets, data, r, j):
                codes[i] = code_of[s]
                break
            s = (s + 1) & (size - 1)
    return codes, k
