"""The fast correlators give exactly main's frames (the references in ``tests/naive.py``).

Rows, row order, index, column order, dtypes and values are compared, per correlator and for the
correlate stages as the runner chains them, on records of the real pipeline (synthetic world →
load → protect) and on hypothesis-generated frames full of ties, nulls and shared keys.
"""

from __future__ import annotations

import naive
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_correlate_records import record_frames

from cemkit import config, schema
from cemkit.correlate import _frames, match, pair_legs, sessionize, stitch
from cemkit.privacy import load_policy, protect
from cemkit.privacy.keys import Key
from cemkit.runs.library import correlate_stages
from cemkit.runs.stages import run_pandas


def equal(got: pd.DataFrame, want: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(got, want, check_exact=True)


@pytest.fixture(scope="module")
def protected(small_world):
    out, _ = small_world
    records = schema.conform(pd.read_parquet(out / "records"))
    records = protect(records, load_policy("default"),
                      key=Key.from_material(b"k" * 32, key_id="cemkit-default-2026"))  # fmt: skip
    # an index that is not 0..n-1 (the runner's partitions after a shuffle are like this)
    return records.set_axis(np.arange(len(records)) * 3 + 7)


def test_real_records_each_correlator_equals_main(protected):
    calls = stitch(protected)
    equal(calls, naive.ref_stitch(protected))
    assert (calls["src_partials"] > 1).sum() > 10
    paired = pair_legs(calls)
    equal(paired, naive.ref_pair_legs(calls))
    assert paired["src_paired"].sum() > 100
    matched = match(paired)
    equal(matched, naive.ref_match(paired))
    assert (matched["src_match"] == "matched").sum() > 100
    equal(sessionize(matched, output="records"), naive.ref_sessionize_records(matched))


@pytest.mark.parametrize("threads", [1, 2])
def test_real_records_correlate_stages_equal_main(protected, threads, monkeypatch):
    # with 2 threads the column-parallel gathers and encodings run (threshold lowered to 0)
    monkeypatch.setattr(config, "CORRELATE_THREADS", threads)
    monkeypatch.setattr(_frames, "_THREAD_MIN_ROWS", 0)
    equal(run_pandas(protected, correlate_stages()), naive.ref_correlate(protected))


@settings(max_examples=60, deadline=None)
@given(df=record_frames(max_n=18), offset=st.integers(0, 5))
def test_generated_frames_equal_main(df, offset):
    df = df.set_axis(np.arange(len(df)) + offset)
    equal(stitch(df), naive.ref_stitch(df))
    for tol in ("3s", "0s"):
        equal(pair_legs(df, tolerance=tol), naive.ref_pair_legs(df, tol))
        equal(match(df, tolerance=tol), naive.ref_match(df, tol))
    for close in (True, False):
        equal(sessionize(df, window="5s", close_on_answer=close, output="records"),
              naive.ref_sessionize_records(df, "5s", close))  # fmt: skip
    equal(run_pandas(df, correlate_stages(window="5s", pair_tolerance="3s")),
          naive.ref_correlate(df, window="5s", pair_tolerance="3s"))  # fmt: skip


def test_real_records_equal_main_when_every_key_hash_collides(protected, monkeypatch):
    # the hashed keys (parties; call references in stitch) made 0 for every row: the checks see
    # the collisions and the exact keys take over, with the same frames as main's
    from cemkit.correlate import _kernels

    monkeypatch.setattr(_kernels, "hash_key",
                        lambda parts, null: np.where(null, -1, 0).astype(np.int64))  # fmt: skip
    calls = stitch(protected)
    equal(calls, naive.ref_stitch(protected))
    equal(pair_legs(calls), naive.ref_pair_legs(calls))
    equal(run_pandas(protected, correlate_stages()), naive.ref_correlate(protected))
