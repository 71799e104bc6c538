"""The one order of the correlators keyed by parties, and the kernels that run on it.

Each kernel equals its naive reference (tests/naive.py) on hypothesis-generated arrays; the
hashed parties key is exact (equal keys exactly for equal values), also when its hash collides
(forced here), and the fused correlation gives the same records either way.
"""

from __future__ import annotations

import naive
import numpy as np
import pandas as pd
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from cemkit.correlate import _frames
from cemkit.correlate import _kernels as K

NULL = K.NULL_TIME
SETTINGS = settings(max_examples=150, deadline=None)


def arrays(n, elements, dtype=np.int64):
    return st.lists(elements, min_size=n, max_size=n).map(lambda v: np.array(v, dtype=dtype))


@SETTINGS
@given(data=st.data(), tolerance=st.sampled_from([0, 1, 4]), match_tolerance=st.sampled_from(
       [0, 2]), window=st.sampled_from([0, 3]), close=st.booleans())  # fmt: skip
def test_calls_sorted_equals_the_three_steps_one_after_the_other(data, tolerance,
                                                                  match_tolerance, window,
                                                                  close):  # fmt: skip
    n = data.draw(st.integers(0, 18))
    key = data.draw(arrays(n, st.integers(-1, 3)))
    start = data.draw(arrays(n, st.one_of(st.integers(0, 12), st.just(NULL))))
    end = np.where(start == NULL, NULL, start + data.draw(arrays(n, st.integers(0, 3))))
    end = np.where(data.draw(arrays(n, st.booleans(), bool)), NULL, end)
    kind = data.draw(arrays(n, st.integers(-1, 1), np.int8))
    leg = data.draw(arrays(n, st.integers(-1, 1), np.int8))
    answered = data.draw(arrays(n, st.booleans(), bool))
    order = K.key_time_order(key, start)
    ok, *got = K.calls_sorted(order, key, (key,), start, end, kind, leg, answered, tolerance,
                              match_tolerance, window, close)  # fmt: skip
    assert ok
    want = naive.calls_steps(key, start, end, kind, leg, answered, tolerance, match_tolerance,
                             window, close)  # fmt: skip
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


@SETTINGS
@given(data=st.data())
def test_runs_agree_and_calls_sorted_detect_a_collision(data):
    # the key is what a hash made of the parts; parts that differ under one key: a collision
    n = data.draw(st.integers(0, 14))
    key = data.draw(arrays(n, st.integers(-1, 2)))
    parts = (data.draw(arrays(n, st.integers(0, 2))), data.draw(arrays(n, st.integers(-2, 0))))
    time = data.draw(arrays(n, st.one_of(st.integers(0, 5), st.just(NULL))))
    order = K.grouped_order(key, time)
    want = naive.runs_agree(order, key, parts)
    assert K.runs_agree(order, key, parts) == want
    zeros = np.zeros(n, np.int64)
    codes = np.zeros(n, np.int8)
    ok = K.calls_sorted(order.copy(), key, parts, time, time, codes, codes, zeros.astype(bool),
                        1, 1, 1, True)[0]  # fmt: skip
    assert ok == want


@SETTINGS
@given(data=st.data())
def test_hash_key_is_a_function_of_the_parts(data):
    n = data.draw(st.integers(0, 20))
    parts = tuple(data.draw(arrays(n, st.integers(-3, 3))) for _ in range(data.draw(
        st.integers(1, 3))))  # fmt: skip
    null = data.draw(arrays(n, st.booleans(), bool))
    key = K.hash_key(parts, null)
    assert ((key == -1) == null).all()
    assert (key[~null] >= 0).all()
    rows = [tuple(int(p[i]) for p in parts) for i in range(n)]
    for i in range(n):
        for j in range(n):
            if not null[i] and not null[j]:
                # equal tuples: equal keys; unequal tuples of small integers never collide here
                assert (key[i] == key[j]) == (rows[i] == rows[j])


@settings(max_examples=60, deadline=None)
@given(data=st.data(), n=st.sampled_from([0, 1, 7, 600, 5000]),
       spread=st.sampled_from([1, 3, 2**40]))  # fmt: skip
