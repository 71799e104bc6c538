"""The jitted KQI rollup and the vectorized alerts equal the pandas code they replaced.

References live in tests/naive.py (``rollup_pandas``, ``find_alerts_pandas``,
``group_sizes_pandas``: the previous implementation, kept verbatim). Compared exactly (same rows,
columns, dtypes and values) on hypothesis-generated frames and on records of the real pipeline
(synthetic world -> protect -> correlate).
"""

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cemkit
from cemkit import config, schema
from cemkit.kqi import _kernels
from cemkit.kqi.alerts import find_alerts
from cemkit.kqi.rollup import _mark_first_of_intent, _worst_of_partition, rollup
from cemkit.kqi.sizes import group_sizes
from cemkit.model import ServiceModel, load_model
from cemkit.pipeline import correlate
from tests import naive

KEY = "3c1f9a7e5b2d8c4a6e0f3b9d7a1c5e8f2b4d6a0c9e7f1b3d5a8c2e4f6b0a9d7c"

MODEL = ServiceModel.from_yaml_text("""
name: fast
groups:
  - {name: uk, match: {prefixes: ["+44"]}}
  - {name: london, parent: uk, match: {prefixes: ["+4420"]},
     thresholds: [{indicator: ner, relative: 1.05, severity: major, min_attempts: 2, min_z: 0.5}]}
  - {name: lon-sw1, parent: london, match: {switches: ["lon-sw1"]}}
  - {name: man, parent: uk, match: {prefixes: ["+44161"]}}
customers:
  - {name: vip, pseudonyms: ["+4420tok1"]}
thresholds:
  - {indicator: asr, absolute: 0.65, severity: minor, min_attempts: 1}
  - {indicator: asr, absolute: 0.5, severity: major, min_attempts: 2}
  - {indicator: pdd_mean_ms, relative: 1.1, severity: minor, min_attempts: 1}
  - {indicator: drop_ratio, relative: 1.2, severity: critical, min_attempts: 1, min_z: 0.5}
customer_thresholds:
  - {indicator: asr, absolute: 0.7, severity: minor, min_attempts: 1}
""")

T0 = pd.Timestamp("2026-03-01", tz="UTC")
_S = "string[pyarrow]"
ROW = st.tuples(
    st.sampled_from(["voice", "voice", "voice", "sms", "data"]),
    st.sampled_from(["cdr", "cdr", "xdr", "registration"]),
    st.sampled_from(["answered", "answered", "busy", "failed", "no_answer", "cancelled"]),
    st.one_of(st.none(), st.integers(0, 2 * 86400)),  # start offset, s (None: NaT)
    st.sampled_from(["+4420tok1", "+4420tok2", "+44161tok3", "+44131tok4", "+3312", None]),
    st.sampled_from(["lon-sw1", "lon-sw2", "man-sw1", None]),
    st.sampled_from(["orig", "term", None]),
    st.one_of(st.none(), st.sampled_from([100.0, 250.4, 250.6, 900.0]), st.floats(0, 5000)),
    st.sampled_from([1, 1, 2, None]),
    st.one_of(st.none(), st.integers(0, 6)),  # intent
    st.sampled_from([200, 486, 503, 302, None]),
    st.floats(0, 200),
    st.sampled_from([16, 31, 41, None]),
)


def frame(rows):
    cols = list(zip(*rows, strict=True)) if rows else [[] for _ in range(13)]
    start = [T0 + pd.Timedelta(seconds=s) if s is not None else pd.NaT for s in cols[3]]
    return pd.DataFrame({
        "service": pd.array(cols[0], dtype=_S),
        "record_kind": pd.array(cols[1], dtype=_S),
        "outcome": pd.array(cols[2], dtype=_S),
        "start": pd.array(start, dtype="datetime64[ns, UTC]"),
        "a_number": pd.array(cols[4], dtype=_S),
        "node": pd.array(cols[5], dtype=_S),
        "leg": pd.array(cols[6], dtype=_S),
        "pdd_ms": np.array([np.nan if v is None else v for v in cols[7]], dtype=float),
        "partial_seq": pd.array(cols[8], dtype="Int32"),
        "src_intent_id": pd.array(cols[9], dtype="Int64"),
        "sip_status": pd.array(cols[10], dtype="Int16"),
        "billsec_s": np.array(cols[11], dtype=float),
        "cause_q850": pd.array(cols[12], dtype="Int16"),
    })  # fmt: skip


