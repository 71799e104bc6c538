"""asof on pandas equals pandas.merge_asof (on stably sorted inputs); Dask equals pandas."""

from __future__ import annotations

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cemkit.correlate import asof
from cemkit.correlate.asof import asof_positions
from cemkit.errors import SchemaError
from tests import naive

T0 = pd.Timestamp("2026-01-01", tz="UTC")


def merge_asof_reference(left, right, **kw):
    """pandas.merge_asof on both sides sorted stably by `on`, rows back in left's order."""
    on = kw["on"]
    ls = left.sort_values(on, kind="stable")
    rs = right.sort_values(on, kind="stable")
    got = pd.merge_asof(ls.reset_index(drop=True), rs.reset_index(drop=True), **kw)
    got.index = ls.index
    return got.loc[left.index]


@st.composite
def frames(draw, key_kind):
    def one(n):
        t = draw(st.lists(st.integers(0, 10), min_size=n, max_size=n))
        if key_kind == "str":
            k = draw(st.lists(st.sampled_from(["tn-a", "tn-b", "tn-c"]), min_size=n, max_size=n))
            k = pd.array(k, dtype="string[pyarrow]")
        else:
            k = np.array(draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)), np.int64)
        return k, t

    nl = draw(st.integers(0, 12))
    nr = draw(st.integers(0, 12))
    lk, lt = one(nl)
    rk, rt = one(nr)
    left = pd.DataFrame(
        {"tn": lk, "t": T0 + pd.to_timedelta(lt, unit="s"), "lval": np.arange(nl, dtype=np.int64)}
    )
    right = pd.DataFrame(
        {"tn": rk, "t": T0 + pd.to_timedelta(rt, unit="s"), "rval": np.arange(nr, dtype=np.int64),
         "mos": np.linspace(1, 5, nr)}
    )  # fmt: skip
    return left, right


@settings(max_examples=80, deadline=None)
@given(
    data=st.data(),
    key_kind=st.sampled_from(["str", "int"]),
    direction=st.sampled_from(["backward", "forward", "nearest"]),
    tolerance=st.sampled_from([None, pd.Timedelta(0), pd.Timedelta("2s")]),
    allow_exact=st.booleans(),
)
def test_equals_pandas_merge_asof(data, key_kind, direction, tolerance, allow_exact):
    left, right = data.draw(frames(key_kind))
    kw = {"on": "t", "by": "tn", "direction": direction, "tolerance": tolerance,
              "allow_exact_matches": allow_exact}  # fmt: skip
    got = asof(left, right, **kw)
    pd.testing.assert_frame_equal(got, merge_asof_reference(left, right, **kw))


def test_sorted_input_equals_merge_asof_exactly():
    rng = np.random.default_rng(3)
    n = 2000
    left = pd.DataFrame({"t": np.sort(rng.integers(0, 500, n)), "k": rng.integers(0, 50, n)})
    right = pd.DataFrame(
        {"t": np.sort(rng.integers(0, 500, n)), "k": rng.integers(0, 50, n), "v": rng.random(n)}
    )
    for direction in ("backward", "forward", "nearest"):
        got = asof(left, right, on="t", by="k", direction=direction, tolerance=7)
        want = pd.merge_asof(left, right, on="t", by="k", direction=direction, tolerance=7)
        pd.testing.assert_frame_equal(got, want)


def test_no_by_multiple_by_and_suffixes():
    left = pd.DataFrame({"a": ["x", "x", "y"], "b": [1, 2, 1], "t": [5, 6, 7], "v": [1, 2, 3]})
    right = pd.DataFrame({"a": ["x", "y", "x"], "b": [1, 1, 2], "t": [4, 1, 9], "v": [7, 8, 9]})
    for by in (None, ["a", "b"]):
        got = asof(left, right, on="t", by=by, direction="nearest")
        want = pd.merge_asof(left, right.sort_values("t"), on="t", by=by, direction="nearest")
        pd.testing.assert_frame_equal(got, want)
    assert list(got.columns) == ["a", "b", "t", "v_x", "v_y"]


