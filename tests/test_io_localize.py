"""Local wall-clock times → UTC by hour (zone rules at each distinct hour's two ends) equals the
zone rules applied to every row, across DST changes of many zones."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from cemkit.io.convert import localize, localize_rows

#: zones with 1-hour, 30-minute (Lord Howe) and whole-day (Apia 2011) changes, odd offsets
ZONES = ["Europe/London", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu",
         "Pacific/Apia", "Africa/Casablanca", "Europe/Dublin", "America/St_Johns",
         "UTC"]  # fmt: skip
#: instants near changes (a spread of seconds around each) and anywhere in 1900-2040
CHANGES = [dt.datetime(2026, 3, 29, 1, 0), dt.datetime(2026, 10, 25, 1, 0),
           dt.datetime(2026, 3, 8, 2, 0), dt.datetime(2026, 11, 1, 1, 0),
           dt.datetime(2026, 4, 5, 1, 30), dt.datetime(2026, 10, 4, 2, 0),
           dt.datetime(2011, 12, 29, 23, 59), dt.datetime(1986, 1, 1, 0, 0)]  # fmt: skip

near = st.builds(lambda c, d: c + dt.timedelta(seconds=d), st.sampled_from(CHANGES),
                 st.integers(-7200, 7200))  # fmt: skip
anywhere = st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2040, 1, 1)).map(
    lambda t: t.replace(microsecond=0)
)


@settings(max_examples=150, deadline=None)
@given(zone=st.sampled_from(ZONES), times=st.lists(st.one_of(near, anywhere, st.none()),
                                                   max_size=40))  # fmt: skip
def test_by_hour_equals_row_by_row(zone, times):
    wall = pa.array(times, pa.timestamp("s"))
    fast = localize(wall, zone)
    slow = localize_rows(wall, zone)
    assert fast[0].to_pylist() == slow[0].to_pylist()
    assert fast[1].to_pylist() == slow[1].to_pylist()
    assert fast[0].type == slow[0].type


def test_every_change_of_every_zone_by_hour_equals_row_by_row():
    # a dense grid around each change (every 61 s over +-4 h, every zone): hours that hold a
    # change (Lord Howe's 30-minute ones, Apia's skipped day) take the row-by-row path
    grid = [c + dt.timedelta(seconds=61 * k) for c in CHANGES for k in range(-240, 241)]
    wall = pa.array(grid + [None], pa.timestamp("s"))
    for zone in ZONES:
        fast, slow = localize(wall, zone), localize_rows(wall, zone)
        assert fast[0].to_pylist() == slow[0].to_pylist(), zone
        assert fast[1].to_pylist() == slow[1].to_pylist(), zone


@settings(max_examples=60, deadline=None)
@given(zone=st.sampled_from(ZONES), times=st.lists(st.one_of(near, anywhere, st.none()),
                                                   min_size=1, max_size=30),
       lo=st.integers(0, 5), far=st.booleans())  # fmt: skip
def test_by_hour_of_a_slice_and_of_centuries_apart_equals_row_by_row(zone, times, lo, far):
    # the seconds are read from the array's buffer: a slice must read its own rows; times
    # centuries apart take the sorted distinct hours instead of a table of the span
    extra = [dt.datetime(1700, 6, 1, 12), dt.datetime(2250, 6, 1, 12)] if far else []
    wall = pa.array([None, dt.datetime(2026, 3, 29, 1, 30), *times, *extra], pa.timestamp("s"))
    wall = wall.slice(min(lo, len(wall) - 1))
    fast, slow = localize(wall, zone), localize_rows(wall, zone)
    assert fast[0].to_pylist() == slow[0].to_pylist()
    assert fast[1].to_pylist() == slow[1].to_pylist()