def test_repeated_equals_naive(data, n, spread):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    key = rng.integers(-1, spread, n)
    np.testing.assert_array_equal(K.repeated(key), naive.repeated(key))


_tokens = st.sampled_from([None, "", "+44#00000000000000ff", "+44#00000000000000fe",
                           "+1#00000000000000ff", "#00000000000000ff"])  # fmt: skip
_plain = st.sampled_from([None, "voice", "sms", ""])


def _check_key(key, order, columns):
    # null exactly where a value is; equal keys exactly for equal values on the rows of the
    # order (the only rows the kernels compare: the others have a null key or time)
    classes = naive.tuple_key_classes(columns)
    assert [k < 0 for k in key] == [c is None for c in classes]
    for i in order:
        for j in order:
            assert (key[i] == key[j]) == (classes[i] == classes[j])


def _collisions(on):
    """Every non-null row's hashed key made 0 (all keys collide), or nothing changed."""
    import contextlib
    from unittest import mock

    if not on:
        return contextlib.nullcontext()

    def zeros(parts, null):
        return np.where(null, -1, 0).astype(np.int64)

    return mock.patch.object(K, "hash_key", zeros)


@settings(max_examples=100, deadline=None)
@given(data=st.data(), collide=st.booleans())
def test_key_order_is_an_exact_key_also_on_a_hash_collision(data, collide):
    n = data.draw(st.integers(0, 14))
    cols = [data.draw(st.lists(_plain, min_size=n, max_size=n)),
            data.draw(st.lists(_tokens, min_size=n, max_size=n)),
            data.draw(st.lists(st.one_of(_tokens, st.just("x")) if data.draw(st.booleans())
                               else _tokens, min_size=n, max_size=n))]  # fmt: skip
    series = [pd.Series(c, dtype="string[pyarrow]") for c in cols]
    time = data.draw(arrays(n, st.one_of(st.integers(0, 5), st.just(NULL))))
    with _collisions(collide):
        key, order = _frames.key_order(series, time)
    _check_key(key, order, cols)
    keys = key[order].tolist()
    runs = [k for i, k in enumerate(keys) if i == 0 or keys[i - 1] != k]
    assert len(runs) == len(set(runs)), "a key's rows are not contiguous"
    np.testing.assert_array_equal(order[np.argsort(key[order], kind="stable")],
                                  naive.key_time_rows(key, time))  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.sampled_from(["cdr", "xdr", "", "cd"])),
                       max_size=12), chunked=st.booleans())  # fmt: skip
def test_equals_any_equals_naive(values, chunked):
    arr = pa.array(values, pa.large_string())
    if chunked and len(values) > 1:
        arr = pa.chunked_array([arr.slice(0, 1), arr.slice(1)])
    s = pd.Series(pd.arrays.ArrowStringArray(arr))
    got = _frames.equals_any(s, ("cdr", "xdr", ""))
    for g, c in zip(got, ("cdr", "xdr", ""), strict=True):
        np.testing.assert_array_equal(g, naive.equal_strings(values, c))


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_take_arrays_equals_pandas_take(data):
    n = data.draw(st.integers(1, 10))
    rows = np.array(data.draw(st.lists(st.integers(0, n - 1), max_size=12)), np.int64)
    frame = pd.DataFrame({
        "s": pd.array(data.draw(st.lists(st.one_of(st.none(), st.text(max_size=3)), min_size=n,
                                         max_size=n)), dtype="string[pyarrow]"),
        "nulls": pd.array([None] * n, dtype="string[pyarrow]"),
        "f": np.arange(n, dtype=np.float64),
        "i": pd.array(range(n), dtype="Int16"),
        "t": pd.date_range("2026-01-01", periods=n, freq="s", tz="UTC"),
    })  # fmt: skip
    got = _frames.take_arrays(_frames.column_arrays(frame), rows)
    for c in frame.columns:
        want = frame[c].take(rows).reset_index(drop=True)
        pd.testing.assert_series_equal(pd.Series(got[c], name=c), want)
