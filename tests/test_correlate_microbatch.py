"""The micro-batch correlation's own paths: kernels against tests/naive.py, and a real batch.

A batch of whole records (no call reference shared by two of them: most micro-batches) is
stitched without moving a column (its arrays passed on as they are), with the records the
one-by-one correlators give; the rows correlate_calls keeps and what they carry come from one
kernel (:func:`cemkit.correlate._kernels.calls_kept`), equal to main's NumPy expressions.
"""

from __future__ import annotations

import importlib

import naive
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from realtime_helpers import one_part_world

import cemkit
from cemkit import schema
from cemkit.columnar import Columns
from cemkit.correlate import _kernels as K

KEY = "3c6e9b2d5a8c1f4e7b0a3d6c7f3a9c2e5b8d1f4a6c0e3b7d9a2f5c8e1b4d7a0c"
SETTINGS = settings(max_examples=150, deadline=None)


def arrays(n, elements, dtype=np.int64):
    return st.lists(elements, min_size=n, max_size=n).map(lambda v: np.array(v, dtype=dtype))


@SETTINGS
@given(data=st.data())
def test_calls_kept_equals_the_numpy_selection(data):
    n = data.draw(st.integers(0, 30))
    kind = data.draw(arrays(n, st.integers(-1, 1), np.int8))
    leg = data.draw(arrays(n, st.integers(-1, 1), np.int8))
    pair = data.draw(arrays(n, st.integers(-1, max(n - 1, 0))))
    match = data.draw(arrays(n, st.integers(-1, max(n - 1, 0))))
    label = data.draw(arrays(n, st.integers(0, max(n - 1, 0))))
    rank = data.draw(arrays(n, st.integers(0, 5)))
    got = K.calls_kept(kind, leg, pair, match, label, rank)
    want = naive.calls_kept(kind, leg, pair, match, label, rank)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


@SETTINGS
@given(data=st.data(), tolerance=st.sampled_from([0, 1, 3, 100]))
def test_most_candidates_equals_naive(data, tolerance):
    # on the rows in a key order (each key's rows together, by time), as the kernels get them
    n = data.draw(st.integers(0, 24))
    key = data.draw(arrays(n, st.integers(-1, 3)))
    time = data.draw(arrays(n, st.integers(0, 8)))
    side = data.draw(arrays(n, st.integers(0, 2), np.int8))
    order = K.key_time_order(key, time)
    got = K._most_candidates(key[order], time[order], side[order], tolerance)
    assert got == naive.most_candidates(key[order], time[order], side[order], tolerance)


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """A real batch of whole records (canonical, raw numbers) and the world's model."""
    out = tmp_path_factory.mktemp("mbworld")
    source = one_part_world(out, seed=23)
    records = schema.conform(pd.read_parquet(source))
    # one record per call reference: the others of a call's partials left to another batch
    whole = records[~records["call_id"].duplicated()].reset_index(drop=True)
    mp = pytest.MonkeyPatch()
    mp.setenv("CEMKIT_KEY", KEY)
    yield out, records, whole
    mp.undo()


def test_a_batch_of_whole_records_is_stitched_without_moving_a_column(batch):
    from cemkit.privacy.engine import Protector

    stitch_module = importlib.import_module("cemkit.correlate.stitch")
    _, records, whole = batch
    assert records["call_id"].duplicated().any()  # the world has partials; the batch none
    assert whole["partial_seq"].notna().any()  # (lone partials: their call's others elsewhere)
    cols = Protector("default").columns(whole)
    got = stitch_module.stitch(cols)
    assert isinstance(got, Columns)
    for c in cols.names:  # the batch's own arrays, none taken
        assert got.array(c) is cols.array(c)
    assert got.codes is not cols.codes and all(got.codes[c] is v for c, v in cols.codes.items())
    assert "src_partials" in got and "src_partials" not in cols
    # the records the frame path gives (where every column is filtered)
    want = stitch_module.stitch(cemkit.protect(whole, "default"))
    pd.testing.assert_frame_equal(got.frame(), want)


def test_a_batch_of_whole_records_equals_the_one_by_one_correlators(batch):
    out, _, whole = batch
    proc = cemkit.BatchProcessor("default", model=out / "model.yaml")
    proc(whole.iloc[:100].reset_index(drop=True))  # warm on another batch
    got = proc(whole).records
    want = naive.ref_correlate(cemkit.protect(whole, "default"))
    pd.testing.assert_frame_equal(got, want)
    assert (got["src_partials"] == 1).all() and got["src_paired"].any()


def test_columns_copy_and_names(batch):
    _, records, _ = batch
    cols = Columns.of(records)
    cols["extra"] = np.arange(len(records))
    twin = cols.copy()
    assert twin.names == cols.names == [*records.columns, "extra"]
    twin["more"] = np.zeros(len(records))
    assert "more" in twin and "more" not in cols and twin.index is cols.index
    assert all(twin.array(c) is cols.array(c) for c in cols.names)
