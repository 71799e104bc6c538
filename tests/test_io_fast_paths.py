"""The loaders' fast paths equal the slow readings they replace.

``fixed_times`` (shape check + pyarrow's ISO-8601 cast) must give exactly what ``strptime``
gives for every value it accepts, and hand anything else back to ``strptime``; ``null_if_empty``
(validity bitmap rebuilt) must equal ``if_else``; the hour table of ``localize`` must equal
``np.unique``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cemkit.io.convert import _distinct_hours, localize, null_if_empty
from cemkit.io.csvblock import FIXED_TIME_FORMAT, fixed_times, parse_block

#: Values of the fixed shape, nearly valid ones and the other shapes strptime or ISO accept.
EDGES = [
    "2026-03-02 10:00:00", "2024-02-29 12:00:00", "2023-02-29 12:00:00", "2026-02-30 10:00:00",
    "2026-03-02 23:59:60", "2026-03-02 24:00:00", "2026-13-01 00:00:00", "2026-00-10 00:00:00",
    "2026-03-02T10:00:00", "2026-03-02", " 2026-03-02 10:00:00", "2026-3-2 9:00:00",
    "2026-03-02 10:00:00 ", "2026-03-02 10:00:0x", "2026-03-02 10:00:00.5", "2026/03/02 10:00:00",
    "1970-01-01 00:00:00", "1900-01-01 00:00:00", "2026-03-29 01:30:00", "2026-10-25 01:30:00",
    "２０２６-03-02 10:00", "", "0000-01-01 00:00:00", "0001-01-01 00:00:00",
    "9999-12-31 23:59:59", "1900-02-29 00:00:00", "2000-02-29 00:00:00", "2100-02-29 00:00:00",
    "1969-12-31 23:59:59", "1583-10-15 00:00:00",
]  # fmt: skip


def strptime(values: pa.Array) -> pa.Array:
    """The reading ``fixed_times`` replaces (what the loaders did before)."""
    return pc.strptime(null_if_empty(values), format=FIXED_TIME_FORMAT, unit="s",
                       error_is_null=True)  # fmt: skip


def check(values: list[str | None]) -> None:
    arr = pa.array(values, pa.string())
    fast = fixed_times(arr)
    slow = strptime(arr)
    if fast is None:
        # handed back: some non-empty value is not of the shape or not a valid time
        shaped = [v for v in values if v]
        assert shaped, "an all-empty column is all nulls, not refused"
    else:
        assert fast.equals(slow), values
        # accepted only when strptime reads every non-empty value
        assert fast.null_count == sum(1 for v in values if not v)


@pytest.mark.parametrize("value", EDGES)
def test_edges_alone_and_among_good_values(value):
    check([value])
    check(["2026-03-02 10:00:00", value, "", "2026-12-31 23:59:59"])


def test_the_fixed_shape_is_accepted_and_odd_ones_handed_back():
    good = ["2026-03-02 10:00:00", "", "2024-02-29 23:59:59", None]
    assert fixed_times(pa.array(good)) is not None
    for odd in ("2026-02-30 10:00:00", "2026-03-02T10:00:00", "2026-03-02", "2026-3-2 9:00:00",
                "2026-03-02 23:59:60", " 2026-03-02 10:00:00"):  # fmt: skip
        assert fixed_times(pa.array([*good, odd])) is None, odd


def test_sliced_and_chunked_arrays():
    arr = pa.array(["x", "2026-03-02 10:00:00", "", "2026-03-02 10:00:01", "y"])
    sliced = arr.slice(1, 3)
    fast = fixed_times(sliced)
    assert fast is not None and fast.equals(strptime(sliced))
    chunked = pa.chunked_array([arr.slice(1, 2), arr.slice(3, 1)])
    fast = fixed_times(chunked)
    assert fast is not None and fast.equals(strptime(chunked.combine_chunks()))


_DIGIT = st.sampled_from("0123456789")
_FIELD = st.builds(lambda *c: "".join(c), *[_DIGIT] * 2)
_TIME = st.builds(lambda y1, y2, mo, d, h, mi, s: f"{y1}{y2}-{mo}-{d} {h}:{mi}:{s}",
                  st.sampled_from(["19", "20", "21"]), _FIELD,
                  st.sampled_from(["00", "01", "02", "09", "10", "12", "13"]),
                  st.sampled_from(["00", "01", "15", "28", "29", "30", "31", "32"]),
                  st.sampled_from(["00", "09", "23", "24"]), st.sampled_from(["00", "59", "60"]),
                  st.sampled_from(["00", "30", "59", "60", "61"]))  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_TIME, st.just(""), st.sampled_from(EDGES)), min_size=1, max_size=12))
def test_fixed_times_equals_strptime(values):
    check(values)


@settings(max_examples=100, deadline=None)
@given(st.lists(_TIME, min_size=1, max_size=12))
def test_each_value_alone(values):
    for v in values:
        check([v])


def test_parse_block_reads_times_as_strptime_would():
    """A block's times: converted at parse when every value is of the shape, else text."""
    good = b"a,2026-03-02 10:00:00\nb,\nc,2024-02-29 00:00:01\n"
    block = parse_block(good, ["k", "t"], 1, types={"t": pa.timestamp("s")},
                        timestamp_format=FIXED_TIME_FORMAT)  # fmt: skip
    col = block.table.column("t").combine_chunks()
    assert col.type == pa.timestamp("s")
    assert col.equals(strptime(pa.array(["2026-03-02 10:00:00", "", "2024-02-29 00:00:01"])))
    odd = good + b"d,2026-02-30 10:00:00\n"
    block = parse_block(odd, ["k", "t"], 1, types={"t": pa.timestamp("s")},
                        timestamp_format=FIXED_TIME_FORMAT)  # fmt: skip
    assert pa.types.is_string(block.table.column("t").type)  # the converter's strptime reads it


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.sampled_from(["", "a", "bc", "", "déf"])), max_size=20),
       st.integers(0, 5), st.integers(0, 5))  # fmt: skip
