"""One dictionary of the distinct values of every tokenized column of a partition.

Tokens depend on the value and the key only, so all tokenized columns (caller, callee, MSISDN,
call id, ...) share one dictionary and each distinct value is hashed once. Building it is the
larger part of the work once hashing is cheap, so it is built the cheap way for each kind of
value:

- numbers (``+`` and up to 17 digits, the E.164 numbers and extensions the loaders write) are
  packed into one int64 each (:func:`_number_keys`) and factorized as integers, several times
  faster than hashing their strings;
- other values go through one Arrow ``dictionary_encode``;
- a column whose other values are nearly all distinct (SIP Call-IDs) is not hashed into a
  dictionary at all: its rows are their own dictionary (hashing a value that occurs once costs
  more than the HMAC it would save).

Numba kernels take NumPy arrays only; the raw values never leave this process's memory.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from cemkit import arrowstr, config

_jit = njit(cache=config.NUMBA_CACHE, nogil=config.NUMBA_NOGIL)

#: Key of a row that is not a packable number / of a null row.
NOT_A_NUMBER = -1
NULL = -2
_MAX_DIGITS = 17  # 10**17 < 2**57
_DIGIT_SHIFT = 57
_PLUS_BIT = 62
#: Rows of a column's other values from which a near-distinct column is recognized by a sample.
_SAMPLE = 1 << 14
_SAMPLE_MIN_ROWS = 1 << 16
#: Share of distinct values in the sample above which a column's rows are their own dictionary.
_NEARLY_DISTINCT = 0.97


@_jit
def _number_keys(offsets: np.ndarray, data: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """An int64 per value: ``+`` flag, digit count and digits packed, or NOT_A_NUMBER / NULL."""
    n = offsets.size - 1
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        if not valid[i]:
            out[i] = NULL
            continue
        lo, hi = offsets[i], offsets[i + 1]
        plus = 0
        if hi > lo and data[lo] == 0x2B:
            plus = 1
            lo += 1
        ndigits = hi - lo
        if ndigits < 1 or ndigits > _MAX_DIGITS:
            out[i] = NOT_A_NUMBER
            continue
        value = 0
        for j in range(lo, hi):
            d = data[j] - 0x30
            if d < 0 or d > 9:
                value = -1
                break
            value = value * 10 + d
        if value < 0:
            out[i] = NOT_A_NUMBER
        else:
            out[i] = (plus << _PLUS_BIT) | (ndigits << _DIGIT_SHIFT) | value
    return out


@_jit
def _format_number_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The strings packed by :func:`_number_keys` (offsets, bytes): digits keep leading zeros."""
    n = keys.size
    offsets = np.empty(n + 1, dtype=np.int64)
    offsets[0] = 0
    for i in range(n):
        k = keys[i]
        offsets[i + 1] = offsets[i] + ((k >> _PLUS_BIT) & 1) + ((k >> _DIGIT_SHIFT) & 31)
    out = np.empty(offsets[n], dtype=np.uint8)
    for i in range(n):
        k = keys[i]
        p = offsets[i]
        if (k >> _PLUS_BIT) & 1:
            out[p] = 0x2B
            p += 1
        value = k & ((1 << _DIGIT_SHIFT) - 1)
        for j in range(offsets[i + 1] - 1, p - 1, -1):
            out[j] = 0x30 + value % 10
            value //= 10
    return offsets, out


