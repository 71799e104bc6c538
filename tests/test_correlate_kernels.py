"""Each kernel equals its naive reference exactly, on hypothesis-generated arrays.

Small key and time ranges make ties, duplicate timestamps and shared keys frequent; nulls
(negative keys, NaT times, null sequence numbers) and empty inputs are generated too.
"""

from __future__ import annotations

import naive
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cemkit.correlate import _kernels as K

NULL = K.NULL_TIME
SETTINGS = settings(max_examples=150, deadline=None)

keys = st.integers(-1, 3)
times = st.one_of(st.integers(0, 12), st.just(NULL))


def arrays(n, elements, dtype=np.int64):
    return st.lists(elements, min_size=n, max_size=n).map(lambda v: np.array(v, dtype=dtype))


@st.composite
def sided(draw, max_n=14):
    n = draw(st.integers(0, max_n))
    return draw(arrays(n, keys)), draw(arrays(n, times))


@SETTINGS
@given(
    left=sided(),
    right=sided(),
    tolerance=st.sampled_from([-1, 0, 1, 3]),
    direction=st.sampled_from(["backward", "forward", "nearest"]),
    allow_exact=st.booleans(),
    threads=st.sampled_from([1, 2]),
)
def test_asof_equals_naive(left, right, tolerance, direction, allow_exact, threads):
    lk, lt = left
    rk, rt = right
    code = {"backward": K.BACKWARD, "forward": K.FORWARD, "nearest": K.NEAREST}[direction]
    got = K.asof_indices(lk, lt, rk, rt, 0, 4, tolerance, code, allow_exact, threads)
    want = naive.asof(lk, lt, rk, rt, tolerance, direction, allow_exact)
    np.testing.assert_array_equal(got, want)


def test_asof_key_base_and_large_groups():
    # a group far larger than the insertion-sort limit, keys offset by key_base
    rng = np.random.default_rng(1)
    n = 500
    lk = rng.integers(100, 103, n)
    rk = rng.integers(100, 103, n)
    lt = rng.integers(0, 50, n)
    rt = rng.integers(0, 50, n)
    for direction, code in (("backward", 0), ("forward", 1), ("nearest", 2)):
        got = K.asof_indices(lk, lt, rk, rt, 100, 3, 5, code, True, 2)
        want = naive.asof(lk - 100, lt, rk - 100, rt, 5, direction, True)
        np.testing.assert_array_equal(got, want)


@SETTINGS
@given(data=st.data(), tolerance=st.sampled_from([0, 1, 4]))
def test_nearest_pairs_equals_naive(data, tolerance):
    n = data.draw(st.integers(0, 16))
    key = data.draw(arrays(n, keys))
    time = data.draw(arrays(n, times))
    side = data.draw(arrays(n, st.integers(0, 2), np.int8))
    got = K.nearest_pairs(key, time, side, tolerance)
    want = naive.nearest_pairs(key, time, side, tolerance)
    np.testing.assert_array_equal(got, want)
    # one-to-one and symmetric
    matched = np.flatnonzero(got >= 0)
    np.testing.assert_array_equal(got[got[matched]], matched)


@SETTINGS
@given(data=st.data(), gap=st.sampled_from([0, 1, 3]))
def test_stitch_groups_equals_naive(data, gap):
    n = data.draw(st.integers(0, 14))
    key = data.draw(arrays(n, keys))
    # chaining is a property of the key (call reference known or not): odd keys chain
    chain = (key % 2 == 1) & (key >= 0)
    seq = data.draw(arrays(n, st.integers(-1, 4)))
    start = data.draw(arrays(n, times))
    dur = data.draw(arrays(n, st.integers(0, 4)))
    end = np.where(start == NULL, NULL, start + dur)
    end = np.where(data.draw(arrays(n, st.booleans(), bool)), NULL, end)
    got = K.stitch_groups(key, seq, start, end, chain, gap)
    want = naive.stitch(key, seq, start, end, chain, gap)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    # the rows alone in their key left out of the sort (what stitch does for call references
    # no other record carries): the same result
    counts = {k: key.tolist().count(k) for k in set(key.tolist())}
    alone = np.array([k >= 0 and counts[k] == 1 for k in key.tolist()], bool)
    got = K.stitch_groups(key, seq, start, end, chain, gap, alone=alone)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


