"""The correlators' fast paths give what a plain reduction over every row gives.

``stitch`` reduces only the calls of several partials (rare) and keeps whole records as they are;
here every column it reduces is compared with a pandas groupby over all rows, on the synthetic
world loaded and protected by the real pipeline, with nulls injected so that all-null groups
occur.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cemkit import schema
from cemkit.correlate import stitch
from cemkit.correlate.stitch import _nulls_like, stitch_labels
from cemkit.privacy import load_policy, protect
from cemkit.privacy.keys import Key


@pytest.fixture(scope="module")
def protected(small_world):
    out, _ = small_world
    records = schema.conform(pd.read_parquet(out / "records"))
    records = protect(
        records,
        load_policy("default"),
        key=Key.from_material(b"k" * 32, key_id="cemkit-default-2026"),
    )
    rng = np.random.default_rng(5)
    for c in ("mos", "duration_s", "answer"):  # nulls, so that some partial groups are all-null
        col = records[c].copy()
        col[rng.random(len(col)) < 0.3] = None
        records[c] = col
    return records


@pytest.mark.parametrize(
    ("column", "how"),
    [("start", "min"), ("answer", "min"), ("end", "max"), ("duration_s", "sum"),
     ("billsec_s", "sum"), ("mos", "mean"), ("loss_ratio", "mean"), ("jitter_ms", "mean")],
)  # fmt: skip
def test_stitched_columns_equal_a_reduction_over_all_rows(protected, column, how):
    label, _, _ = stitch_labels(protected)
    out = stitch(protected)
    assert (pd.Series(label).value_counts() > 1).sum() > 10  # some calls were cut into partials
    col = protected[column].reset_index(drop=True)
    g = col.groupby(label, sort=True)
    want = getattr(g, how)()
    if how == "sum":
        want = want.where(g.count() > 0)
    reps = np.flatnonzero(label == np.arange(len(label)))
    want = pd.Series(want.reindex(reps).array).astype(col.dtype)
    got = out[column].reset_index(drop=True)
    assert got.dtype == col.dtype
    pd.testing.assert_series_equal(got, want, check_names=False, check_exact=True)


def test_batches_with_and_without_partials_stitch_as_the_reference(protected):
    # only the rows that may share a call are keyed and grouped (_call_rows); every other row
    # is its own call, flagged missing alone when its partial_seq is not 1: batches of the real
    # pipeline's records, with and without partials, equal the plain reference on every row
    from cemkit.columnar import Columns
    from tests import naive

    records = protected.reset_index(drop=True)
    seen = {True: 0, False: 0}
    for lo in range(0, min(len(records), 4000), 250):
        batch = records.iloc[lo : lo + 250].reset_index(drop=True)
        want = naive.ref_stitch(batch)
        got = stitch(batch)
        pd.testing.assert_frame_equal(got, want)
        pd.testing.assert_frame_equal(stitch(Columns.of(batch)).frame(), want)
        seen[bool((want["src_partials"] > 1).any())] += 1
    assert seen[True] and seen[False]


@pytest.mark.parametrize("dtype", ["Int32", "Int64", "Float64"])
def test_nulls_like_gives_nulls_of_the_column_dtype(dtype):
    """The groups' ``partial_seq`` (null) is built with the column's own dtype, as pd.array does."""
    values = pd.array([1, 2, None], dtype=dtype)
    got = _nulls_like(values, 4)
    want = pd.array([pd.NA] * 4, dtype=dtype)
    assert got.dtype == want.dtype and type(got) is type(want)
    assert got.isna().all() and len(got) == 4