def assert_same(records, model, nparts=None, **kw):
    """New rollup (pandas, or Dask with nparts), sizes and alerts equal the reference."""
    kw.setdefault("freqs", ("15min", "hour", "day"))
    data = records if nparts is None else dd.from_pandas(records, npartitions=nparts)
    new = rollup(data, model, sizes=True, **kw)
    old = naive.rollup_pandas(records, model, **kw)
    pd.testing.assert_frame_equal(new.table, old.table)
    pd.testing.assert_frame_equal(new.worst_customers, old.worst_customers)
    assert new.customer_count == old.customer_count
    pd.testing.assert_frame_equal(new.group_sizes, naive.group_sizes_pandas(records, model))
    for freq in kw["freqs"]:
        pd.testing.assert_frame_equal(
            find_alerts(new.table, model, freq=freq),
            naive.find_alerts_pandas(old.table, model, freq=freq),
        )
    if nparts is None and "src_intent_id" in records.columns:  # as cemkit.dp reads it
        pd.testing.assert_frame_equal(
            _mark_first_of_intent(records), naive._ro_mark_first_of_intent(records)
        )
    return new


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ROW, min_size=0, max_size=40), st.sampled_from([None, None, 3]))
def test_rollup_equals_reference_on_generated_frames(rows, nparts):
    records = frame(rows)
    if nparts is not None and len(records) < nparts:
        nparts = None
    assert_same(records, MODEL, nparts)


@settings(max_examples=10, deadline=None)
@given(st.lists(ROW, min_size=1, max_size=30))
def test_sparse_cells_equal_dense_cells(rows):
    records = frame(rows)
    dense = rollup(records, MODEL, sizes=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(config, "KQI_DENSE_MAX_VALUES", 0)  # every table too big: sort path
        sparse = rollup(records, MODEL, sizes=True)
    pd.testing.assert_frame_equal(dense.table, sparse.table)


@settings(max_examples=80, deadline=None)
@given(
    st.integers(1, 6).flatmap(
        lambda c: st.tuples(
            st.just(c),
            st.integers(1, 8),
            st.lists(st.tuples(st.integers(-1, 7), *[st.integers(-50, 50)] * c), max_size=40),
            st.integers(-1, c - 1),
        )
    )
)
def test_sum_by_cell_equals_naive(args):
    n_counters, n_cells, rows, replace_row = args
    cell = np.array([min(r[0], n_cells - 1) for r in rows], dtype=np.int64)
    values = np.array([r[1:] for r in rows], dtype=np.int64).reshape(len(rows), n_counters).T
    replacement = np.arange(len(rows), dtype=np.int64) * 3 - 7
    got = _kernels.sum_by_cell(cell, values, replace_row, replacement, n_cells)
    want = naive.sum_by_cell(cell, values, replace_row, replacement, n_cells)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    # any memory layout of the counter block (the records' frame gives a transposed view)
    got_f = _kernels.sum_by_cell(cell, np.asfortranarray(values), replace_row, replacement,
                                 n_cells)  # fmt: skip
    np.testing.assert_array_equal(got_f[0], want[0])


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(-1, 4), st.one_of(st.none(), st.integers(-5, 5)),
                          st.booleans()), max_size=30))  # fmt: skip
def test_first_start_equals_naive(rows):
    code = np.array([r[0] for r in rows], dtype=np.int64)
    time = np.array([naive.NULL if r[1] is None else r[1] for r in rows], dtype=np.int64)
    use = np.array([r[2] for r in rows], dtype=bool)
    np.testing.assert_array_equal(
        _kernels.first_start(code, time, use, 5), naive.first_start(code, time, use, 5)
    )


_SCORED = ("attempts", "answered", "user_determined", "short_calls", "drops", "pdd_count",
           "pdd_us", "mos_count", "mos_micro")  # fmt: skip


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(*[st.integers(0, 3)] * len(_SCORED)), max_size=60),
    st.integers(0, 65),
    st.integers(0, 3),
)
def test_worst_of_partition_scores_only_who_can_rank_and_ranks_the_same(rows, top_n, least):
    """Small counters: many equal scores (ties at the cut), customers without a score."""
    sums = pd.DataFrame(rows, columns=list(_SCORED), dtype=np.int64)
    sums.index = pd.Index(pd.array([f"+44#{i % 7:02d}{i}" for i in range(len(rows))],
                                   dtype=pd.StringDtype("pyarrow")), name="customer")  # fmt: skip
    got = _worst_of_partition(sums, top_n, least)
    pd.testing.assert_frame_equal(got, naive.worst_of_partition(sums, top_n, least))