@SETTINGS
@given(data=st.data(), want_max=st.booleans())
def test_extreme_rows_equals_naive(data, want_max):
    # a stitched call's earliest start / latest end: the row holding it, the first on a tie
    values = data.draw(arrays(data.draw(st.integers(1, 14)), times))
    rows = np.array(data.draw(st.lists(st.integers(0, values.size - 1), max_size=14)), np.int64)
    k = data.draw(st.integers(1, 4))
    sub = data.draw(arrays(rows.size, st.integers(0, k - 1)))
    got = K.extreme_rows(values, rows, sub, k, want_max)
    np.testing.assert_array_equal(got, naive.extreme_rows(values, rows, sub, k, want_max))


@SETTINGS
@given(data=st.data(), window=st.sampled_from([0, 2, 5]), close=st.booleans())
def test_session_groups_equals_naive(data, window, close):
    n = data.draw(st.integers(0, 14))
    key = data.draw(arrays(n, keys))
    start = data.draw(arrays(n, times))
    dur = data.draw(arrays(n, st.integers(0, 3)))
    end = np.where(start == NULL, NULL, start + dur)
    end = np.where(data.draw(arrays(n, st.booleans(), bool)), NULL, end)
    answered = data.draw(arrays(n, st.booleans(), bool))
    got = K.session_groups(key, start, end, answered, window, close)
    want = naive.sessions(key, start, end, answered, window, close)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


def test_stitch_flags_by_hand():
    # one call (key 0) with partials 1, 3, 3 where partial 3 starts before partial 1
    key = np.array([0, 0, 0])
    seq = np.array([3, 1, 3])
    start = np.array([5, 10, 20])
    end = start + 1
    label, rank, flags = K.stitch_groups(key, seq, start, end, np.zeros(3, bool), 0)
    assert list(label) == [1, 1, 1]
    assert list(rank) == [1, 0, 2]
    assert flags[1] == K.FLAG_OUT_OF_ORDER | K.FLAG_MISSING | K.FLAG_DUPLICATE


def test_empty_inputs():
    e = np.empty(0, np.int64)
    assert K.asof_indices(e, e, e, e, 0, 0).size == 0
    assert K.nearest_pairs(e, e, np.empty(0, np.int8), 1).size == 0
    assert all(a.size == 0 for a in K.stitch_groups(e, e, e, e, np.empty(0, bool), 1))
    assert all(a.size == 0 for a in K.session_groups(e, e, e, np.empty(0, bool), 1, True))


def _sorted_rows(key, time):
    """(key, time, row) order of the rows with a key and a time, written out."""
    rows = [i for i in range(len(key)) if key[i] >= 0 and time[i] != NULL]
    return np.array(sorted(rows, key=lambda i: (int(key[i]), int(time[i]), i)), np.int64)


def assert_grouped(order, key, time):
    """``order`` holds the rows with a key and a time, each key's rows together in (time, row)
    order (the keys themselves in any order)."""
    order = np.asarray(order)
    keys = key[order].tolist()
    runs = [k for i, k in enumerate(keys) if i == 0 or keys[i - 1] != k]
    assert len(runs) == len(set(runs)), "a key's rows are not contiguous"
    # contiguous keys, and re-sorted by key alone (stably) the (key, time, row) order
    np.testing.assert_array_equal(order[np.argsort(key[order], kind="stable")],
                                  naive.key_time_rows(key, time))  # fmt: skip


@SETTINGS
@given(data=st.data(), tolerance=st.sampled_from([0, 1, 4]), window=st.sampled_from([0, 3]),
       close=st.booleans())  # fmt: skip