@_jit
def _slot(k: np.int64, mask: int) -> np.int64:
    return np.int64(((np.uint64(k) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(24))
                    & np.uint64(mask))  # fmt: skip


#: Code of a row that is not a packable number (its value goes to the other values' dictionary).
OTHER = -3


@_jit
def _number_codes(
    keys: np.ndarray, slot_key: np.ndarray, slot_code: np.ndarray, uniques: np.ndarray, m: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Each row's code among the distinct numbers of all columns so far (:func:`_number_keys`).

    ``pd.factorize`` of the packed numbers with its open-addressing table carried from one
    column to the next (no concatenation of the columns' keys, no masks): codes are numbered in
    first-seen order over
    the columns in the order given (``uniques[:m]`` the packed numbers); a null row gets -1, a
    row that is not a packable number :data:`OTHER`. The table is two arrays, a slot's key and
    its code (half full at most); a row whose number is the previous row's reuses its code.
    Returns the codes, the (maybe grown) table and the new count.
    """
    n = keys.size
    codes = np.empty(n, dtype=np.int64)
    mask = slot_key.size - 1
    last_key = np.int64(NULL)
    last_code = np.int64(-1)
    for i in range(n):
        key = keys[i]
        if key < 0:
            codes[i] = -1 if key == NULL else OTHER
            continue
        if key == last_key:
            codes[i] = last_code
            continue
        j = _slot(key, mask)
        while True:
            c = slot_code[j]
            if c < 0:
                slot_key[j] = key
                slot_code[j] = m
                uniques[m] = key
                c = m
                m += 1
                if 2 * m > mask + 1:  # half full: re-insert the distinct numbers, twice the size
                    size = 2 * (mask + 1)
                    mask = size - 1
                    slot_key = np.empty(size, dtype=np.int64)
                    slot_code = np.full(size, -1, dtype=np.int64)
                    for u in range(m):
                        g = _slot(uniques[u], mask)
                        while slot_code[g] >= 0:
                            g = (g + 1) & mask
                        slot_key[g] = uniques[u]
                        slot_code[g] = u
                break
            if slot_key[j] == key:
                break
            j = (j + 1) & mask
        codes[i] = c
        last_key, last_code = key, c
    return codes, slot_key, slot_code, m


def _nearly_distinct(values: pa.Array) -> bool:
    if len(values) < _SAMPLE_MIN_ROWS:
        return False
    step = max(1, len(values) // _SAMPLE)
    sample = values.take(pa.array(np.arange(0, len(values), step)[:_SAMPLE]))
    return len(pc.unique(sample)) >= _NEARLY_DISTINCT * len(sample)


def build(columns: list[pa.Array]) -> tuple[pa.Array, list[np.ndarray]]:
    """One dictionary of the values of ``columns`` (Arrow strings), and each one's codes.

    ``columns`` may be ``string`` or ``large_string`` arrays, or both. Returns the dictionary
    (large_string, no nulls) and, per column, int64 codes into it with -1 for nulls. Each
    distinct number and each distinct other value of the ordinary columns appears once; the
    rows of a near-distinct column are appended as they are.
    """
    total = sum(len(a) for a in columns)
    # the table sized for every row to be distinct (up to 2**16 slots, then grown): a
    # micro-batch's (~12K values) is not grown twice on the way (the codes do not depend on it)
    size = 1 << max(12, min(16, (2 * total).bit_length()))
    slot_key = np.empty(size, dtype=np.int64)
    slot_code = np.full(size, -1, dtype=np.int64)
    uniques = np.empty(total, dtype=np.int64)
    m = 0
    found: list[np.ndarray] = []
    for arr in columns:  # the numbers of every column into one table, column after column
        keys = _number_keys(*arrowstr.buffers(arr))
        codes, slot_key, slot_code, m = _number_codes(keys, slot_key, slot_code, uniques, m)
        found.append(codes)
    parts = [arrowstr.from_buffers(*_format_number_keys(uniques[:m]), large=True)]
    size = m

    # the other values: one Arrow dictionary over the ordinary columns, rows of the others
    pooled, pooled_rows = [], []
    for arr, codes in zip(columns, found, strict=True):
        other = codes == OTHER
        if not other.any():
            continue
        everything = other.all()
        rows = slice(None) if everything else np.flatnonzero(other)
        values = arr if everything else arr.filter(pa.array(other))
        if _nearly_distinct(values):
            codes[rows] = size + np.arange(len(values))
            parts.append(values if pa.types.is_large_string(values.type)
                         else values.cast(pa.large_string()))  # fmt: skip
            size += len(values)
        else:
            pooled.append(values)
            pooled_rows.append((codes, rows))
    if pooled:
        if len({v.type for v in pooled}) > 1:  # string and large_string columns together
            pooled = [v.cast(pa.large_string()) for v in pooled]
        encoded = pa.chunked_array(pooled, pooled[0].type).dictionary_encode()
        dictionary = encoded.chunks[-1].dictionary
        for chunk, (codes, rows) in zip(encoded.chunks, pooled_rows, strict=True):
            if not (chunk.dictionary is dictionary or chunk.dictionary.equals(dictionary)):
                raise AssertionError("dictionary_encode gave chunks different dictionaries")
            codes[rows] = size + chunk.indices.to_numpy(zero_copy_only=False)
        parts.append(dictionary.cast(pa.large_string()))
        size += len(dictionary)
    dictionary = pa.concat_arrays(parts) if len(parts) > 1 else parts[0]
    return dictionary, found


@_jit
def _is_row_position(data: np.ndarray, lo: int, hi: int) -> bool:
    """Whether ``data[lo:hi]`` is ``0|[1-9][0-9]{0,8}`` (a row position, not a number)."""
    if hi <= lo or hi - lo > 9 or (data[lo] == 0x30 and hi - lo > 1):
        return False
    for j in range(lo, hi):  # noqa: SIM110 - a loop, not a generator, in jitted code
        if not 0x30 <= data[j] <= 0x39:
            return False
    return True


@njit(inline="always")
def _has_digit_run(data: np.ndarray, lo: int, end: int, run: int, max_gap: int) -> bool:
    """Whether ``data[lo:end]`` has ``run`` digits, at most ``max_gap`` separators between two."""
    digits = 0
    gap = 0
    for j in range(lo, end):
        c = data[j]
        if 0x30 <= c <= 0x39:
            digits = digits + 1 if gap <= max_gap else 1
            gap = 0
            if digits >= run:
                return True
        elif digits and (c == 0x20 or c == 0x2E or c == 0x28 or c == 0x29 or c == 0x2F
                         or c == 0x2D):  # fmt: skip
            gap += 1
            if gap > max_gap:
                digits = 0
                gap = 0
        else:
            digits = 0
            gap = 0
    return False


@_jit
def _digit_run_flags(offsets: np.ndarray, data: np.ndarray, valid: np.ndarray, run: int,
                     max_gap: int) -> np.ndarray:  # fmt: skip
    r"""Whether each value may hold a number in its source or file tag (a superset of a regex).

    True when a run of ``run`` digits (up to ``max_gap`` separators ``[ .()/-]`` between two)
    ends before the value's last ``:``, or, in a value with fewer than two ``:``, anywhere: the
    regex ``\d(?:[ .()/-]{0,2}\d){6}`` followed by ``.*:``, or without ``:.*:``, of
    :class:`cemkit.privacy.operators.keep.KeepSourceName`; in an id ``source:position`` (one
    ``:``, a plain decimal position below 10^9), in the source only. True for every value the
    regexes match (and for any value with a newline), checked against them.

    Record ids of one file share everything before their last ``:`` (``source:tag``): what
    was found there is remembered while the next value starts with the same bytes (compared,
    not scanned again); only the part after the last ``:`` is read for each row.
    """
    n = offsets.size - 1
    out = np.zeros(n, dtype=np.bool_)
    head_lo, head_len = 0, -1  # the previous value's part before its last ':'
    head_colons, head_newline, head_run = 0, False, False
    for i in range(n):
        if not valid[i]:
            continue
        lo, hi = offsets[i], offsets[i + 1]
        last = hi - 1
        while last >= lo and data[last] != 0x3A:
            last -= 1
        tail_newline = False
        for j in range(last + 1, hi):
            if data[j] == 0x0A:
                tail_newline = True
        if tail_newline:  # the regexes' ``.`` stops at a newline: leave such an id to them
            out[i] = True
            continue
        if last < lo:  # no ':': the whole value
            out[i] = _has_digit_run(data, lo, hi, run, max_gap)
            continue
        size = last - lo
        same = size == head_len
        if same:
            for j in range(size):
                if data[lo + j] != data[head_lo + j]:
                    same = False
                    break
        if not same:
            head_lo, head_len = lo, size
            head_colons, head_newline = 0, False
            for j in range(lo, last):
                if data[j] == 0x3A:
                    head_colons += 1
                elif data[j] == 0x0A:
                    head_newline = True
            head_run = _has_digit_run(data, lo, last, run, max_gap)
        if head_newline:
            out[i] = True
        elif head_colons >= 1 or _is_row_position(data, last + 1, hi):
            # two ':' or more, or ``source:position``: the part before the last ':' only
            out[i] = head_run
        else:  # one ':' and no row position after it: the whole value
            out[i] = _has_digit_run(data, lo, hi, run, max_gap)
    return out


def may_hold_numbers(values: pa.Array) -> bool:
    """Whether any record id may hold a number in its source or file tag (a cheap prefilter)."""
    if len(values) == 0:
        return False
    return bool(_digit_run_flags(*arrowstr.buffers(values), 7, 2).any())