def test_null_times_and_keys_never_match():
    left = pd.DataFrame({"k": pd.array(["x", None, "x"], dtype="string[pyarrow]"),
                         "t": pd.to_datetime([T0, T0, pd.NaT], utc=True)})  # fmt: skip
    right = pd.DataFrame({"k": pd.array(["x", None, "x"], dtype="string[pyarrow]"),
                          "t": pd.to_datetime([pd.NaT, T0, T0], utc=True),
                          "v": [1.0, 2.0, 3.0]})  # fmt: skip
    got = asof(left, right, on="t", by="k")
    assert got["v"].tolist()[0] == 3.0
    assert got["v"].isna().tolist() == [False, True, True]
    idx = asof_positions(left, right, on="t", by="k")
    lt = left["t"].array.asi8
    rt = right["t"].array.asi8
    np.testing.assert_array_equal(idx, naive.asof([0, -1, 0], lt, [0, -1, 0], rt))


def test_arrow_timestamps_and_non_ns_units():
    import pyarrow as pa

    t = pd.to_datetime(["2026-01-01 00:00:01", "2026-01-01 00:00:03"], utc=True)
    left = pd.DataFrame({"k": [1, 1], "t": t})
    right = pd.DataFrame({"k": [1], "t": t[:1], "v": [2.5]})
    want = asof(left, right, on="t", by="k")
    arrow = pd.ArrowDtype(pa.timestamp("ns", tz="UTC"))
    got = asof(left.astype({"t": arrow}), right.astype({"t": arrow}), on="t", by="k")
    assert got["v"].tolist() == want["v"].tolist() == [2.5, 2.5]
    got = asof(left, right.astype({"t": "datetime64[s, UTC]"}), on="t", by="k", tolerance="1s")
    assert got["v"].isna().tolist() == [False, True]


def test_empty_and_single_rows():
    left = pd.DataFrame({"k": [1], "t": [5]})
    right = pd.DataFrame({"k": pd.Series([], dtype="int64"), "t": pd.Series([], dtype="int64"),
                          "v": pd.Series([], dtype="float64")})  # fmt: skip
    got = asof(left, right, on="t", by="k")
    pd.testing.assert_frame_equal(got, pd.merge_asof(left, right, on="t", by="k"))
    got = asof(left.iloc[:0], right, on="t", by="k")
    assert len(got) == 0 and list(got.columns) == ["k", "t", "v"]


def test_bad_arguments_are_explained():
    left = pd.DataFrame({"k": [1], "t": [0.5]})
    with pytest.raises(SchemaError, match="datetimes or integers"):
        asof(left, left, on="t", by="k")
    with pytest.raises(ValueError, match="direction"):
        asof(left.assign(t=[1]), left.assign(t=[1]), on="t", by="k", direction="sideways")
    naive_t = pd.DataFrame({"k": [1], "t": pd.to_datetime(["2026-01-01"])})
    with pytest.raises(SchemaError, match="time zone"):
        asof(naive_t, naive_t.assign(t=naive_t["t"].dt.tz_localize("UTC")), on="t", by="k")
    with pytest.raises(SchemaError, match="needs column"):
        asof(left, left.drop(columns="k"), on="t", by="k")


@pytest.mark.parametrize("parts", [(1, 1), (3, 2), (7, 5)])
def test_dask_equals_pandas_for_any_partitioning(parts):
    rng = np.random.default_rng(5)
    n = 400
    left = pd.DataFrame({"tn": pd.array([f"p{i}" for i in rng.integers(0, 30, n)],
                                        dtype="string[pyarrow]"),
                         "t": T0 + pd.to_timedelta(rng.integers(0, 100, n), unit="s"),
                         "lval": np.arange(n)})  # fmt: skip
    right = pd.DataFrame({"tn": pd.array([f"p{i}" for i in rng.integers(0, 30, n)],
                                         dtype="string[pyarrow]"),
                          "t": T0 + pd.to_timedelta(rng.integers(0, 100, n), unit="s"),
                          "rval": np.arange(n)})  # fmt: skip
    want = asof(left, right, on="t", by="tn", direction="nearest", tolerance="5s")
    lp, rp = parts
    got_dd = asof(dd.from_pandas(left, npartitions=lp), dd.from_pandas(right, npartitions=rp),
                  on="t", by="tn", direction="nearest", tolerance="5s")  # fmt: skip
    with dask.config.set(scheduler="sync"):
        got = got_dd.compute()
    got = got.sort_values("lval").reset_index(drop=True)
    assert got_dd.dtypes.to_dict() == got.dtypes.to_dict()
    pd.testing.assert_frame_equal(got, want.reset_index(drop=True))
    # right ties (same key and time) are resolved by the global right row order, as in pandas
    assert (got["rval"].isna() == want["rval"].isna()).all()