# --- records of the real pipeline ----------------------------------------------------------------
@pytest.fixture(scope="module")
def pipeline_records(small_world):
    out, _ = small_world
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CEMKIT_KEY", KEY)
        raw = pd.concat([pq.read_table(f).to_pandas() for f in sorted(
            (out / "records").glob("*.parquet"))], ignore_index=True)  # fmt: skip
        raw = schema.conform(raw)
        calls = correlate(cemkit.protect(raw, "default"))
    return calls, load_model(out / "model.yaml")


def test_rollup_equals_reference_on_pipeline_records(pipeline_records):
    calls, model = pipeline_records
    assert len(calls) > 10_000 and "src_intent_id" in calls.columns
    new = assert_same(calls, model)
    assert new.table["repeat_attempts"].sum() > 0 and new.table["pdd_count"].sum() > 0
    # a short list: most customers cannot rank, equal scores at the cut
    assert len(assert_same(calls, model, nparts=3, freqs=("15min",), top_n=3).worst_customers) == 3
    assert_same(calls, model, nparts=4, freqs=("15min",), rank_customers=False)


@pytest.mark.parametrize("ids", ["hashed strings", "integers"])
def test_every_form_of_intent_id_gives_the_reference(pipeline_records, ids):
    """Intent ids the dense table cannot read as numbers are hashed; integer ids index it."""
    calls, model = pipeline_records
    intents = calls["src_intent_id"]
    if ids == "integers":
        codes = pd.factorize(intents)[0] * 7 + 3  # not dense from 0
        other = pd.array(np.where(codes < 0, None, codes), dtype="Int64")
    else:
        other = ("i" + intents + "-x").astype("string[pyarrow]")  # no trailing number
    new = assert_same(calls.assign(src_intent_id=other), model, freqs=("15min",))
    assert new.table["repeat_attempts"].sum() > 0


def test_sizes_alone_equal_reference_on_pipeline_records(pipeline_records):
    calls, model = pipeline_records
    want = naive.group_sizes_pandas(calls, model)
    pd.testing.assert_frame_equal(group_sizes(calls, model), want)
    pd.testing.assert_frame_equal(group_sizes(dd.from_pandas(calls, npartitions=3), model), want)


def test_micro_batch_gives_the_batch_paths_records_and_kqis(small_world, monkeypatch):
    out, _ = small_world
    monkeypatch.setenv("CEMKIT_KEY", KEY)
    first = sorted((out / "records").glob("*.parquet"))[0]  # noqa: FURB192
    raw = schema.conform(pq.read_table(first).to_pandas()).iloc[:4000].reset_index(drop=True)
    proc = cemkit.BatchProcessor("default", model=out / "model.yaml")
    got = proc(raw)
    again = proc(raw)  # warm
    batch = correlate(cemkit.protect(dd.from_pandas(raw, npartitions=2), "default"))
    model = load_model(out / "model.yaml")
    want = naive.rollup_pandas(batch, model, freqs=("15min",), rank_customers=False)
    pd.testing.assert_frame_equal(got.kqi, want.table)
    pd.testing.assert_frame_equal(again.kqi, want.table)
    pd.testing.assert_frame_equal(got.alerts, naive.find_alerts_pandas(want.table, model))
    key = ["record_id", "a_number", "b_number", "src_intent_id", "outcome"]
    a = got.records[key].sort_values("record_id").reset_index(drop=True)
    b = batch.compute()[key].sort_values("record_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


@pytest.mark.parametrize("how", ["kathmandu", "arrow"])
def test_start_in_another_zone_or_arrow_type_buckets_as_before(how):
    rng = np.random.default_rng(3)
    records = frame([
        ("voice", "cdr", str(rng.choice(["answered", "busy"])), int(s), "+4420tok1", "lon-sw1",
         "orig", 300.0, 1, None, None, 30.0, 16)
        for s in rng.integers(0, 86400, 50)
    ])  # fmt: skip
    if how == "kathmandu":  # +05:45: a local 15-minute floor is not a UTC one
        records["start"] = records["start"].dt.tz_convert("Asia/Kathmandu")
    else:
        records["start"] = records["start"].astype(pd.ArrowDtype(pa.timestamp("us", "UTC")))
    assert_same(records, MODEL)
