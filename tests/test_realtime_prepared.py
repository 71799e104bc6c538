"""The real-time path's array-level entry points, on real pipeline output.

Label columns left pending by a stage are read at their source rows (``Columns.source``: the
strings are never gathered in the hot path); the KQI table carries its key columns as codes
(``KqiResult.keys``) and the alerts found by them equal the alerts found by comparing strings.
The records, KQIs and alerts themselves are compared with ``cemkit.run`` in tests/test_realtime.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from realtime_helpers import alerting_model, one_part_world

import cemkit
from cemkit import schema
from cemkit.kqi.alerts import find_alerts
from cemkit.kqi.rollup import rollup
from cemkit.model.assign import Assigner
from cemkit.model.spec import load_model
from cemkit.runs import read_records

KEY = "3c6e9b2d5a8c1f4e7b0a3d6c7f3a9c2e5b8d1f4a6c0e3b7d9a2f5c8e1b4d7a0c"
LABELS = ("leg", "outcome", "record_kind", "service")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("rtprepared")
    source = one_part_world(out, seed=23)
    # absolute thresholds that 4,000 records breach: alerts to compare (and relative ones)
    model = alerting_model(out / "model.yaml", out / "alerting.yaml")
    mp = pytest.MonkeyPatch()
    mp.setenv("CEMKIT_KEY", KEY)
    run = cemkit.run(source, format="parquet", model=model, out=out / "run", scheduler="sync",
                     freqs=("15min", "hour"))  # fmt: skip
    records = schema.conform(pd.read_parquet(source))
    yield out, model, run, records
    mp.undo()


def test_label_columns_are_not_gathered_in_the_hot_path(world):
    # correlate_calls and the KQIs compare the label columns at their source rows: after a
    # warm batch they are still pending (gathered only when the records are read), and the
    # records read then are those of cemkit.run
    _, model, run, records = world
    proc = cemkit.BatchProcessor("default", model=model, freqs=("15min", "hour"))
    proc(records.iloc[:1000].reset_index(drop=True))
    batch = proc(records)
    cols = batch.columns
    for name in LABELS:
        values, at = cols.source(name)
        assert at is not None, f"{name} was gathered during the batch"
        gathered = cols.array(name)
        assert pd.array(values).take(at).equals(gathered)
        assert cols.source(name)[1] is None  # gathered now: its own array
    got = batch.records.sort_values("record_id").reset_index(drop=True)
    want = read_records(run.out).compute()
    want = want.sort_values("record_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)


def test_table_keys_decode_to_the_key_columns(world):
    _, model, _, records = world
    proc = cemkit.BatchProcessor("default", model=model)
    calls = proc(records).columns.frame()
    rolled = rollup(calls, Assigner(load_model(model)), freqs=("15min", "hour"),
                    rank_customers=False)  # fmt: skip
    keys, table = rolled.keys, rolled.table
    assert keys is not None and len(keys.kind) == len(table) > 0
    for column, codes, names in (("object_kind", keys.kind, keys.kinds),
                                 ("object", keys.obj, keys.labels),
                                 ("freq", keys.freq, keys.freqs)):  # fmt: skip
        decoded = np.array(names, dtype=object)[codes]
        assert decoded.tolist() == table[column].tolist()


@pytest.mark.parametrize("freq", [None, "hour", "day"])
def test_alerts_by_key_codes_equal_the_alerts_by_strings(world, freq):
    # on the real pipeline's records (KQIs of two bucket sizes, groups and modeled customers),
    # and on cemkit.run's KQI table: found by codes, found by comparing the strings, the same
    _, model, run, records = world
    spec = load_model(model)
    proc = cemkit.BatchProcessor("default", model=model)
    calls = proc(records).columns.frame()
    rolled = rollup(calls, Assigner(spec), freqs=("15min", "hour"), rank_customers=False)
    by_codes = find_alerts(rolled.table, spec, freq=freq, keys=rolled.keys)
    by_strings = find_alerts(rolled.table, spec, freq=freq)
    pd.testing.assert_frame_equal(by_codes, by_strings)
    if freq is None:
        assert len(by_codes) >= 2  # the thresholds above breach
        pd.testing.assert_frame_equal(by_codes, run.alerts)


def test_warm_processor_keeps_the_plan_while_dtypes_stay(world, monkeypatch):
    # the protect plan is looked up once per dtype signature: batches with the dtype objects
    # of the last one reuse it, a batch of other dtypes gets its own (and the same records)
    from cemkit.privacy.engine import Protector

    _, model, _, records = world
    proc = cemkit.BatchProcessor("default", model=model)
    want = proc(records).records
    looked_up = []
    plan = Protector.plan
    monkeypatch.setattr(Protector, "plan", lambda self, d: looked_up.append(1) or plan(self, d))
    pd.testing.assert_frame_equal(proc(records).records, want)
    assert not looked_up
    other = records.astype({"partial_seq": "float64"})  # read some other way: conformed
    pd.testing.assert_frame_equal(proc(other).records, want)
    assert looked_up


def _partition(key: np.ndarray) -> np.ndarray:
    """Each row's first row of the same key (-1: a null key): the grouping, whatever the codes."""
    first: dict[int, int] = {}
    return np.array([-1 if k < 0 else first.setdefault(int(k), i) for i, k in enumerate(key)])