def test_one_order_restricted_to_kept_rows_equals_naive(data, tolerance, window, close):
    # the fused path sorts once, then runs each kernel on the order restricted to the rows the
    # previous step kept: that must equal the kernel (and its reference) on the kept rows alone
    n = data.draw(st.integers(0, 16))
    key = data.draw(arrays(n, keys))
    time = data.draw(arrays(n, times))
    keep = data.draw(arrays(n, st.booleans(), bool))
    order = K.key_time_order(key, time)
    assert_grouped(order, key, time)
    sub = K.restrict_order(order, keep)
    assert_grouped(sub, key[keep], time[keep])
    side = data.draw(arrays(int(keep.sum()), st.integers(0, 2), np.int8))
    got = K.nearest_pairs_sorted(sub, key[keep], time[keep], side, tolerance)
    np.testing.assert_array_equal(got, naive.nearest_pairs(key[keep], time[keep], side, tolerance))
    end = np.where(time == NULL, NULL, time + 1)[keep]
    answered = data.draw(arrays(int(keep.sum()), st.booleans(), bool))
    got = K.session_groups_sorted(sub, key[keep], time[keep], end, answered, window, close)
    want = naive.sessions(key[keep], time[keep], end, answered, window, close)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


def test_large_groups_equal_naive():
    # runs longer than the insertion-sort limit, and more candidate pairs than the first buffer
    rng = np.random.default_rng(3)
    n = 300
    key = rng.integers(-1, 3, n)
    time = np.where(rng.random(n) < 0.05, NULL, rng.integers(0, 60, n))
    side = rng.integers(0, 3, n).astype(np.int8)
    np.testing.assert_array_equal(K.nearest_pairs(key, time, side, 3),
                                  naive.nearest_pairs(key, time, side, 3))  # fmt: skip
    seq = rng.integers(-1, 6, n)
    end = np.where(time == NULL, NULL, time + 2)
    chain = (key % 2 == 1) & (key >= 0)
    for g, w in zip(K.stitch_groups(key, seq, time, end, chain, 1),
                    naive.stitch(key, seq, time, end, chain, 1), strict=True):  # fmt: skip
        np.testing.assert_array_equal(g, w)
    answered = rng.random(n) < 0.3
    for g, w in zip(K.session_groups(key, time, end, answered, 4, True),
                    naive.sessions(key, time, end, answered, 4, True), strict=True):  # fmt: skip
        np.testing.assert_array_equal(g, w)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), n=st.sampled_from([0, 1, 5, 300, 5000]),
       spread=st.sampled_from([2, 50, 2**40]))  # fmt: skip
def test_grouped_order_equals_naive(data, n, spread):
    # every size class: one bucket, buckets above the insertion-sort limit (few keys, many
    # rows), and many regions of many buckets (n = 5000: 10 high bits and low bits)
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    key = rng.integers(-1, spread, n)
    time = np.where(rng.random(n) < 0.05, NULL, rng.integers(0, 40, n))
    assert_grouped(K.grouped_order(key, time), key, time)
    assert_grouped(K.key_time_order(key, time), key, time)


_words = st.one_of(st.none(), st.sampled_from(["", "cdr", "cd", "cdrx", "xdr", "é", "éa"]),
                   st.text(max_size=4))  # fmt: skip


@settings(max_examples=100, deadline=None)
@given(chunks=st.lists(st.lists(_words, max_size=12), max_size=3),
       value=st.sampled_from(["cdr", "", "é", "x"]), large=st.booleans(),
       start=st.integers(0, 3))  # fmt: skip
def test_equals_of_arrow_strings_equals_naive(chunks, value, large, start):
    # chunked, sliced (an offset into the buffers), string and large_string, nulls and empties
    import pandas as pd
    import pyarrow as pa

    from cemkit.correlate import _frames

    typ = pa.large_string() if large else pa.string()
    arrays = [pa.array(c, typ) for c in chunks]
    joined = pa.chunked_array(arrays, typ)
    joined = joined.slice(min(start, len(joined)))
    series = pd.Series(pd.arrays.ArrowStringArray(joined))
    got = _frames.equals(series, value)
    np.testing.assert_array_equal(got, naive.equal_strings(joined.to_pylist(), value))
