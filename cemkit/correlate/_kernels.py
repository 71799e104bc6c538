"""Numba kernels of the correlators: NumPy arrays in, NumPy arrays out, no pandas.

Conventions shared by every kernel (the wrappers in :mod:`cemkit.correlate` prepare them):

* keys are dense non-negative ``int64`` codes (factorized pseudonymized numbers, call ids, ...);
  a negative key means "no key" (a null in a key column): such a row never matches anything;
* times are ``int64`` (nanoseconds since the epoch, or plain integers); :data:`NULL_TIME`
  (``numpy.iinfo(int64).min``, the bit pattern of ``NaT``) is a null time;
* ties are broken by row position (the row's index in the arrays), so the result is a pure function
  of the row order; the Dask wrappers restore the global row order inside each partition, which
  makes results independent of the partitioning.

Every kernel here has a slow, obviously-correct counterpart in ``tests/naive.py``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from cemkit import config
from cemkit.correlate._hash import mix64

#: Null time (the int64 bit pattern of NaT).
NULL_TIME = np.iinfo(np.int64).min

#: ``direction`` codes of :func:`asof_indices`.
BACKWARD, FORWARD, NEAREST = 0, 1, 2

#: Bits of the per-group flags returned by :func:`stitch_groups`.
FLAG_OUT_OF_ORDER = 1  #: a partial with a higher sequence number starts before a lower one
FLAG_MISSING = 2  #: the sequence numbers are not 1, 2, ..., n (a partial is missing)
FLAG_DUPLICATE = 4  #: two partials carry the same sequence number

_POOL = None


def _pool(threads):
    """A process-wide pool of Python threads for the GIL-free kernels (created on first use).

    Tasks submitted to it never submit tasks themselves, so concurrent callers cannot deadlock.
    """
    global _POOL
    from concurrent.futures import ThreadPoolExecutor

    if _POOL is None or _POOL._max_workers < threads:
        _POOL = ThreadPoolExecutor(max(2, threads), thread_name_prefix="cemkit-correlate")
    return _POOL


def _run_all(pool, fn, argsets):
    """Run ``fn(*args)`` for each argument tuple on ``pool``; wait for all, re-raise errors."""
    futures = [pool.submit(fn, *args) for args in argsets]
    return [f.result() for f in futures]


_jit = njit(cache=config.NUMBA_CACHE, nogil=config.NUMBA_NOGIL, fastmath=config.NUMBA_FASTMATH)

# Groups up to this size are sorted by insertion sort; larger ones by a stable merge sort.
_INSERTION_MAX = 48


# --- sorting ------------------------------------------------------------------------------------
@_jit
def _sort_segment(times, rows, lo, hi):
    """Stable sort of ``times[lo:hi]`` (and ``rows`` along) in place."""
    n = hi - lo
    if n <= 1:
        return
    if n <= _INSERTION_MAX:
        for i in range(lo + 1, hi):
            t = times[i]
            r = rows[i]
            j = i - 1
            while j >= lo and times[j] > t:
                times[j + 1] = times[j]
                rows[j + 1] = rows[j]
                j -= 1
            times[j + 1] = t
            rows[j + 1] = r
        return
    order = np.argsort(times[lo:hi], kind="mergesort")
    t_seg = times[lo:hi][order]
    r_seg = rows[lo:hi][order]
    times[lo:hi] = t_seg
    rows[lo:hi] = r_seg


@_jit
def _high_histogram(key, time, key_base, nkeys, low_bits):
    """Pass 1 of :func:`bucket_by_key`: row counts per high key digit, as offsets."""
    nhigh = ((nkeys - 1) >> low_bits) + 1
    hist = np.zeros(nhigh + 1, np.int64)
    for i in range(key.shape[0]):
        k = key[i] - key_base
        if 0 <= k < nkeys and time[i] != NULL_TIME:
            hist[(k >> low_bits) + 1] += 1
    for h in range(nhigh):
        hist[h + 1] += hist[h]
    return hist


@_jit
def _scatter_high(key, time, key_base, nkeys, low_bits, hist, rows, times, low):
    """Pass 2: valid rows into their high-digit region (stable), with their low key digit."""
    fill = hist[:-1].copy()
    mask = (1 << low_bits) - 1
    for i in range(key.shape[0]):
        k = key[i] - key_base
        if 0 <= k < nkeys and time[i] != NULL_TIME:
            p = fill[k >> low_bits]
            rows[p] = i
            times[p] = time[i]
            low[p] = k & mask
            fill[k >> low_bits] = p + 1


@_jit
def _sort_regions(hist, low_bits, nkeys, rows, times, low, offsets, h0, h1):
    """Pass 3 of :func:`bucket_by_key`, for the high regions ``h0 <= h < h1``.

    Counting sort of each region by the low key digit through a small scratch buffer (the region
    stays in cache), then each key's rows sorted by time.
    """
    nlow = 1 << low_bits
    count = np.zeros(nlow + 1, np.int64)
    biggest = 0
    for h in range(h0, h1):
        biggest = max(biggest, hist[h + 1] - hist[h])
    r_scr = np.empty(biggest, rows.dtype)
    t_scr = np.empty(biggest, np.int64)
    for h in range(h0, h1):
        lo = hist[h]
        hi = hist[h + 1]
        count[:] = 0
        for p in range(lo, hi):
            count[low[p] + 1] += 1
        for d in range(nlow):
            count[d + 1] += count[d]
        kbase = h << low_bits
        for d in range(nlow):
            if kbase + d < nkeys:
                offsets[kbase + d] = lo + count[d]
        for p in range(lo, hi):
            d = low[p]
            q = count[d]
            r_scr[q] = rows[p]
            t_scr[q] = times[p]
            count[d] = q + 1
        rows[lo:hi] = r_scr[: hi - lo]
        times[lo:hi] = t_scr[: hi - lo]
        for d in range(nlow):
            k = kbase + d
            if k < nkeys:
                _sort_segment(times, rows, offsets[k], lo + count[d])


def bucket_by_key(key, time, key_base, nkeys, threads=1):
    """Rows grouped by key, and sorted by time inside each key (stable: ties keep row order).

    A two-level counting sort that keeps its working set in cache: rows are first scattered by
    the high bits of the key into about a thousand regions (one sequential pass), then each region
    is counting-sorted by the low bits and each key's rows are sorted by time while the region is
    still in cache. Rows with a key outside ``[key_base, key_base + nkeys)`` or a null time are
    dropped.

    Parameters
    ----------
    key : int64 array
        Key of each row.
    time : int64 array
        Time of each row.
    key_base, nkeys : int
        Offset subtracted from the keys, and the number of distinct key codes.
    threads : int
        Threads for the per-region pass.

    Returns
    -------
    offsets : int64 array (nkeys + 1)
        Rows of key ``k`` are ``rows[offsets[k]:offsets[k + 1]]``.
    rows : int32 array (int64 beyond 2**31 rows)
        Row positions, grouped by key and sorted by time within a key.
    times : int64 array
        ``time[rows]``.
    """
    bits = max(1, int(nkeys - 1).bit_length())
    low_bits = max(0, min(16, bits - 10))
    hist = _high_histogram(key, time, key_base, nkeys, low_bits)
    m = int(hist[-1])
    rows = np.empty(m, np.int32 if key.shape[0] < 2**31 - 1 else np.int64)
    times = np.empty(m, np.int64)
    low = np.empty(m, np.uint16)
    _scatter_high(key, time, key_base, nkeys, low_bits, hist, rows, times, low)
    offsets = np.empty(nkeys + 1, np.int64)
    offsets[nkeys] = m
    nhigh = hist.shape[0] - 1
    if threads > 1 and nhigh > 1:
        cuts = np.linspace(0, nhigh, threads + 1).astype(np.int64)
        _run_all(
            _pool(threads), _sort_regions,
            [(hist, low_bits, nkeys, rows, times, low, offsets, cuts[c], cuts[c + 1])
             for c in range(threads)],
        )  # fmt: skip
    else:
        _sort_regions(hist, low_bits, nkeys, rows, times, low, offsets, 0, nhigh)
    return offsets, rows, times


def key_time_order(key, time):
    """Rows with a valid key and time, grouped by key, each key's rows in (time, row) order.

    The keys themselves come in the order of a hash of the key (not ascending): what every
    correlator keyed by one key needs is each key's rows together and in time order, and a
    counting sort by hash (:func:`grouped_order`) gives that in linear time, several times
    faster than a stable ``lexsort`` of (key, time). This order serves every correlator keyed by
    the same key: a subset of its rows, kept in this order, is ordered the same way (see
    :func:`restrict_order`).
    """
    return grouped_order(key, time)


@_jit
def _sort_bucket(rows, keys, times, lo, hi):
    """Sort ``rows[lo:hi]`` (and ``keys``, ``times`` along) by (key, time), stably."""
    if hi - lo > _INSERTION_MAX:
        o = np.argsort(times[lo:hi], kind="mergesort")
        o = o[np.argsort(keys[lo:hi][o], kind="mergesort")]
        rows[lo:hi] = rows[lo:hi][o]
        keys[lo:hi] = keys[lo:hi][o]
        times[lo:hi] = times[lo:hi][o]
        return
    for a in range(lo + 1, hi):
        r = rows[a]
        k = keys[a]
        t = times[a]
        c = a - 1
        while c >= lo and (keys[c] > k or (keys[c] == k and times[c] > t)):
            rows[c + 1] = rows[c]
            keys[c + 1] = keys[c]
            times[c + 1] = times[c]
            c -= 1
        rows[c + 1] = r
        keys[c + 1] = k
        times[c + 1] = t


@_jit
def _grouped_order(key, time, high_bits, low_bits):
    """:func:`grouped_order`: ``2**high_bits`` regions of ``2**low_bits`` hash buckets each."""
    n = key.shape[0]
    nhigh = 1 << high_bits
    nlow = 1 << low_bits
    count = np.zeros(nhigh + 1, np.int64)
    for i in range(n):
        if key[i] >= 0 and time[i] != NULL_TIME:
            count[np.int64(mix64(np.uint64(key[i])) >> np.uint64(64 - high_bits)) + 1] += 1
    for b in range(nhigh):
        count[b + 1] += count[b]
    m = count[nhigh]
    fill = count[:nhigh].copy()
    rows = np.empty(m, np.int64)
    keys = np.empty(m, np.int64)
    times = np.empty(m, np.int64)
    for i in range(n):  # pass 1, stable: each region's rows in row order
        if key[i] >= 0 and time[i] != NULL_TIME:
            region = np.int64(mix64(np.uint64(key[i])) >> np.uint64(64 - high_bits))
            q = fill[region]
            rows[q] = i
            keys[q] = key[i]
            times[q] = time[i]
            fill[region] = q + 1
    lmask = np.uint64(nlow - 1)
    lshift = np.uint64(64 - high_bits - low_bits)
    biggest = 0
    for b in range(nhigh):
        biggest = max(biggest, count[b + 1] - count[b])
    r_scr = np.empty(biggest, np.int64)
    k_scr = np.empty(biggest, np.int64)
    t_scr = np.empty(biggest, np.int64)
    sub = np.zeros(nlow + 1, np.int64)
    for b in range(nhigh):  # pass 2, in cache: each region by its low bucket, then each bucket
        lo = count[b]
        hi = count[b + 1]
        if hi - lo <= 1:
            continue
        if low_bits == 0:  # one bucket a region (a small batch): the region is the bucket
            _sort_bucket(rows, keys, times, lo, hi)
            continue
        sub[:] = 0
        for p in range(lo, hi):
            sub[np.int64((mix64(np.uint64(keys[p])) >> lshift) & lmask) + 1] += 1
        for d in range(nlow):
            sub[d + 1] += sub[d]
        for p in range(lo, hi):
            slot = np.int64((mix64(np.uint64(keys[p])) >> lshift) & lmask)
            q = sub[slot]
            r_scr[q] = rows[p]
            k_scr[q] = keys[p]
            t_scr[q] = times[p]
            sub[slot] = q + 1
        rows[lo:hi] = r_scr[: hi - lo]
        keys[lo:hi] = k_scr[: hi - lo]
        times[lo:hi] = t_scr[: hi - lo]
        prev = lo
        for d in range(nlow):  # sub[d] is now the end of bucket d
            end = lo + sub[d]
            if end - prev > 1:
                _sort_bucket(rows, keys, times, prev, end)
            prev = end
    return rows, keys, times


def grouped_order(key, time):
    """Rows with ``key >= 0`` and a non-null ``time``, grouped by key, each key by (time, row).

    A two-level counting sort of the rows by a hash of their key into about ``n / 4`` buckets
    (the rows scattered into ~1,000 regions in one sequential pass, then each region sorted by
    its buckets while it is in cache), each bucket, a few rows, sorted by (key, time) stably.
    Equal keys land in one bucket, so each key's rows are contiguous; the keys follow their hash.
    """
    return grouped_order_gathered(key, time)[0]


def grouped_order_gathered(key, time):
    """:func:`grouped_order`, with ``key`` and ``time`` in that order: ``(rows, keys, times)``.

    The sort moves the keys and times along with the rows, so a kernel that reads them in the
    order gets them without a gather (a random read per row each).
    """
    n = key.shape[0]
    nbits = max(1, (max(n, 1) // 4).bit_length())  # about 4 rows a bucket
    high_bits = min(10, nbits)
    return _grouped_order(key, time, high_bits, nbits - high_bits)


# --- a key of several integer columns, hashed and checked --------------------------------------
#: Seed of :func:`hash_key` (the splitmix64 increment).
_KEY_SEED = np.uint64(0x9E3779B97F4A7C15)


@_jit
def hash_key(parts, null):
    """One non-negative int64 key per row hashed from the columns ``parts``; -1 where ``null``.

    ``parts`` is a tuple of int64 arrays (the columns' integer codes, token bits, ...). Equal
    tuples of values give equal keys; two unequal tuples give equal keys only by a 64-bit hash
    collision, which :func:`runs_agree` detects on the order the kernels then use, so a caller
    that checks it keys its rows exactly (without a hash table to renumber them densely).
    """
    n = null.shape[0]
    key = np.empty(n, np.int64)
    for i in range(n):
        if null[i]:
            key[i] = -1
            continue
        h = _KEY_SEED
        for c in range(len(parts)):
            h = mix64(h ^ np.uint64(parts[c][i]))
        key[i] = np.int64(h >> np.uint64(1))
    return key


@_jit
def runs_agree(order, key, parts):
    """Whether the rows of each run of equal ``key[order]`` hold equal values in every ``parts``.

    ``order`` groups rows by key (:func:`grouped_order`); each row is compared with the first row
    of its run, so true means that equal keys are equal tuples for every row in ``order``.
    """
    head = -1
    for p in range(order.shape[0]):
        r = order[p]
        if head < 0 or key[r] != key[head]:
            head = r
            continue
        for c in range(len(parts)):
            if parts[c][r] != parts[c][head]:
                return False
    return True


@_jit
def _repeated(key, high_bits):
    n = key.shape[0]
    nhigh = 1 << high_bits
    shift = np.uint64(64 - high_bits)
    count = np.zeros(nhigh + 1, np.int64)
    for i in range(n):
        if key[i] >= 0:
            count[np.int64(mix64(np.uint64(key[i])) >> shift) + 1] += 1
    for b in range(nhigh):
        count[b + 1] += count[b]
    fill = count[:nhigh].copy()
    keys = np.empty(count[nhigh], np.int64)
    rows = np.empty(count[nhigh], np.int64)
    for i in range(n):
        if key[i] >= 0:
            region = np.int64(mix64(np.uint64(key[i])) >> shift)
            keys[fill[region]] = key[i]
            rows[fill[region]] = i
            fill[region] += 1
    out = np.zeros(n, np.bool_)
    for b in range(nhigh):  # each region (a few hundred rows, in cache) sorted by key
        lo = count[b]
        hi = count[b + 1]
        if hi - lo < 2:
            continue
        o = np.argsort(keys[lo:hi])
        for p in range(1, hi - lo):
            if keys[lo + o[p]] == keys[lo + o[p - 1]]:
                out[rows[lo + o[p]]] = True
                out[rows[lo + o[p - 1]]] = True
    return out


def repeated(key):
    """Whether each row's key (``>= 0``) is also another row's: one counting pass, no hash table.

    The rows are scattered by a hash of their key into regions of a few hundred rows, each
    region sorted on its own while it is in cache. Negative keys are never repeated.
    """
    n = key.shape[0]
    high_bits = max(1, min(16, (max(n, 1) // 256).bit_length()))
    return _repeated(key, high_bits)


@_jit
def restrict_order(order, keep):
    """The rows of ``order`` with ``keep[row]``, renumbered to positions among the kept rows.

    ``keep`` is a bool mask over the rows; row ``r`` becomes the number of kept rows before it, so
    the result is the order of the frame of the kept rows (in their input order).
    """
    n = keep.shape[0]
    new = np.full(n, -1, np.int64)
    c = 0
    for i in range(n):
        if keep[i]:
            new[i] = c
            c += 1
    m = 0
    for p in range(order.shape[0]):
        if keep[order[p]]:
            m += 1
    out = np.empty(m, np.int64)
    m = 0
    for p in range(order.shape[0]):
        r = order[p]
        if keep[r]:
            out[m] = new[r]
            m += 1
    return out


@_jit
def _sort_runs2(order, key, primary, secondary):
    """Sort each run of equal ``key[order]`` by (primary, secondary, row) in place (stable)."""
    m = order.shape[0]
    lo = 0
    while lo < m:
        hi = lo + 1
        while hi < m and key[order[hi]] == key[order[lo]]:
            hi += 1
        if hi - lo > _INSERTION_MAX:
            sub = order[lo:hi].copy()
            o = np.argsort(secondary[sub], kind="mergesort")
            o = o[np.argsort(primary[sub[o]], kind="mergesort")]
            order[lo:hi] = sub[o]
        elif hi - lo > 1:
            for a in range(lo + 1, hi):
                r = order[a]
                b = a - 1
                while b >= lo and (
                    primary[order[b]] > primary[r]
                    or (primary[order[b]] == primary[r] and secondary[order[b]] > secondary[r])
                ):
                    order[b + 1] = order[b]
                    b -= 1
                order[b + 1] = r
        lo = hi


# --- asof ---------------------------------------------------------------------------------------
@_jit
def asof_sweep(
    l_off, l_rows, l_times, r_off, r_rows, r_times, k0, k1, tolerance, direction, allow_exact, out
):
    """Fill ``out[left row] = right row`` for the key groups ``k0 <= k < k1``.

    Both sides must be grouped by key and sorted by time inside each group (stably).
    ``tolerance < 0`` means no tolerance. Rows of ``out`` that find no match are left untouched.
    Ties follow :func:`pandas.merge_asof`: ``backward`` takes the last right row at the matching
    time, ``forward`` the first, ``nearest`` prefers the backward match when both are as near.
    """
    for k in range(k0, k1):
        llo = l_off[k]
        lhi = l_off[k + 1]
        rlo = r_off[k]
        rhi = r_off[k + 1]
        if llo == lhi or rlo == rhi:
            continue
        jb = rlo  # first right position with time > t (or >= t when exact matches are excluded)
        jf = rlo  # first right position with time >= t (or > t)
        for i in range(llo, lhi):
            t = l_times[i]
            if allow_exact:
                while jb < rhi and r_times[jb] <= t:
                    jb += 1
                while jf < rhi and r_times[jf] < t:
                    jf += 1
            else:
                while jb < rhi and r_times[jb] < t:
                    jb += 1
                while jf < rhi and r_times[jf] <= t:
                    jf += 1
            best = -1
            if direction != FORWARD and jb > rlo:
                d = t - r_times[jb - 1]
                if tolerance < 0 or d <= tolerance:
                    best = jb - 1
            if direction != BACKWARD and jf < rhi:
                d = r_times[jf] - t
                if (tolerance < 0 or d <= tolerance) and (best < 0 or d < t - r_times[best]):
                    best = jf
            if best >= 0:
                out[l_rows[i]] = r_rows[best]


def asof_indices(
    left_key, left_time, right_key, right_time, key_base, nkeys,
    tolerance=-1, direction=BACKWARD, allow_exact=True, threads=1,
):  # fmt: skip
    """For each left row, the position of its as-of right row, or -1.

    Not jitted itself: it runs the jitted, GIL-free steps (bucket each side by key, sort each
    group by time, sweep) on up to ``threads`` Python threads, splitting the work by side and then
    by key range. Takes and returns NumPy arrays only.

    Parameters
    ----------
    left_key, right_key : int64 arrays
        Keys (``key - key_base`` in ``[0, nkeys)``; others never match).
    left_time, right_time : int64 arrays
        Times; :data:`NULL_TIME` never matches.
    key_base, nkeys : int
        Offset and number of key codes.
    tolerance : int
        Largest time distance accepted (inclusive); negative for none.
    direction : int
        :data:`BACKWARD`, :data:`FORWARD` or :data:`NEAREST`.
    allow_exact : bool
        Whether equal times match (as in :func:`pandas.merge_asof`).
    threads : int
        Number of threads.

    Returns
    -------
    int64 array
        One right position per left row, -1 where nothing matches.
    """
    out = np.full(left_key.shape[0], -1, np.int64)
    if left_key.shape[0] == 0 or right_key.shape[0] == 0 or nkeys <= 0:
        return out
    threads = max(1, int(threads))
    chunks = np.linspace(0, nkeys, threads + 1).astype(np.int64)
    if threads > 1:
        pool = _pool(threads)
        (l_off, l_rows, l_times), (r_off, r_rows, r_times) = _run_all(
            pool, bucket_by_key,
            [(left_key, left_time, key_base, nkeys), (right_key, right_time, key_base, nkeys)],
        )  # fmt: skip
        # each side is grouped by key and sorted by time: sweep key ranges in parallel
        _run_all(
            pool, asof_sweep,
            [(l_off, l_rows, l_times, r_off, r_rows, r_times, chunks[c], chunks[c + 1],
              tolerance, direction, allow_exact, out) for c in range(threads)],
        )  # fmt: skip
    else:
        l_off, l_rows, l_times = bucket_by_key(left_key, left_time, key_base, nkeys)
        r_off, r_rows, r_times = bucket_by_key(right_key, right_time, key_base, nkeys)
        asof_sweep(
            l_off, l_rows, l_times, r_off, r_rows, r_times, 0, nkeys,
            tolerance, direction, allow_exact, out,
        )  # fmt: skip
    return out


# --- one-to-one nearest matching (pair_legs, match) ---------------------------------------------
@_jit
def nearest_pairs_sorted(order, key, time, side, tolerance):
    """:func:`nearest_pairs` on rows grouped by key in (time, row) order (:func:`key_time_order`).

    ``order`` may hold rows of any side (rows not of side 0 or 1 are skipped) but only rows with
    a valid key and time. Rows of two keys never pair, so the greedy acceptance in
    (distance, side-0 row, side-1 row) order is done key by key: one pass over the order, each
    key's few candidate pairs sorted on their own. The key, time and side are first gathered
    into the order (independent loads), so the pass reads them sequentially.
    """
    m = order.shape[0]
    ks = np.empty(m, np.int64)
    ts = np.empty(m, np.int64)
    sd = np.empty(m, np.int8)
    for p in range(m):
        r = order[p]
        ks[p] = key[r]
        ts[p] = time[r]
        sd[p] = side[r]
    return _nearest_pairs_run(order, ks, ts, sd, key.shape[0], tolerance)


@_jit
def _continues(prev_start, prev_end, prev_answered, start, window, close_on_answer):
    """Whether an attempt starting at ``start`` retries the previous one of its key (one intent).

    It does when it starts at most ``window`` after the previous attempt ended (or started, when
    its end is unknown), unless ``close_on_answer`` and the previous attempt was answered.
    """
    ref = prev_end if prev_end != NULL_TIME else prev_start
    return start - ref <= window and not (close_on_answer and prev_answered)


@_jit
def _most_candidates(ks, ts, sd, tolerance):
    """The most candidate pairs (side 0, side 1, within ``tolerance``) of one key.

    What :func:`_nearest_pairs_run` collects per key, counted: the room it needs.
    """
    m = ks.shape[0]
    most = 0
    lo = 0
    while lo < m:
        hi = lo + 1
        while hi < m and ks[hi] == ks[lo]:
            hi += 1
        count = 0
        for p in range(lo, hi):
            if sd[p] != 0:
                continue
            for step in (-1, 1):
                q = p + step
                while lo <= q < hi and abs(ts[q] - ts[p]) <= tolerance:
                    if sd[q] == 1:
                        count += 1
                    q += step
        most = max(most, count)
        lo = hi
    return most


@_jit
def _nearest_pairs_run(order, ks, ts, sd, n, tolerance):
    """:func:`nearest_pairs_sorted` on the key, time and side of the rows in ``order``'s order."""
    partner = np.full(n, -1, np.int64)
    m = order.shape[0]
    # room for the most candidates a key has, allocated once: arrays re-bound inside the loop
    # (grown as needed) made every run's accesses several times slower
    cap = max(1, _most_candidates(ks, ts, sd, tolerance))
    ci = np.empty(cap, np.int64)
    cj = np.empty(cap, np.int64)
    cd = np.empty(cap, np.int64)
    lo = 0
    while lo < m:
        k = ks[lo]
        hi = lo + 1
        while hi < m and ks[hi] == k:
            hi += 1
        count = 0
        for p in range(lo, hi):
            if sd[p] != 0:
                continue
            i = order[p]
            ti = ts[p]
            for step in (-1, 1):
                q = p + step
                while lo <= q < hi and abs(ts[q] - ti) <= tolerance:
                    if sd[q] == 1:
                        j = order[q]
                        ci[count] = i
                        cj[count] = j
                        cd[count] = abs(ts[q] - ti)
                        count += 1
                    q += step
        if count == 1:
            partner[ci[0]] = cj[0]
            partner[cj[0]] = ci[0]
        elif count > 1:
            if count <= _INSERTION_MAX:
                # a key's few candidates sorted by (distance, side-0 row, side-1 row) in place
                # (no arrays allocated per key: most keys have a handful)
                for a in range(1, count):
                    d, i, j = cd[a], ci[a], cj[a]
                    b = a - 1
                    while b >= 0 and (cd[b] > d or (cd[b] == d and (ci[b] > i
                                      or (ci[b] == i and cj[b] > j)))):  # fmt: skip
                        cd[b + 1], ci[b + 1], cj[b + 1] = cd[b], ci[b], cj[b]
                        b -= 1
                    cd[b + 1], ci[b + 1], cj[b + 1] = d, i, j
                for c in range(count):
                    i = ci[c]
                    j = cj[c]
                    if partner[i] < 0 and partner[j] < 0:
                        partner[i] = j
                        partner[j] = i
            else:
                o = np.argsort(cj[:count], kind="mergesort")
                o = o[np.argsort(ci[:count][o], kind="mergesort")]
                o = o[np.argsort(cd[:count][o], kind="mergesort")]
                for c in range(count):
                    i = ci[o[c]]
                    j = cj[o[c]]
                    if partner[i] < 0 and partner[j] < 0:
                        partner[i] = j
                        partner[j] = i
        lo = hi
    return partner


def nearest_pairs(key, time, side, tolerance):
    """One-to-one matching of side-0 rows to side-1 rows of the same key, nearest first.

    Candidate pairs are a side-0 and a side-1 row with the same (valid) key, non-null times and
    ``|time difference| <= tolerance``. They are accepted greedily in the order
    (time difference, side-0 row position, side-1 row position), each row at most once: the
    closest pairs are taken first, which is also the only stable matching when each row prefers
    the nearest partner.

    Parameters
    ----------
    key : int64 array
        Key of each row (negative: never matched).
    time : int64 array
        Time of each row (:data:`NULL_TIME`: never matched).
    side : int8 array
        0 or 1 for the two sides; any other value: never matched.
    tolerance : int
        Largest accepted time difference (inclusive).

    Returns
    -------
    int64 array
        Position of each row's partner, or -1.
    """
    return nearest_pairs_sorted(key_time_order(key, time), key, time, side, tolerance)


# --- pair legs, match xDRs, label intents: one order ----------------------------------------------
#: ``kind`` and ``leg`` codes of :func:`calls_sorted`.
CDR, XDR = 0, 1
ORIG, TERM = 0, 1


@_jit
def calls_sorted(order, key, parts, start, end, kind, leg, answered, pair_tolerance,
                 match_tolerance, window, close_on_answer):  # fmt: skip
    """Pair legs, then match xDRs on the rows left, then label intents on the rows left.

    ``order``: the rows with a valid key and start, grouped by key in (start, row) order
    (:func:`key_time_order`); ``parts``: the integer columns the key was hashed from
    (:func:`hash_key`), checked first as :func:`runs_agree` does. ``kind``: :data:`CDR`,
    :data:`XDR` or -1; ``leg``: :data:`ORIG`, :data:`TERM` or -1.

    The three steps of :func:`nearest_pairs` and :func:`session_groups` one after the other,
    each on the rows the previous one kept (a matched terminating leg, a matched xDR is
    dropped): the key, times and codes are gathered into the order once, and each step's rows
    are those of the previous one, compacted in the same order (a subset of rows in order is
    in order). Rows keep their positions in the input, which a selection renumbers in the same
    order, so ties are broken as on the selected frame.

    Returns
    -------
    ok : bool
        False when two rows of one key differ in ``parts`` (a hash collision); nothing else is
        computed then.
    pair, match : int64 arrays (n)
        Each row's paired leg, its matched xDR/CDR (row positions), or -1.
    label, rank : int64 arrays (n)
        Row position of the first attempt of each row's intent, and the attempt number - 1
        (for the rows both steps kept; a row outside ``order`` is an intent of its own).
    """
    m = order.shape[0]
    ks = np.empty(m, np.int64)
    ts = np.empty(m, np.int64)
    for p in range(m):
        ks[p] = key[order[p]]
        ts[p] = start[order[p]]
    code = call_codes(kind, leg, answered)
    return calls_in_order(order, ks, ts, key.shape[0], parts, end, code, pair_tolerance,
                          match_tolerance, window, close_on_answer)  # fmt: skip


@_jit
def call_codes(kind, leg, answered):
    """One int8 per row of :func:`calls_in_order`: ``kind + 1``, ``(leg + 1) << 2``, answered."""
    n = kind.shape[0]
    code = np.empty(n, np.int8)
    for i in range(n):
        code[i] = (kind[i] + 1) | ((leg[i] + 1) << 2) | (np.int8(answered[i]) << 4)
    return code


@_jit
def calls_in_order(order, ks, ts, n, parts, end, code, pair_tolerance, match_tolerance, window,
                   close_on_answer):  # fmt: skip
    """:func:`calls_sorted` given the key and start in the order of ``order``.

    ``ks``, ``ts``: what :func:`grouped_order_gathered` returns with it; ``kind``, ``leg``,
    ``answered`` as one :func:`call_codes` array: two random reads per row (``end``, ``code``)
    instead of six. ``n``: the number of rows. ``order`` is scratch afterwards.
    """
    m = order.shape[0]
    pair = np.full(n, -1, np.int64)
    match = np.full(n, -1, np.int64)
    label = np.arange(n).astype(np.int64)
    rank = np.zeros(n, np.int64)
    te = np.empty(m, np.int64)
    kd = np.empty(m, np.int8)
    lg = np.empty(m, np.int8)
    an = np.empty(m, np.bool_)
    head = -1
    for p in range(m):
        r = order[p]
        te[p] = end[r]
        cr = np.int64(code[r])
        kd[p] = (cr & 3) - 1
        lg[p] = ((cr >> 2) & 3) - 1
        an[p] = (cr >> 4) & 1
        if p == 0 or ks[p] != ks[p - 1]:
            head = r
        else:
            for c in range(len(parts)):
                if parts[c][r] != parts[c][head]:
                    return False, pair, match, label, rank
    # pair legs: originating (side 0) and terminating (side 1) CDRs
    sd = np.empty(m, np.int8)
    for p in range(m):
        sd[p] = 2
        if kd[p] == CDR and lg[p] == ORIG:
            sd[p] = 0
        elif kd[p] == CDR and lg[p] == TERM:
            sd[p] = 1
    pair = _nearest_pairs_run(order, ks, ts, sd, n, pair_tolerance)
    # match, on the rows pair kept (a paired terminating leg is gone): xDRs (0) and CDRs (1)
    k = 0
    for p in range(m):
        r = order[p]
        if pair[r] >= 0 and lg[p] != ORIG:
            continue
        order[k] = r  # (order is the caller's scratch from here on)
        ks[k] = ks[p]
        ts[k] = ts[p]
        te[k] = te[p]
        an[k] = an[p]
        sd[k] = 0 if kd[p] == XDR else (1 if kd[p] == CDR else 2)
        k += 1
    m = k
    match = _nearest_pairs_run(order[:m], ks[:m], ts[:m], sd[:m], n, match_tolerance)
    # intents, on the rows match kept (a matched xDR is gone)
    prev = -1
    cnt = 0
    head = -1
    for p in range(m):
        r = order[p]
        if match[r] >= 0 and sd[p] == 0:
            continue
        joined = False
        if prev >= 0 and ks[prev] == ks[p]:
            joined = _continues(ts[prev], te[prev], an[prev], ts[p], window, close_on_answer)
        if joined:
            cnt += 1
        else:
            head = r
            cnt = 0
        label[r] = head
        rank[r] = cnt
        prev = p
    return True, pair, match, label, rank


@_jit
def calls_kept(kind, leg, pair, match, label, rank):
    """The rows :func:`calls_in_order`'s steps keep, and what each kept row carries.

    A paired terminating leg (``pair >= 0``, ``leg`` not :data:`ORIG`) and a matched xDR
    (``match >= 0``, ``kind`` :data:`XDR`) are absorbed by their partner; every other row is
    kept, in row order. ``kind``, ``leg``: the int8 codes of :func:`calls_sorted`.

    Returns
    -------
    rows : int64 array
        The kept rows' positions.
    term, xdr : int64 arrays
        Per kept row: its paired terminating leg (an originating leg's), its matched xDR (a
        CDR's), or -1.
    status : int8 array
        0 a matched CDR, 1 a CDR without xDR, 2 an xDR without CDR, -1 any other row.
    label : int64 array, attempt : int32 array
        The kept rows' ``label`` and ``rank + 1``.
    """
    n = kind.shape[0]
    m = 0
    for i in range(n):
        if not ((pair[i] >= 0 and leg[i] != ORIG) or (match[i] >= 0 and kind[i] == XDR)):
            m += 1
    rows = np.empty(m, np.int64)
    term = np.empty(m, np.int64)
    xdr = np.empty(m, np.int64)
    status = np.empty(m, np.int8)
    lab = np.empty(m, np.int64)
    attempt = np.empty(m, np.int32)
    k = 0
    for i in range(n):
        if (pair[i] >= 0 and leg[i] != ORIG) or (match[i] >= 0 and kind[i] == XDR):
            continue
        rows[k] = i
        term[k] = pair[i] if leg[i] == ORIG and pair[i] >= 0 else -1
        xdr[k] = match[i] if kind[i] == CDR and match[i] >= 0 else -1
        if kind[i] == CDR:
            status[k] = 0 if match[i] >= 0 else 1
        elif kind[i] == XDR:
            status[k] = 2
        else:
            status[k] = -1
        lab[k] = label[i]
        attempt[k] = rank[i] + 1
        k += 1
    return rows, term, xdr, status, lab, attempt


# --- stitch -------------------------------------------------------------------------------------
def stitch_groups(key, seq, start, end, chain, gap, alone=None):
    """Group partial records of one call.

    Rows with the same valid key form groups. When ``chain[i]`` is false for the rows of a key
    (a call reference is known), all rows of the key are one call, ordered by
    (sequence number, start, row position). When it is true (no call reference), rows of the key
    are ordered by (start, row position) and a row joins the previous one when its start lies
    within ``gap`` of the previous row's end (``|start - previous end| <= gap``); a null start or
    end breaks the chain.

    Parameters
    ----------
    key : int64 array
        Group key (negative: the row stays alone).
    seq : int64 array
        Partial sequence number; negative for null (sorted after all others).
    start, end : int64 arrays
        Times (:data:`NULL_TIME` for null).
    chain : bool array
        Whether the row is grouped by time chaining (see above). Must be constant within a key.
    gap : int
        Largest accepted distance between one partial's end and the next one's start.
    alone : bool array, optional
        Rows the caller knows to be the only row of their key (e.g. a call reference no other
        row carries): they are not sorted. Same result as without it.

    Returns
    -------
    label : int64 array
        Row position of the first record of each row's call (its representative).
    rank : int64 array
        Position of the row inside its call (0 for the representative).
    flags : int8 array
        :data:`FLAG_OUT_OF_ORDER` | :data:`FLAG_MISSING` | :data:`FLAG_DUPLICATE`, set on every
        row of a flagged call.
    """
    # the rows grouped by key (a counting sort by hash, each key's rows in row order); each
    # call's few partials are then sorted on their own
    if alone is None:
        order = grouped_order(key, np.zeros(key.shape[0], np.int64))
    else:
        # a row alone in its key needs no sorting, and is a call of its own with nothing to flag
        # unless it carries a sequence number other than 1
        alone = np.asarray(alone, dtype=bool)
        rows = np.flatnonzero(~alone & (key >= 0))
        order = rows[grouped_order(key[rows], np.zeros(rows.size, np.int64))]
        flagged = np.flatnonzero(alone & (key >= 0) & ~chain & (seq >= 0) & (seq != 1))
        order = np.concatenate([order, flagged]).astype(np.int64, copy=False)
    return _stitch_sorted(order, key, seq, start, end, chain, gap)


@njit(cache=config.NUMBA_CACHE, nogil=config.NUMBA_NOGIL, fastmath=False)
def kahan_sums(values, rows, sub, k):
    """Per group: the compensated (Kahan) sum of ``values[rows]`` in row order, and the count.

    ``values``: float64 (NaN: null, skipped); ``rows[i]`` is in group ``sub[i]``
    (``0 .. k - 1``). An infinity resets the compensation (what pandas' Cython sum does).
    Compiled without fastmath whatever the configuration: reassociated, the compensation is 0.
    """
    totals = np.zeros(k, np.float64)
    comps = np.zeros(k, np.float64)
    counts = np.zeros(k, np.int64)
    for i in range(rows.shape[0]):
        v = values[rows[i]]
        if np.isnan(v):
            continue
        g = sub[i]
        counts[g] += 1
        y = v - comps[g]
        t = totals[g] + y
        comps[g] = t - totals[g] - y
        if comps[g] != comps[g]:
            comps[g] = 0.0
        totals[g] = t
    return totals, counts


@_jit
def extreme_rows(values, rows, sub, k, want_max):
    """Per group: the row holding the group's least (``want_max``: greatest) value.

    ``values``: int64 of a whole column (:data:`NULL_TIME`: null, skipped); ``rows[i]`` is in
    group ``sub[i]`` (``0 .. k - 1``). Returns, per group, the row of ``rows`` holding the
    extreme, the first in ``rows``' order on a tie (a strictly better value replaces it); -1
    where every value of the group is null.
    """
    best = np.full(k, -1, np.int64)
    held = np.zeros(k, np.int64)
    for i in range(rows.shape[0]):
        r = rows[i]
        v = values[r]
        if v == NULL_TIME:
            continue
        g = sub[i]
        if best[g] < 0 or (v > held[g] if want_max else v < held[g]):
            best[g] = r
            held[g] = v
    return best


@_jit
def _stitch_sorted(order, key, seq, start, end, chain, gap):
    """:func:`stitch_groups` given the rows grouped by key (a key's rows in row order)."""
    n = key.shape[0]
    label = np.arange(n).astype(np.int64)
    rank = np.zeros(n, np.int64)
    flags = np.zeros(n, np.int8)
    if n == 0:
        return label, rank, flags
    big = np.iinfo(np.int64).max
    seq_sort = np.empty(n, np.int64)
    start_sort = np.empty(n, np.int64)
    for i in range(n):
        seq_sort[i] = big if (chain[i] or seq[i] < 0) else seq[i]
        # null starts sort last (NaT is the smallest int64, so map it to the largest)
        start_sort[i] = big if start[i] == NULL_TIME else start[i]
    _sort_runs2(order, key, seq_sort, start_sort)
    m = order.shape[0]  # may leave out the rows without a key (they stay alone)
    p = 0
    while p < m:
        i = order[p]
        if key[i] < 0:
            p += 1
            continue
        q = p + 1
        while q < m and key[order[q]] == key[i]:
            q += 1
        # rows order[p:q] share the key
        if not chain[i]:
            f = 0
            prev_seq = -1
            prev_start = NULL_TIME
            expected = 1
            for r in range(p, q):
                j = order[r]
                label[j] = i
                rank[j] = r - p
                s = seq[j]
                if s >= 0:
                    if r > p and s == prev_seq:
                        f |= FLAG_DUPLICATE
                    elif s != expected:
                        f |= FLAG_MISSING
                    expected = s + 1
                    if (
                        r > p
                        and prev_seq >= 0
                        and s > prev_seq
                        and start[j] != NULL_TIME
                        and prev_start != NULL_TIME
                        and start[j] < prev_start
                    ):
                        f |= FLAG_OUT_OF_ORDER
                    prev_seq = s
                if start[j] != NULL_TIME:
                    prev_start = start[j] if prev_start == NULL_TIME else max(prev_start, start[j])
            if f:
                for r in range(p, q):
                    flags[order[r]] = f
        else:
            head = i
            k = 0
            for r in range(p, q):
                j = order[r]
                if r > p:
                    prev = order[r - 1]
                    joined = (
                        start[j] != NULL_TIME
                        and end[prev] != NULL_TIME
                        and abs(start[j] - end[prev]) <= gap
                    )
                    if joined:
                        k += 1
                    else:
                        head = j
                        k = 0
                label[j] = head
                rank[j] = k
        p = q
    return label, rank, flags


# --- sessionize ---------------------------------------------------------------------------------
def session_groups(key, start, end, answered, window, close_on_answer):
    """Group repeated attempts of one key (customer and destination) into intents.

    Rows of a valid key with a non-null start are ordered by (start, row position). A row joins
    the intent of the previous row when its start is at most ``window`` after the previous
    row's end (its start when the end is null), and, if ``close_on_answer``, the previous
    attempt was not answered (an answered attempt ends the intent).

    Parameters
    ----------
    key : int64 array
        Key (negative: the row is an intent of its own).
    start, end : int64 arrays
        Times (:data:`NULL_TIME` for null; a null start makes the row an intent of its own).
    answered : bool array
        Whether each attempt was answered.
    window : int
        Largest gap between one attempt and the next one of the same intent.
    close_on_answer : bool
        Whether an answered attempt closes its intent.

    Returns
    -------
    label : int64 array
        Row position of the first attempt of each row's intent.
    rank : int64 array
        Attempt number minus one inside the intent.
    """
    return session_groups_sorted(
        key_time_order(key, start), key, start, end, answered, window, close_on_answer
    )


@_jit
def session_groups_sorted(order, key, start, end, answered, window, close_on_answer):
    """:func:`session_groups` on rows grouped by key in (start, row) order (:func:`key_time_order`).

    Rows not in ``order`` (no key, null start) are intents of their own.
    """
    n = key.shape[0]
    label = np.arange(n).astype(np.int64)
    rank = np.zeros(n, np.int64)
    prev = -1
    head = -1
    cnt = 0
    for p in range(order.shape[0]):
        i = order[p]
        joined = False
        if prev >= 0 and key[prev] == key[i]:
            joined = _continues(start[prev], end[prev], answered[prev], start[i], window,
                                close_on_answer)  # fmt: skip
        if joined:
            cnt += 1
        else:
            head = i
            cnt = 0
        label[i] = head
        rank[i] = cnt
        prev = i
    return label, rank


# --- gathering columns --------------------------------------------------------------------------
@_jit
def gather_into(values, idx, out, fill, lo, hi):
    """``out[i] = values[idx[i]]`` (``fill`` where ``idx[i] < 0``) for ``lo <= i < hi``."""
    for i in range(lo, hi):
        j = idx[i]
        out[i] = values[j] if j >= 0 else fill


def gather(values, idx, out_dtype, fill, threads=1):
    """``values`` at positions ``idx`` (``fill`` where -1) as a new ``out_dtype`` array.

    The GIL-free loop runs on ``threads`` Python threads, each on a slice of the output.
    """
    out = np.empty(idx.shape[0], out_dtype)
    n = idx.shape[0]
    if threads <= 1 or n < 100_000:
        gather_into(values, idx, out, fill, 0, n)
        return out
    cuts = np.linspace(0, n, threads + 1).astype(np.int64)
    _run_all(
        _pool(threads), gather_into,
        [(values, idx, out, fill, cuts[c], cuts[c + 1]) for c in range(threads)],
    )  # fmt: skip
    return out