def test_null_if_empty_equals_if_else(values, lo, cut):
    arr = pa.array(values, pa.string())
    arr = arr.slice(min(lo, len(arr)), max(0, len(arr) - lo - cut))
    empty = pc.equal(pc.binary_length(arr), 0)
    expect = pc.if_else(empty, pa.scalar(None, pa.string()), arr)
    got = null_if_empty(arr)
    assert got.equals(expect)
    assert got.to_pylist() == [v or None for v in arr.to_pylist()]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-3, 3) | st.integers(0, 500_000), max_size=50))
def test_distinct_hours_equals_unique(hours):
    h = np.array(hours, dtype=np.int64)
    got_values, got_inverse = _distinct_hours(h)
    values, inverse = np.unique(h, return_inverse=True)
    assert np.array_equal(got_values, values) and np.array_equal(got_inverse, inverse)
    far = np.array([0, 10**9, 5], dtype=np.int64)  # decades apart: the sorting path
    assert [a.tolist() for a in _distinct_hours(far)] == [[0, 5, 10**9], [0, 2, 1]]


def test_localize_gives_one_reading_when_no_hour_is_ambiguous():
    wall = pc.strptime(pa.array(["2026-03-02 10:00:00", "2026-07-01 00:30:00", None]),
                       format=FIXED_TIME_FORMAT, unit="s")  # fmt: skip
    early, late = localize(wall, "Europe/London")
    assert early is late
    autumn = pc.strptime(pa.array(["2026-10-25 01:30:00"]), format=FIXED_TIME_FORMAT, unit="s")
    early, late = localize(autumn, "Europe/London")
    assert early is not late and not early.equals(late)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.none(), st.sampled_from([-1, 0, 16, 17, 19, 21, 31, 127,
                                                               128, 487, 600, 1000])),
                          st.booleans()), max_size=30))  # fmt: skip
def test_freeswitch_outcomes_on_distinct_pairs_equal_every_row(rows):
    import pandas as pd

    from cemkit.io.freeswitch import _outcomes
    from cemkit.outcomes import outcomes_from_q850_array

    codes = pa.array([c for c, _ in rows], pa.int32())
    answered = pa.array([a for _, a in rows], pa.bool_())
    causes = pd.Series(codes.to_pandas(types_mapper={pa.int32(): pd.Int32Dtype()}.get))
    expect = outcomes_from_q850_array(causes, pd.Series(answered.to_numpy(zero_copy_only=False)))
    assert _outcomes(codes, answered).to_pylist() == expect.tolist()