_label = st.one_of(st.none(), st.sampled_from(["cdr", "xdr", "term", "orig", "lon-sw1", ""]))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(_label, _label, _label, st.integers(0, 6)), min_size=1, max_size=40),
       st.data())  # fmt: skip
def test_shared_call_key_groups_as_the_composite_key(rows, data):
    # the stitch key of the rows sharing a call reference, from Arrow codes of the `by` columns
    # and protect's call-id codes, must group rows exactly as the general composite key does
    import pyarrow as pa

    from cemkit.columnar import Columns
    from cemkit.correlate import _frames
    from cemkit.correlate.stitch import DEFAULT_BY, shared_call_key

    n = len(rows)
    # a batch cut from a file of several row groups holds its columns in several chunks
    cut = data.draw(st.integers(0, n))

    def chunked(values):
        parts = [
            pa.array(values[:cut], pa.large_string()),
            pa.array(values[cut:], pa.large_string()),
        ]
        return pd.arrays.ArrowStringArray(pa.chunked_array(parts))

    arrays = {c: chunked([r[j] for r in rows]) for j, c in enumerate(DEFAULT_BY)}
    ref = np.array([r[3] for r in rows], np.int64)
    arrays["call_id"] = pd.array([f"call-{r}" for r in ref], dtype="string[pyarrow]")
    cols = Columns(arrays, pd.RangeIndex(n), {"call_id": ref})
    at = np.array(sorted(data.draw(st.sets(st.integers(0, n - 1), min_size=1))), np.int64)
    got = shared_call_key(cols, at, DEFAULT_BY)
    assert got is not None
    key, bound = got
    assert (key >= 0).all() and (key < bound).all()
    want, _ = _frames.composite_key([cols[c].iloc[at] for c in [*DEFAULT_BY, "call_id"]],
                                    null_is_value=[True, True, True, False])  # fmt: skip
    np.testing.assert_array_equal(_partition(key), _partition(want))


def test_warm_batches_stitch_by_the_shared_call_key(world, monkeypatch):
    # the real-time path takes the array-level key (the records equal cemkit.run's:
    # tests/test_realtime.py); the general key gives the same stitched records
    import importlib

    stitch_module = importlib.import_module("cemkit.correlate.stitch")
    _, model, _, records = world
    taken = []
    real = stitch_module.shared_call_key

    def spy(*args):
        got = real(*args)
        taken.append(got is not None)
        return got

    monkeypatch.setattr(stitch_module, "shared_call_key", spy)
    proc = cemkit.BatchProcessor("default", model=model)
    fast = proc(records).records
    assert taken and all(taken)
    monkeypatch.setattr(stitch_module, "shared_call_key", lambda *args: None)
    general = cemkit.BatchProcessor("default", model=model)(records).records
    assert (fast["src_partials"] > 1).any()
    pd.testing.assert_frame_equal(fast, general)


def test_a_batch_read_from_several_row_groups_equals_one_read_whole(world, tmp_path):
    # a batch read from a Parquet file of several row groups holds chunked columns (a user's
    # `pd.read_parquet` of a large file): its records are those of the same batch in one chunk
    _, model, _, records = world
    path = tmp_path / "groups.parquet"
    records.to_parquet(path, row_group_size=len(records) // 3 + 1)
    chunked = schema.conform(pd.read_parquet(path))
    assert chunked["source"].array._pa_array.num_chunks > 1
    got = cemkit.BatchProcessor("default", model=model)(chunked)
    want = cemkit.BatchProcessor("default", model=model)(records)
    assert (want.records["src_partials"] > 1).any()
    pd.testing.assert_frame_equal(got.records, want.records)
    pd.testing.assert_frame_equal(got.kqi, want.kqi)
    pd.testing.assert_frame_equal(got.alerts, want.alerts)
