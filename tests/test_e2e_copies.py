"""What a run does besides its stages' work: the copies and sorts it skips (issue 15).

On records the real pipeline reads and shuffles: a Parquet part read by the loader is not
copied again by :func:`cemkit.schema.conform`, and a shuffled partition whose pieces arrive in
input order is not sorted again by :func:`cemkit.correlate._frames.restore_order`; both give
what they gave before (the frame rebuilt, the partition sorted).
"""

from __future__ import annotations

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cemkit import labels, schema
from cemkit.correlate import _frames
from cemkit.io.api import plan


@pytest.fixture(scope="module")
def loaded(small_world):
    """The world's records as the Parquet loader reads them in a run (label columns narrow)."""
    out, _ = small_world
    planned = plan([str(out / "records")], "parquet")
    frames = [planned.loader.read_part_narrow(part)[0] for part in planned.parts]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _rebuilt(df: pd.DataFrame) -> pd.DataFrame:
    """What conform built before: every column put into a new frame."""
    return pd.DataFrame({c: df[c] for c in df.columns}, index=df.index)


def test_conform_of_read_records_keeps_their_arrays(loaded):
    narrow = [c for c in loaded.columns if c in labels.VOCABULARIES]
    got = schema.conform(loaded, narrow=narrow)
    pd.testing.assert_frame_equal(got, _rebuilt(loaded))
    assert got is not loaded
    numeric = [c for c in loaded.columns if isinstance(loaded[c].dtype, np.dtype)
               and loaded[c].dtype.kind in "fiM"]  # fmt: skip
    assert numeric
    for c in numeric:  # no copy of the numeric blocks
        assert np.shares_memory(got[c].to_numpy(), loaded[c].to_numpy()), c


def test_conform_of_read_records_leaves_the_input_alone(loaded):
    narrow = [c for c in loaded.columns if c in labels.VOCABULARIES]
    frame = loaded.copy()
    before = frame["duration_s"].copy()
    got = schema.conform(frame, narrow=narrow)
    got["duration_s"] = got["duration_s"] + 1.0
    got.loc[got.index[0], "billsec_s"] = -5.0
    pd.testing.assert_series_equal(frame["duration_s"], before)
    assert frame["billsec_s"].iloc[0] != -5.0 or pd.isna(frame["billsec_s"].iloc[0])


def test_conform_still_casts_orders_and_adds(loaded):
    """A frame not canonical as it is (order, a dtype, a column missing) is rebuilt as before."""
    narrow = [c for c in loaded.columns if c in labels.VOCABULARIES]
    reordered = loaded[list(loaded.columns[::-1])]
    pd.testing.assert_frame_equal(schema.conform(reordered, narrow=narrow),
                                  schema.conform(loaded, narrow=narrow))  # fmt: skip
    wide = labels.widen(loaded)  # categoricals as strings: conform without narrow keeps strings
    pd.testing.assert_frame_equal(schema.conform(wide), _rebuilt(wide))
    cast = loaded.assign(duration_s=loaded["duration_s"].astype("float32"))
    assert schema.conform(cast, narrow=narrow)["duration_s"].dtype == np.float64
    dropped = schema.conform(loaded.drop(columns=["answer"]), narrow=narrow)
    assert list(dropped.columns) == list(loaded.columns)
    assert dropped["answer"].isna().all()


def _shuffled_partitions(records: pd.DataFrame, n_in: int, n_out: int) -> list[pd.DataFrame]:
    ddf = dd.from_pandas(records, npartitions=n_in)
    shuffled = _frames.tag_and_shuffle(ddf, _frames.parties_key, n_out)
    with dask.config.set({"scheduler": "sync", "dataframe.shuffle.method": "tasks"}):
        return list(dask.compute(*shuffled.to_delayed()))


def _sorted_reference(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values([_frames.PART, _frames.ROW], kind="stable").drop(
        columns=[_frames.PART, _frames.ROW, _frames.BUCKET]
    )


def test_task_shuffle_pieces_arrive_in_input_order_and_are_not_sorted(loaded, monkeypatch):
    parts = _shuffled_partitions(loaded, 3, 4)
    want = [_sorted_reference(p) for p in parts]

    def refuse(*args, **kwargs):
        raise AssertionError("a partition in input order was sorted again")

    monkeypatch.setattr(pd.DataFrame, "sort_values", refuse)
    for p, w in zip(parts, want, strict=True):
        pd.testing.assert_frame_equal(_frames.restore_order(p), w)
    assert sum(len(p) for p in parts) == len(loaded)


def test_restore_order_sorts_a_partition_out_of_order(loaded):
    part = _shuffled_partitions(loaded, 3, 2)[0]
    shuffled = part.sample(frac=1.0, random_state=3)
    pd.testing.assert_frame_equal(_frames.restore_order(shuffled), _sorted_reference(part))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5)), max_size=30))
def test_in_input_order_equals_the_reference(pairs):
    part = np.array([p for p, _ in pairs], dtype=np.int64)
    row = np.array([r for _, r in pairs], dtype=np.int64)
    assert _frames._in_input_order(part, row) == (pairs == sorted(pairs))
